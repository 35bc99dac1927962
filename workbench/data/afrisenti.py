"""AfriSenti (SemEval-2023 Task 12): `afrisenti/<lang>/{train,dev,test}.tsv`, columns `tweet`, `label`."""

from __future__ import annotations

import csv
import logging
import os

import pandas as pd

from workbench.data.schema import (
    DataError,
    data_dir,
    labelled_frame,
    not_empty,
    one_of,
    read_rows,
    require_file,
    unique,
    validate_rows,
)

AFRISENTI_LABELS = ["negative", "neutral", "positive"]
AFRISENTI_SPLITS = ("train", "dev", "test")
AFRISENTI_ZERO_SHOT = ("orm", "tir")  # released with header-only train files
HINT = "Get it with `workbench data download afrisenti`."
log = logging.getLogger("workbench.data")


def afrisenti_folders(root: str | os.PathLike | None = None) -> list[str]:
    """Every language folder under `<data>/afrisenti/` (hidden folders aside), complete or not."""
    base = data_dir(root) / "afrisenti"
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) if base.is_dir() else []


def afrisenti_missing_splits(language: str, root: str | os.PathLike | None = None) -> list[str]:
    """The split files a language folder lacks (`[]` when it is complete)."""
    folder = data_dir(root) / "afrisenti" / language
    return [f"{split}.tsv" for split in AFRISENTI_SPLITS if not (folder / f"{split}.tsv").is_file()]


def afrisenti_languages(root: str | os.PathLike | None = None) -> list[str]:
    """Language codes present under `<data>/afrisenti/` (folders holding test.tsv); an incomplete folder is
    logged here and listed as incomplete by `workbench data`."""
    languages = []
    for language in afrisenti_folders(root):
        missing = afrisenti_missing_splits(language, root)
        if missing:
            log.warning("afrisenti/%s is incomplete: %s missing", language, ", ".join(missing))
        if "test.tsv" not in missing:
            languages.append(language)
    return languages


def load_afrisenti(language: str, split: str = "train", root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One language's split as the common schema (labels negative/neutral/positive).

    Any language code present in the data works; `orm` and `tir` have empty train files (zero-shot languages)
    and give an empty frame; any other header-only file is an error. Every row is checked (label, non-empty
    tweet, unique `ID` where the file has one) before the frame is built.
    """
    if split not in AFRISENTI_SPLITS:
        raise ValueError(f"split must be one of {AFRISENTI_SPLITS}, not {split!r}")
    path = data_dir(root) / "afrisenti" / language / f"{split}.tsv"
    if not path.is_file() and not (data_dir(root) / "afrisenti" / language).is_dir():
        known = afrisenti_languages(root)
        raise DataError(path, None, f"unknown AfriSenti language {language!r}; present: {known or 'none'}")
    require_file(path, HINT)
    rows = read_rows(
        path,
        delimiter="\t",
        quoting=csv.QUOTE_NONE,
        required=("tweet", "label"),
        hint=HINT,
        empty_ok=split == "train" and language in AFRISENTI_ZERO_SHOT,
    )
    validate_rows(
        path,
        rows,
        [
            not_empty("ID", "id"),
            unique("ID"),
            one_of("label", AFRISENTI_LABELS, "label", key=str.strip),
            not_empty("tweet"),
        ],
    )
    return labelled_frame(
        rows,
        path=path,
        text_column="tweet",
        label_column="label",
        label_names=AFRISENTI_LABELS,
        metadata={"language": language, "split": split},
    )
