"""Bicodemix: English-Malay code-mixed comments with majority sentiment and sarcasm labels, one file, no split."""

from __future__ import annotations

import os

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
HINT = "Get it with `workbench data download bicodemix`."


def load_bicodemix(
    task: str = "sentiment",
    split: str = "all",
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    root: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """One task's rows, split train/dev/test by a seeded split stratified on the label (no official split).

    Rows without a majority sentiment (162 in the release) are dropped on purpose and counted. The split is
    made on the rows kept for `task`, so the same seed gives the same split every time. Every row is checked
    first, whatever the task: integer unique `id`, both label columns (empty = no majority) and `lang_id`.
    """
    if task not in BICODEMIX_TASKS:
        raise ValueError(f"task must be one of {tuple(BICODEMIX_TASKS)}, not {task!r}")
    if split not in BICODEMIX_SPLITS:
        raise ValueError(f"split must be one of {BICODEMIX_SPLITS}, not {split!r}")
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
        ("no majority label" if "label ''" in k else k): v for k, v in frame.attrs["dropped"].items()
    }
    if frame.empty:
        raise DataError(path, None, f"no rows left for {task}: {frame.attrs['dropped']}")
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
