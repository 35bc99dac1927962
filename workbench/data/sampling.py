"""The one stratified sampler: seeded subsets and dev splits that keep every label's share."""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split


def split_indices(
    n: int, labels, seed: int, *, train_size=None, test_size=None, sort: bool = True
) -> tuple[list[int], list[int]]:
    """Seeded (kept, rest) row indices, stratified on `labels` where every class allows it (sizes as in
    scikit-learn's `train_test_split`: a fraction or a count); sorted, or in the split's shuffled order."""
    try:
        keep, rest = train_test_split(
            range(n), train_size=train_size, test_size=test_size, random_state=seed, stratify=labels
        )
    except ValueError:  # a class too small to stratify: a plain seeded split
        keep, rest = train_test_split(range(n), train_size=train_size, test_size=test_size, random_state=seed)
    return (sorted(keep), sorted(rest)) if sort else (list(keep), list(rest))


def stratified_sample(frame: pd.DataFrame, rows: int | None, seed: int, column: str = "label") -> pd.DataFrame:
    """At most `rows` rows, stratified on `column` and seeded, in their original order; the frame itself when it is
    already small enough. The rows left out are counted in `attrs["dropped"]["subsampled away"]`."""
    if rows is None or len(frame) <= rows:
        return frame
    keep, _ = split_indices(len(frame), frame[column], seed, train_size=int(rows))
    out = frame.iloc[keep].reset_index(drop=True)
    out.attrs = {**frame.attrs, "dropped": {**frame.attrs.get("dropped", {}), "subsampled away": len(frame) - rows}}
    return out


def dev_split(
    frame: pd.DataFrame, fraction: float, seed: int, column: str = "label"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded (train, dev) split of a training frame, stratified on `column` where every class allows it; the dev
    rows pick the epoch to keep, so evaluation rows are only ever used for testing."""
    n_dev = max(2, int(round(fraction * len(frame))))
    train_idx, dev_idx = split_indices(len(frame), frame[column], seed, test_size=n_dev)
    train, dev = frame.iloc[train_idx].reset_index(drop=True), frame.iloc[dev_idx].reset_index(drop=True)
    train.attrs, dev.attrs = dict(frame.attrs), dict(frame.attrs)
    return train, dev
