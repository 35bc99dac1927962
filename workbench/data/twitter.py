"""Twitter entity sentiment (Kaggle): headerless CSV `id,entity,sentiment,text`; training file inside a zip."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from workbench.data.schema import (
    DataError,
    data_dir,
    integer,
    labelled_frame,
    not_empty,
    one_of,
    read_rows,
    require_file,
    validate_rows,
)

TWITTER_LABELS = ("Negative", "Neutral", "Positive", "Irrelevant")
TWITTER_FILES = {"train": "twitter_training.csv.zip", "valid": "twitter_validation.csv"}
TWITTER_COLUMNS = ("id", "entity", "sentiment", "text")
HINT = "Get it with `workbench data download twitter_entity_sentiment`."


def load_twitter_entity(
    split: str = "train",
    labels: Sequence[str] = ("Negative", "Positive"),
    min_words: int = 0,
    root: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Tweets whose sentiment is in `labels` (label ids follow that order, lower-cased names).

    Rows with another label, with empty or whitespace-only text (858 in the training file), or with fewer than
    `min_words` words (the BESSTIE study keeps 40+) are dropped on purpose and counted in `attrs["dropped"]`.
    Every row is checked first: integer `id`, non-empty `entity`, a sentiment among all four labels (a header line,
    which these files do not have, fails the `id` check). Filters that leave no row are DataErrors.
    """
    if split not in TWITTER_FILES:
        raise ValueError(f"split must be one of {tuple(TWITTER_FILES)}, not {split!r}")
    unknown = [name for name in labels if name not in TWITTER_LABELS]
    if unknown:
        raise ValueError(f"unknown Twitter labels {unknown}; expected some of {TWITTER_LABELS}")
    path = data_dir(root) / "twitter_entity_sentiment" / TWITTER_FILES[split]
    if not path.is_file() and path.suffix == ".zip" and path.with_suffix("").is_file():
        path = path.with_suffix("")  # an unzipped copy works too
    require_file(path, HINT)
    rows = read_rows(path, columns=TWITTER_COLUMNS, hint=HINT)
    if len(rows) and not str(rows["id"].iat[0]).strip().isdigit() and rows["sentiment"].iat[0] not in TWITTER_LABELS:
        raise DataError(
            path, int(rows["line"].iat[0]), f"header line {rows.iloc[0, :4].tolist()}: this file has none; remove it"
        )
    validate_rows(
        path,
        rows,
        [
            integer("id", "id"),
            not_empty("entity", "entity"),
            one_of("sentiment", TWITTER_LABELS, "label", key=str.strip),
        ],
    )
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
    if frame.empty:
        present = sorted(set(rows["sentiment"].str.strip()))
        raise DataError(path, None, f"no rows with a label in {list(labels)} and a text; labels present: {present}")
    if min_words:
        words = frame["text"].str.split().str.len()
        short = words < min_words
        if short.all():
            raise DataError(path, None, f"no rows left with min_words={min_words}: the longest text has {words.max()}")
        dropped = {**frame.attrs["dropped"], f"fewer than {min_words} words": int(short.sum())}
        frame = frame.loc[~short].reset_index(drop=True)
        frame.attrs["dropped"] = dropped
    return frame
