"""Bicodemix: English, Malay and code-mixed comments with majority sentiment and sarcasm labels, one file, no split;
English rows by default (`languages`)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd
from sklearn.model_selection import train_test_split

from workbench.data.schema import (
    DataError,
    data_dir,
    integer,
    labelled_frame,
    one_of,
    read_rows,
    require_file,
    unique,
    validate_rows,
)

BICODEMIX_FILE = "annotated_bicodemix_publicsa_v2.csv"
BICODEMIX_TEXT = "comment/tweet"
BICODEMIX_TASKS = {
    "sentiment": ("majority_sent", ["negative", "neutral", "positive"]),
    "sarcasm": ("majority_sarc", ["notsarc", "sarc"]),
}
BICODEMIX_SPLITS = ("train", "dev", "test", "all")
BICODEMIX_LANGUAGES = ("my", "en", "cm")  # lang_id: Malay, English, code-mixed
BICODEMIX_LANGUAGE_NAMES = {"my": "Malay", "en": "English", "cm": "code-mixed"}
HINT = "Get it with `workbench data download bicodemix`."


def load_bicodemix(
    task: str = "sentiment",
    split: str = "all",
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    root: str | os.PathLike | None = None,
    languages: Sequence[str] | None = ("en",),
) -> pd.DataFrame:
    """One task's rows of the chosen `languages`, split train/dev/test by a seeded split stratified on the label
    (no official split).

    `languages` filters on `lang_id`: English (`en`, 1,009 rows) by default, as the BESSTIE figurative-language
    study used the English comments; Malay (`my`) and code-mixed (`cm`) are opt-in, None keeps every row. Rows of
    other languages are dropped and counted per language (`attrs["dropped"]`), before the label is read. Rows
    without a majority sentiment (162 in the release) are dropped on purpose and counted. The split is made on the
    rows kept, so the same seed and languages give the same split every time. Every row of the file is checked
    first, whatever the task and languages: integer unique `id`, both label columns (empty = no majority) and
    `lang_id`.
    """
    if task not in BICODEMIX_TASKS:
        raise ValueError(f"task must be one of {tuple(BICODEMIX_TASKS)}, not {task!r}")
    if split not in BICODEMIX_SPLITS:
        raise ValueError(f"split must be one of {BICODEMIX_SPLITS}, not {split!r}")
    chosen_languages = _languages(languages)
    column, names = BICODEMIX_TASKS[task]
    path = data_dir(root) / "bicodemix" / BICODEMIX_FILE
    require_file(path, HINT)
    rows = read_rows(path, required=(BICODEMIX_TEXT, "majority_sent", "majority_sarc", "lang_id"), hint=HINT)
    validate_rows(
        path,
        rows,
        [
            integer("id", "id"),
            unique("id"),
            one_of("majority_sent", ["", *BICODEMIX_TASKS["sentiment"][1]], "label", key=str.strip),
            one_of("majority_sarc", ["", *BICODEMIX_TASKS["sarcasm"][1]], "label", key=str.strip),
            one_of("lang_id", BICODEMIX_LANGUAGES, "language code"),
        ],
    )
    selected = rows["lang_id"].isin(chosen_languages)
    other = rows.loc[~selected, "lang_id"].value_counts()
    rows = rows[selected].reset_index(drop=True)
    frame = labelled_frame(
        rows,
        path=path,
        text_column=BICODEMIX_TEXT,
        label_column=column,
        label_names=names,
        label_map={"": None},
        on_empty_text="drop",
        metadata={"source": "Bicodemix", "task": task},
        keep_columns=("id", "lang_id"),
    )
    frame.attrs["dropped"] = {
        **{_language_reason(code): int(other[code]) for code in BICODEMIX_LANGUAGES if code in other.index},
        **{("no majority label" if "label ''" in k else k): v for k, v in frame.attrs["dropped"].items()},
    }
    frame.attrs["languages"] = list(chosen_languages)
    if frame.empty:
        raise DataError(
            path, None, f"no rows left for {task} in languages {list(chosen_languages)}: {frame.attrs['dropped']}"
        )
    if split == "all":
        frame["split"] = "all"
        return frame
    train_f, dev_f, test_f = fractions
    try:
        rest, test_idx = train_test_split(
            range(len(frame)), test_size=test_f, random_state=seed, stratify=frame["label"]
        )
        train_idx, dev_idx = train_test_split(
            rest, test_size=dev_f / (train_f + dev_f), random_state=seed, stratify=frame["label"].iloc[rest]
        )
    except ValueError as err:  # too few rows, or a label with too few rows to stratify
        counts = frame["label_name"].value_counts().to_dict()
        raise DataError(
            path,
            None,
            f"cannot make the seeded stratified {task} split from {len(frame)} rows (labels {counts}): {err}",
        ) from None
    chosen = {"train": train_idx, "dev": dev_idx, "test": test_idx}[split]
    out = frame.iloc[sorted(chosen)].reset_index(drop=True)
    out.attrs = frame.attrs
    out["split"] = split
    return out


def _languages(languages: Sequence[str] | None) -> tuple[str, ...]:
    """The `lang_id` codes to keep, in the file's canonical order (None: all of them)."""
    if languages is None:
        return BICODEMIX_LANGUAGES
    if isinstance(languages, str):
        languages = [languages]
    unknown = [code for code in languages if code not in BICODEMIX_LANGUAGES]
    if unknown or not languages:
        raise ValueError(
            f"languages must be a non-empty list of lang_id codes from {BICODEMIX_LANGUAGES} "
            f"({', '.join(f'{c}: {n}' for c, n in BICODEMIX_LANGUAGE_NAMES.items())}) or None, not {list(languages)}"
        )
    return tuple(code for code in BICODEMIX_LANGUAGES if code in languages)


def _language_reason(code: str) -> str:
    return f"language {code} ({BICODEMIX_LANGUAGE_NAMES[code]}) not selected"
