"""Twitter entity sentiment (Kaggle): headerless CSV `id,entity,sentiment,text`; training file inside a zip."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from workbench.data.schema import data_dir, labelled_frame, read_rows, require_file

TWITTER_LABELS = ("Negative", "Neutral", "Positive", "Irrelevant")
TWITTER_FILES = {"train": "twitter_training.csv.zip", "valid": "twitter_validation.csv"}
TWITTER_COLUMNS = ("id", "entity", "sentiment", "text")


def load_twitter_entity(
    split: str = "train",
    labels: Sequence[str] = ("Negative", "Positive"),
    min_words: int = 0,
    root: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Tweets whose sentiment is in `labels` (label ids follow that order, lower-cased names).

    Rows with another label, with empty or whitespace-only text (858 in the training file), or with fewer than
    `min_words` words (the BESSTIE study keeps 40+) are dropped on purpose and counted in `attrs["dropped"]`.
    """
    if split not in TWITTER_FILES:
        raise ValueError(f"split must be one of {tuple(TWITTER_FILES)}, not {split!r}")
    unknown = [name for name in labels if name not in TWITTER_LABELS]
    if unknown:
        raise ValueError(f"unknown Twitter labels {unknown}; expected some of {TWITTER_LABELS}")
    path = data_dir(root) / "twitter_entity_sentiment" / TWITTER_FILES[split]
    if not path.is_file() and path.suffix == ".zip" and path.with_suffix("").is_file():
        path = path.with_suffix("")  # an unzipped copy works too
    require_file(path, "Get it with `workbench data download twitter_entity_sentiment`.")
    rows = read_rows(path, columns=TWITTER_COLUMNS)
    label_map = {name: (name.lower() if name in labels else None) for name in TWITTER_LABELS}
    frame = labelled_frame(
        rows,
        path=path,
        text_column="text",
        label_column="sentiment",
        label_names=[name.lower() for name in labels],
        label_map=label_map,
        on_empty_text="drop",
        metadata={"source": "Twitter", "split": split},
        keep_columns=("id", "entity"),
    )
    if min_words:
        short = frame["text"].str.split().str.len() < min_words
        dropped = {**frame.attrs["dropped"], f"fewer than {min_words} words": int(short.sum())}
        frame = frame.loc[~short].reset_index(drop=True)
        frame.attrs["dropped"] = dropped
    return frame
