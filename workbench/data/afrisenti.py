"""AfriSenti (SemEval-2023 Task 12): `afrisenti/<lang>/{train,dev,test}.tsv`, columns `tweet`, `label`."""

from __future__ import annotations

import csv
import os

import pandas as pd

from workbench.data.schema import DataError, data_dir, labelled_frame, read_rows, require_file

AFRISENTI_LABELS = ["negative", "neutral", "positive"]
AFRISENTI_SPLITS = ("train", "dev", "test")


def afrisenti_languages(root: str | os.PathLike | None = None) -> list[str]:
    """Language codes present under `<data>/afrisenti/`."""
    base = data_dir(root) / "afrisenti"
    return sorted(p.name for p in base.iterdir() if (p / "test.tsv").is_file()) if base.is_dir() else []


def load_afrisenti(language: str, split: str = "train", root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One language's split as the common schema (labels negative/neutral/positive).

    Any language code present in the data works; `orm` and `tir` have empty train files (zero-shot languages)
    and give an empty frame.
    """
    if split not in AFRISENTI_SPLITS:
        raise ValueError(f"split must be one of {AFRISENTI_SPLITS}, not {split!r}")
    path = data_dir(root) / "afrisenti" / language / f"{split}.tsv"
    if not path.is_file() and not (data_dir(root) / "afrisenti" / language).is_dir():
        known = afrisenti_languages(root)
        raise DataError(path, None, f"unknown AfriSenti language {language!r}; present: {known or 'none'}")
    require_file(path, "Get it with `workbench data download afrisenti`.")
    rows = read_rows(path, delimiter="\t", quoting=csv.QUOTE_NONE, required=("tweet", "label"))
    return labelled_frame(
        rows,
        path=path,
        text_column="tweet",
        label_column="label",
        label_names=AFRISENTI_LABELS,
        metadata={"language": language, "split": split},
    )
