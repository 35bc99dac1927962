"""IMDB aclImdb v1.0, 50k labelled reviews packed as one gzip CSV `review,sentiment,split,file_id,rating`."""

from __future__ import annotations

import os

import pandas as pd

from workbench.data.schema import (
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

IMDB_FILE = "imdb_50k_aclImdb.csv.gz"
IMDB_LABELS = ["negative", "positive"]
IMDB_SPLITS = ("train", "test")
HINT = "Get it with `workbench data download imdb`."


def load_imdb(split: str = "train", root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The original 25k/25k train/test split (or `all`); reviews verbatim, `<br />` tags kept.

    Every row of the file is checked before the split is taken: non-empty review, sentiment, split, integer
    `file_id` and `rating` 1..10. A truncated or corrupt gzip is a DataError that says to download it again.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', not {split!r}")
    path = require_file(data_dir(root) / "imdb" / IMDB_FILE, HINT)
    rows = read_rows(path, required=("review", "sentiment", "split"), hint=HINT)
    validate_rows(
        path,
        rows,
        [
            not_empty("review", "review"),
            one_of("sentiment", IMDB_LABELS, "label", key=str.strip),
            one_of("split", IMDB_SPLITS, "split"),
            integer("file_id", "file id"),
            integer("rating", "rating", 1, 10),
        ],
    )
    if split != "all":
        rows = select_rows(path, rows, [("split", split, None)])
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
