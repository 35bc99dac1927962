"""Common schema for every loader: a DataFrame with `text`, integer `label`, label names kept.

Every loader reads through :func:`read_rows`, which keeps the line number of each record so that a bad file
gets one clear :class:`DataError` (file, line, problem) instead of a pandas traceback, and builds its frame with
:func:`labelled_frame`, which maps label strings to integers and counts every row dropped on purpose.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import sys
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

log = logging.getLogger("workbench.data")

csv.field_size_limit(sys.maxsize)


class DataError(ValueError):
    """A problem with an input file: which file, which line (1-based, None if the whole file), what is wrong."""

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {problem}")


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data root: `path` if given, else `$WORKBENCH_DATA`, else `./data` (or `../data` when run from
    `notebooks/` in JupyterLab)."""
    chosen = path or os.environ.get("WORKBENCH_DATA")
    if chosen:
        return Path(chosen).expanduser()
    here = Path("data")
    return here if here.is_dir() or not Path("../data").is_dir() else Path("../data")


def require_file(path: Path, hint: str = "") -> Path:
    """Return `path` if it is a file, else raise a DataError that says how to get it."""
    if not path.is_file():
        extra = f" {hint}" if hint else ""
        raise DataError(path, None, f"file not found (data root: set WORKBENCH_DATA or use ./data).{extra}")
    return path


def _decoded_text(path: Path, raw: bytes, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(path, line, f"cannot decode as {encoding} (byte {raw[err.start]:#04x})") from None


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """Read a whole text file (plain, .gz, or the single member of a .zip) with decode errors located."""
    require_file(path)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            members = [n for n in zf.namelist() if not n.endswith("/")]
            if len(members) != 1:
                raise DataError(path, None, f"expected one file inside the zip, found {members}")
            raw = zf.read(members[0])
    elif path.suffix == ".gz":
        import gzip

        raw = gzip.decompress(path.read_bytes())
    else:
        raw = path.read_bytes()
    return _decoded_text(path, raw, encoding)


def read_rows(
    path: Path,
    *,
    columns: Sequence[str] | None = None,
    required: Sequence[str] = (),
    delimiter: str = ",",
    quoting: int = csv.QUOTE_MINIMAL,
) -> pd.DataFrame:
    """Parse a delimited file into a DataFrame of strings plus a `line` column (the record's first line).

    `columns=None` reads the header from the first line and checks that `required` are present; otherwise the
    file is headerless with these column names. Any record whose field count differs is a ragged row error.
    """
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting, strict=True)
    try:
        if columns is None:
            header = next(reader, None)
            if header is None:
                raise DataError(path, 1, "file is empty (no header line)")
            header = [h.strip().lstrip("\ufeff") for h in header]
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(path, 1, f"missing column(s) {missing}; found {header}")
        else:
            header = list(columns)
        records, lines, start = [], [], reader.line_num + 1
        for row in reader:
            if row and len(row) != len(header):
                raise DataError(
                    path, start, f"ragged row: expected {len(header)} fields ({', '.join(header)}), found {len(row)}"
                )
            if row:
                records.append(row)
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as err:
        raise DataError(path, reader.line_num, f"malformed CSV: {err}") from None
    frame = pd.DataFrame(records, columns=header, dtype=object)
    frame["line"] = lines
    return frame


def labelled_frame(
    rows: pd.DataFrame,
    *,
    path: Path,
    text_column: str,
    label_column: str,
    label_names: Sequence[str],
    label_map: Mapping[str, str | None] | None = None,
    on_empty_text: str = "error",
    metadata: Mapping[str, object] | None = None,
    keep_columns: Iterable[str] = (),
) -> pd.DataFrame:
    """Build the common schema from parsed rows.

    Labels are matched against `label_names` (after `label_map`, whose value None means "drop on purpose").
    An unknown label is an error naming the line. Empty text is an error unless `on_empty_text="drop"`, in
    which case such rows are dropped and counted. Counts of dropped rows per reason end up in
    `frame.attrs["dropped"]`; `frame.attrs["label_names"]` keeps the names of the integer labels.
    """
    index = {name: i for i, name in enumerate(label_names)}
    dropped: Counter[str] = Counter()
    keep = list(keep_columns)
    out_text, out_label, out_rows = [], [], []
    for pos, (text, raw_label, line) in enumerate(zip(rows[text_column], rows[label_column], rows["line"])):
        label = (raw_label or "").strip()
        if label_map is not None and label in label_map:
            label = label_map[label]
            if label is None:
                dropped[f"label '{raw_label}' dropped on purpose"] += 1
                continue
        if label not in index:
            raise DataError(
                path,
                int(line),
                f"unknown label {raw_label!r} in column '{label_column}' (expected one of {sorted(index)})",
            )
        if text is None or not str(text).strip():
            if on_empty_text == "drop":
                dropped["empty text"] += 1
                continue
            raise DataError(path, int(line), f"empty text in column '{text_column}'")
        out_text.append(str(text))
        out_label.append(index[label])
        out_rows.append(pos)
    frame = pd.DataFrame({"text": out_text, "label": pd.array(out_label, dtype="int64")})
    frame["label_name"] = [label_names[i] for i in out_label]
    for key, value in (metadata or {}).items():
        frame[key] = value
    for column in keep:
        frame[column] = rows[column].to_numpy()[out_rows]
    frame["line"] = rows["line"].to_numpy()[out_rows]
    frame.attrs["label_names"] = list(label_names)
    frame.attrs["dropped"] = dict(dropped)
    frame.attrs["source_files"] = [str(path)]
    if dropped:
        log.info("%s: dropped %s", path, ", ".join(f"{n} rows ({why})" for why, n in dropped.items()))
    return frame


def concat_frames(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate loader frames, keeping label names (which must agree) and summing drop counts."""
    names = {tuple(f.attrs.get("label_names", ())) for f in frames}
    if len(names) > 1:
        raise ValueError(f"cannot concatenate frames with different label names: {names}")
    out = pd.concat(frames, ignore_index=True)
    dropped: Counter[str] = Counter()
    for f in frames:
        dropped.update(f.attrs.get("dropped", {}))
    out.attrs["label_names"] = list(names.pop()) if names else []
    out.attrs["dropped"] = dict(dropped)
    out.attrs["source_files"] = sorted({p for f in frames for p in f.attrs.get("source_files", [])})
    return out


def remove_overlap(train: pd.DataFrame, *evaluation: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop training rows whose text (whitespace-stripped) appears in any evaluation frame.

    Returns the cleaned frame and the number of rows removed; the count is also added to
    `attrs["dropped"]` so that reports show it.
    """
    seen = set().union(*(set(e["text"].str.strip()) for e in evaluation)) if evaluation else set()
    mask = train["text"].str.strip().isin(seen)
    cleaned = train.loc[~mask].reset_index(drop=True)
    cleaned.attrs = {**train.attrs, "dropped": {**train.attrs.get("dropped", {})}}
    removed = int(mask.sum())
    if removed:
        cleaned.attrs["dropped"]["text also in evaluation set"] = removed
        log.info("removed %d training rows whose text is in the evaluation set", removed)
    return cleaned, removed


def label_distribution(frame: pd.DataFrame) -> dict[str, int]:
    """Counts per label name, in label order."""
    names = frame.attrs.get("label_names") or sorted(frame["label"].unique())
    counts = frame["label"].value_counts()
    return {str(name): int(counts.get(i, 0)) for i, name in enumerate(names)}
