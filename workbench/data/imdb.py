"""IMDB aclImdb v1.0, 50k labelled reviews packed as one gzip CSV `review,sentiment,split,file_id,rating`."""

from __future__ import annotations

import os

import pandas as pd

from workbench.data.schema import data_dir, labelled_frame, read_rows, require_file

IMDB_FILE = "imdb_50k_aclImdb.csv.gz"
IMDB_LABELS = ["negative", "positive"]


def load_imdb(split: str = "train", root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The original 25k/25k train/test split (or `all`); reviews verbatim, `<br />` tags kept."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', not {split!r}")
    path = require_file(data_dir(root) / "imdb" / IMDB_FILE, "Get it with `workbench data download imdb`.")
    rows = read_rows(path, required=("review", "sentiment", "split"))
    if split != "all":
        rows = rows[rows["split"] == split]
    frame = labelled_frame(
        rows,
        path=path,
        text_column="review",
        label_column="sentiment",
        label_names=IMDB_LABELS,
        metadata={"source": "IMDB"},
        keep_columns=[c for c in ("split", "file_id", "rating") if c in rows.columns],
    )
    return frame
