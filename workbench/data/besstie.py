"""BESSTIE (en-AU / en-IN / en-UK; Google reviews and Reddit comments; Sentiment and Sarcasm).

What is on disk (see the data's PROVENANCE.md): the official validation split in long format (`valid.csv`, one row
per text and task), the official train split for en-AU and en-UK in wide format (both labels per row), and the
en-IN Reddit train rows (`splits_en-IN_Reddit_cm/<Task>/train_cm.csv`). The en-IN Google train rows are not
released here: for that slice a seeded, stratified split of its validation rows stands in, marked by
`seeded_split=True`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pandas as pd
from sklearn.model_selection import train_test_split

from workbench.data.schema import (
    DataError,
    concat_frames,
    data_dir,
    integer,
    labelled_frame,
    not_empty,
    one_of,
    read_rows,
    require_file,
    select_rows,
    validate_rows,
)

BESSTIE_TASKS = ("Sentiment", "Sarcasm")
BESSTIE_VARIETIES = ("en-AU", "en-IN", "en-UK")
BESSTIE_SOURCES = ("Google", "Reddit")
BESSTIE_LABELS = {"Sentiment": ["negative", "positive"], "Sarcasm": ["not_sarcastic", "sarcastic"]}
WIDE_TRAIN = "original_train_en-AU_en-UK.csv"
WIDE_VARIETIES = ("en-AU", "en-UK")
BINARY = ("0", "1")
HINT = "Get it with `workbench data download besstie` (gated on the Hub: request access first)."


def _as_tuple(value: str | Iterable[str] | None, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    values = allowed if value is None else (value,) if isinstance(value, str) else tuple(value)
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ValueError(f"unknown {what} {bad}; expected some of {allowed}")
    return values


def _binary(frame: pd.DataFrame, path, column: str, task: str, meta: dict) -> pd.DataFrame:
    return labelled_frame(
        frame,
        path=path,
        text_column="text",
        label_column=column,
        label_names=BESSTIE_LABELS[task],
        label_map={"0": BESSTIE_LABELS[task][0], "1": BESSTIE_LABELS[task][1]},
        metadata=meta,
    )


def _valid_slice(root, task: str, variety: str, source: str) -> pd.DataFrame:
    """The rows of `valid.csv` for one slice; every row of the file is checked first, whatever the slice."""
    path = require_file(data_dir(root) / "besstie" / "valid.csv", HINT)
    rows = read_rows(path, required=("text", "label", "variety", "source", "task"), hint=HINT)
    validate_rows(
        path,
        rows,
        [
            not_empty("text"),
            one_of("label", BINARY, "label", key=str.strip),
            one_of("variety", BESSTIE_VARIETIES, "variety"),
            one_of("source", BESSTIE_SOURCES, "source"),
            one_of("task", BESSTIE_TASKS, "task"),
        ],
    )
    rows = select_rows(path, rows, [("task", task, None), ("variety", variety, None), ("source", source, None)])
    return _binary(rows, path, "label", task, {"task": task, "variety": variety, "source": source})


def _train_slice(root, task: str, variety: str, source: str) -> pd.DataFrame:
    """Official train rows of one slice (en-IN Reddit: its `train_cm.csv`; en-AU/en-UK: the wide file, every row
    of which is checked before the slice is taken)."""
    base = data_dir(root) / "besstie"
    if variety == "en-IN" and source == "Reddit":
        path = require_file(base / "splits_en-IN_Reddit_cm" / task / "train_cm.csv", HINT)
        rows = read_rows(path, required=("text", "label"), hint=HINT)
        validate_rows(
            path, rows, [integer("id", "id"), not_empty("text"), one_of("label", BINARY, "label", key=str.strip)]
        )
        return _binary(rows, path, "label", task, {"task": task, "variety": variety, "source": source})
    path = require_file(base / WIDE_TRAIN, HINT)
    rows = read_rows(path, required=("source", "variety", "text", "sentiment", "sarcasm"), hint=HINT)
    validate_rows(
        path,
        rows,
        [
            not_empty("text"),
            one_of("source", [s.lower() for s in BESSTIE_SOURCES], "source", key=str.lower),
            one_of("variety", WIDE_VARIETIES, "variety"),
            one_of("sentiment", BINARY, "label", key=str.strip),
            one_of("sarcasm", BINARY, "label", key=str.strip),
        ],
    )
    if variety not in WIDE_VARIETIES:
        raise DataError(path, None, f"holds {list(WIDE_VARIETIES)} only; no official {variety} {source} train rows")
    rows = select_rows(path, rows, [("source", source.lower(), str.lower), ("variety", variety, None)])
    return _binary(rows, path, task.lower(), task, {"task": task, "variety": variety, "source": source})


def _seeded(frame: pd.DataFrame, split: str, seed: int, eval_fraction: float) -> pd.DataFrame:
    try:
        train_idx, eval_idx = train_test_split(
            range(len(frame)), test_size=eval_fraction, random_state=seed, stratify=frame["label"]
        )
    except ValueError as err:  # too few rows, or a label with a single row
        counts = frame["label_name"].value_counts().to_dict()
        raise DataError(
            frame.attrs["source_files"][0],
            None,
            f"cannot make the seeded stratified split of {frame['task'].iat[0]} {frame['variety'].iat[0]} "
            f"{frame['source'].iat[0]} from {len(frame)} rows (labels {counts}): {err}",
        ) from None
    out = frame.iloc[sorted(train_idx if split == "train" else eval_idx)].reset_index(drop=True)
    out.attrs = frame.attrs
    return out


def load_besstie(
    task: str = "Sentiment",
    variety: str | Iterable[str] | None = None,
    source: str | Iterable[str] | None = None,
    split: str = "train",
    root: str | os.PathLike | None = None,
    seed: int = 0,
    seeded_eval_fraction: float = 0.4,
) -> pd.DataFrame:
    """One task's rows for the given varieties and sources (None = all) and split (`train` or `valid`).

    Slices with no official train split (en-IN Google) are split from their validation rows with `seed`
    (stratified, `seeded_eval_fraction` held out) and marked `seeded_split=True`. Train and valid of one slice
    never share a row. BESSTIE's official splits do share texts (PROVENANCE.md): call
    `remove_overlap(train, evaluation)` before training; every study notebook does and reports the count.
    """
    if split not in ("train", "valid"):
        raise ValueError(f"split must be 'train' or 'valid', not {split!r}")
    if task not in BESSTIE_TASKS:
        raise ValueError(f"task must be one of {BESSTIE_TASKS}, not {task!r}")
    frames = []
    for var in _as_tuple(variety, BESSTIE_VARIETIES, "variety"):
        for src in _as_tuple(source, BESSTIE_SOURCES, "source"):
            seeded = var == "en-IN" and src == "Google"
            if seeded:
                frame = _seeded(_valid_slice(root, task, var, src), split, seed, seeded_eval_fraction)
            elif split == "valid":
                frame = _valid_slice(root, task, var, src)
            else:
                frame = _train_slice(root, task, var, src)
            frame["split"] = split
            frame["seeded_split"] = seeded
            frames.append(frame)
    return concat_frames(frames)


def _with_sarcasm(sentiment: pd.DataFrame, sarcasm: pd.DataFrame) -> pd.DataFrame:
    """Sentiment rows that also have a Sarcasm row with the same text, with its label as column `sarcasm`."""
    labels = sarcasm.drop_duplicates("text").set_index("text")["label"]
    matched = sentiment["text"].isin(labels.index)
    out = sentiment.loc[matched].reset_index(drop=True)
    out["sarcasm"] = labels.loc[out["text"]].to_numpy().astype("int64")
    out["sarcasm_name"] = [BESSTIE_LABELS["Sarcasm"][i] for i in out["sarcasm"]]
    out.attrs = {**sentiment.attrs, "dropped": dict(sentiment.attrs.get("dropped", {}))}
    if (~matched).sum():
        out.attrs["dropped"]["no Sarcasm row with the same text"] = int((~matched).sum())
    return out


def load_besstie_multitask(
    variety: str | Iterable[str] | None = None,
    source: str | Iterable[str] | None = None,
    split: str = "train",
    root: str | os.PathLike | None = None,
    seed: int = 0,
    seeded_eval_fraction: float = 0.4,
) -> pd.DataFrame:
    """Rows that carry both labels: `label` (sentiment, as in `load_besstie`) and `sarcasm` (0/1), for multitask
    heads.

    Train: the wide en-AU/en-UK file (both labels on every row) and the en-IN Reddit Sentiment and Sarcasm
    `train_cm` files joined on text. Valid: the Sentiment and Sarcasm rows of `valid.csv` joined on text within
    each variety and source (BESSTIE labels mostly different texts per task, so few rows match). en-IN Google
    uses the same seeded split as `load_besstie("Sentiment", ...)`, joined the same way, so its rows stay on the
    same side of the split in single-task and multitask experiments. Unmatched rows are counted in
    `attrs["dropped"]`.
    """
    if split not in ("train", "valid"):
        raise ValueError(f"split must be 'train' or 'valid', not {split!r}")
    frames = []
    for var in _as_tuple(variety, BESSTIE_VARIETIES, "variety"):
        for src in _as_tuple(source, BESSTIE_SOURCES, "source"):
            seeded = var == "en-IN" and src == "Google"
            if seeded:
                sentiment = _seeded(_valid_slice(root, "Sentiment", var, src), split, seed, seeded_eval_fraction)
                frame = _with_sarcasm(sentiment, _valid_slice(root, "Sarcasm", var, src))
            elif split == "valid":
                frame = _with_sarcasm(
                    _valid_slice(root, "Sentiment", var, src), _valid_slice(root, "Sarcasm", var, src)
                )
            elif var == "en-IN":
                frame = _with_sarcasm(
                    _train_slice(root, "Sentiment", var, src), _train_slice(root, "Sarcasm", var, src)
                )
            else:  # wide file: both labels on the same rows, in the same order
                sentiment = _train_slice(root, "Sentiment", var, src)
                sarcasm = _train_slice(root, "Sarcasm", var, src)
                if list(sentiment["line"]) != list(sarcasm["line"]):
                    raise ValueError(f"{WIDE_TRAIN}: sentiment and sarcasm rows differ for {var} {src}")
                frame = _with_sarcasm(sentiment, sarcasm)
            frame["task"] = "Sentiment+Sarcasm"
            frame["split"] = split
            frame["seeded_split"] = seeded
            frames.append(frame)
    out = concat_frames(frames)
    out.attrs["sarcasm_names"] = list(BESSTIE_LABELS["Sarcasm"])
    return out
