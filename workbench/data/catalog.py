"""What data is present: one row per (dataset, subset, split) with row counts, label distribution and drops.

This is what `workbench data` prints. It reads every file through the same loaders the studies use, so a file
that the loaders would reject fails here too, with the same `DataError`. A dataset whose folder is absent is
listed as missing, with the command that fetches it. A dataset folder that lacks one of its files (an AfriSenti
language without `test.tsv`, an `imdb/` folder without its CSV) is incomplete: its rows say so, and the paths are
in `table.attrs["incomplete"]`, which makes `workbench data` exit non-zero.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from workbench.data.afrisenti import AFRISENTI_SPLITS, afrisenti_folders, load_afrisenti
from workbench.data.besstie import BESSTIE_SOURCES, BESSTIE_TASKS, BESSTIE_VARIETIES, load_besstie
from workbench.data.bicodemix import BICODEMIX_TASKS, load_bicodemix
from workbench.data.imdb import load_imdb
from workbench.data.schema import DataError, data_dir, label_distribution
from workbench.data.twitter import TWITTER_FILES, TWITTER_LABELS, load_twitter_entity

COLUMNS = ["dataset", "subset", "split", "rows", "labels", "dropped", "status", "note"]
MOSI_FILE = Path("multimodal/cmu_mosi/mosi_bclstm_utterances.npz")
DOWNLOAD_HINT = {
    "afrisenti": "workbench data download afrisenti",
    "besstie": "workbench data download besstie (gated: prints how to request access)",
    "twitter_entity_sentiment": "workbench data download twitter_entity_sentiment",
    "bicodemix": "workbench data download bicodemix",
    "imdb": "workbench data download imdb",
    "multimodal": "workbench data download mosi (prints how to get CMU-MOSI / MOSEI)",
}


def _labels_text(counts: dict[str, int]) -> str:
    return " / ".join(f"{name} {count}" for name, count in counts.items())


def _dropped_text(dropped: dict[str, int]) -> str:
    return "; ".join(f"{reason}: {count}" for reason, count in dropped.items())


def _row(dataset: str, subset: str, split: str, frame: pd.DataFrame, note: str = "") -> dict[str, object]:
    return {
        "dataset": dataset,
        "subset": subset,
        "split": split,
        "rows": len(frame),
        "labels": _labels_text(label_distribution(frame)) if len(frame) else "",
        "dropped": _dropped_text(frame.attrs.get("dropped", {})),
        "status": "ok" if len(frame) else "empty",
        "note": note,
    }


def _missing(
    dataset: str, subset: str = "", split: str = "", what: str = "", incomplete: Path | None = None
) -> dict[str, object]:
    """A 'missing' row; `incomplete` is the absent file of a dataset folder that is present (kept under the key
    `_incomplete`, which the table drops and `summarize` collects)."""
    prefix = "incomplete folder: " if incomplete else ""
    note = f"{prefix}{what + '; ' if what else ''}get it with: {DOWNLOAD_HINT[dataset]}"
    row = {"dataset": dataset, "subset": subset, "split": split, "rows": 0, "labels": "", "dropped": ""} | {
        "status": "missing",
        "note": note,
    }
    if incomplete is not None:
        row["_incomplete"] = str(incomplete)
    return row


def _is_absent_file(err: DataError) -> bool:
    """A DataError about a file that does not exist (as opposed to a malformed one)."""
    return err.line is None and not Path(err.path).exists()


def _or_missing(
    dataset: str, subset: str, split: str, load: Callable[..., pd.DataFrame], *args, note: str = "", **kwargs
) -> dict:
    """`load(*args, **kwargs)` as one row; a file that does not exist becomes a 'missing' row, any other DataError
    propagates."""
    try:
        return _row(dataset, subset, split, load(*args, **kwargs), note)
    except DataError as err:
        if not _is_absent_file(err):
            raise
        return _missing(dataset, subset, split, f"{Path(err.path).name} not found", incomplete=Path(err.path))


def _afrisenti(root: Path) -> Iterator[dict]:
    """Every language folder, complete or not: a split file that is absent gives an 'incomplete' row."""
    for language in afrisenti_folders(root):
        for split in AFRISENTI_SPLITS:
            row = _or_missing("afrisenti", language, split, load_afrisenti, language, split, root=root)
            if row["status"] == "empty":
                row["note"] = "empty stub in the release (zero-shot language)"
            yield row


def _besstie(root: Path) -> Iterator[dict]:
    for task in BESSTIE_TASKS:
        for variety in BESSTIE_VARIETIES:
            for source in BESSTIE_SOURCES:
                for split in ("train", "valid"):
                    seeded = variety == "en-IN" and source == "Google"
                    note = "seeded stratified split of the official validation rows (seed 0)" if seeded else ""
                    subset = f"{task} {variety} {source}"
                    yield _or_missing(
                        "besstie", subset, split, load_besstie, task, variety, source, split, root=root, note=note
                    )


def _twitter(root: Path) -> Iterator[dict]:
    for split in TWITTER_FILES:
        yield _or_missing(
            "twitter_entity_sentiment",
            "all 4 labels",
            split,
            load_twitter_entity,
            split,
            labels=TWITTER_LABELS,
            root=root,
        )


def _bicodemix(root: Path) -> Iterator[dict]:
    note = (
        "no official split: loaders make a seeded stratified 70/10/20 train/dev/test split; loaders keep the "
        "English comments (lang_id en) by default: languages=None for all"
    )
    for task in BICODEMIX_TASKS:
        yield _or_missing("bicodemix", task, "all", load_bicodemix, task, "all", root=root, languages=None, note=note)


def _imdb(root: Path) -> Iterator[dict]:
    try:
        frame = load_imdb("all", root=root)
    except DataError as err:
        if not _is_absent_file(err):
            raise
        yield _missing("imdb", "aclImdb v1.0", "", "imdb_50k_aclImdb.csv.gz not found", incomplete=Path(err.path))
        return
    for split in ("train", "test"):
        part = frame[frame["split"] == split]
        if part.empty:  # the same check as load_imdb(split), without reading the file again
            present = sorted(set(frame["split"]))
            path = frame.attrs["source_files"][0]
            raise DataError(path, None, f"no rows with split = {split!r}; values present: {present}")
        part.attrs = frame.attrs
        yield _row("imdb", "aclImdb v1.0", split, part)


def _multimodal(root: Path) -> Iterator[dict]:
    """MOSI rows from `workbench.data.multimodal.summarize_multimodal` when both the file and the module exist."""
    if not (root / MOSI_FILE).is_file():
        folder_present = (root / MOSI_FILE).parent.is_dir()  # multimodal/ alone may hold only MOSEI
        yield _missing(
            "multimodal",
            "cmu_mosi",
            "",
            f"{MOSI_FILE} not found",
            incomplete=root / MOSI_FILE if folder_present else None,
        )
        return
    try:
        from workbench.data.multimodal import summarize_multimodal
    except ImportError:
        yield {**_missing("multimodal", "cmu_mosi"), "status": "present", "note": "multimodal loader not installed"}
        return
    for row in summarize_multimodal(root):
        labels = row.get("labels", "")
        yield {
            **dict.fromkeys(COLUMNS, ""),
            **row,
            "dataset": "multimodal",
            "subset": " ".join(str(row[key]) for key in ("dataset", "subset") if row.get(key)),
            "labels": _labels_text(labels) if isinstance(labels, dict) else str(labels),
            "status": "ok" if row.get("rows") else "empty",
        }


DATASETS: dict[str, Callable[[Path], Iterator[dict]]] = {
    "afrisenti": _afrisenti,
    "besstie": _besstie,
    "twitter_entity_sentiment": _twitter,
    "bicodemix": _bicodemix,
    "imdb": _imdb,
    "multimodal": _multimodal,
}


def summarize(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per (dataset, subset, split) present under the data root (default `$WORKBENCH_DATA` or ./data).

    Columns: dataset, subset, split, rows, labels ("negative 1146 / neutral 1257 / positive 899"), dropped
    (reason: count), status (ok / empty / missing), note (seeded splits, empty stubs, how to get what is missing).
    A dataset folder that is absent gives one 'missing' row; a malformed file raises its DataError. `attrs` holds
    `root`, `found` (dataset folders present) and `incomplete` (absent files of present folders).
    """
    base = data_dir(root)
    rows: list[dict] = []
    found: list[str] = []
    for dataset, summarize_one in DATASETS.items():
        folder = base / dataset
        if not folder.is_dir():
            rows.append(_missing(dataset, what=f"no {dataset}/ folder under {base}"))
            continue
        found.append(dataset)
        rows.extend(summarize_one(base))
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.attrs["root"] = str(base)
    table.attrs["found"] = found
    table.attrs["incomplete"] = list(dict.fromkeys(r["_incomplete"] for r in rows if "_incomplete" in r))
    return table
