"""Common schema for every loader: a DataFrame with `text`, integer `label`, label names kept.

Every loader reads through :func:`read_rows`, which keeps the line number of each record so that a bad file
gets one clear :class:`DataError` (file, line, problem) instead of a pandas traceback; a missing file, a Git LFS
pointer, a truncated or corrupt gzip/zip, another encoding or delimiter, and a header-only file are DataErrors too.
Loaders then check every row of the whole file with :func:`validate_rows` (labels, varieties, sources, tasks,
language codes, ids: values outside the known set are errors, never silent drops) before any filtering, select
their slice with :func:`select_rows` (a filter that leaves nothing names itself and the values that exist), and
build their frame with :func:`labelled_frame`, which maps label strings to integers and counts every row dropped
on purpose.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import os
import sys
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

log = logging.getLogger("workbench.data")

csv.field_size_limit(sys.maxsize)


MAX_SHOWN = 5  # bad rows quoted in one DataError; the rest are counted
LFS_SIGNATURE = b"version https://git-lfs.github.com/spec/"
DELIMITER_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}


class DataError(ValueError):
    """A problem with an input file: which file, which line (1-based, None if the whole file), what is wrong.

    When several rows are bad, `line`/`problem` are the first one, `more` holds the next few `(line, problem)`
    pairs and `total` counts every bad row; the message shows each as `file:line: problem`, then the count.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        line: int | str | None,
        problem: str,
        *,
        more: Sequence[tuple[int | str | None, str]] = (),
        total: int | None = None,
    ):
        self.path, self.line, self.problem = str(path), line, problem
        self.more = [(where, what) for where, what in more]
        self.total = max(total or 0, 1 + len(self.more))
        lines = [f"{self._where(line)}: {problem}"]
        lines += [f"  {self._where(where)}: {what}" for where, what in self.more]
        hidden = self.total - 1 - len(self.more)
        if hidden > 0:
            lines.append(f"  ... and {hidden} more bad row(s): {self.total} in all")
        elif self.more:
            lines.append(f"  {self.total} bad rows in all")
        super().__init__("\n".join(lines))

    def _where(self, line: int | str | None) -> str:
        return f"{self.path}:{line}" if line else self.path


def raise_problems(path: str | os.PathLike, problems: Sequence[tuple[int | None, str]]) -> None:
    """Raise one DataError for `problems` (`(line, problem)` in file order): the first few quoted, all counted."""
    if problems:
        (line, problem), rest = problems[0], problems[1:MAX_SHOWN]
        raise DataError(path, line, problem, more=rest, total=len(problems))


def data_root_source(path: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The data root (as :func:`data_dir` picks it) and why: the argument, `$WORKBENCH_DATA`, or the default."""
    if path:
        return Path(path).expanduser(), "given with --root"
    env = os.environ.get("WORKBENCH_DATA")
    if env:
        return Path(env).expanduser(), "from $WORKBENCH_DATA"
    root = data_dir()
    state = "set but empty" if env is not None else "not set"
    return root, f"default {'./' if str(root) == 'data' else ''}{root}: $WORKBENCH_DATA is {state}"


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data root: `path` if given, else `$WORKBENCH_DATA`, else `./data` (or `../data` when run from
    `notebooks/` in JupyterLab)."""
    chosen = path or os.environ.get("WORKBENCH_DATA")
    if chosen:
        return Path(chosen).expanduser()
    here = Path("data")
    return here if here.is_dir() or not Path("../data").is_dir() else Path("../data")


def _redo(hint: str) -> str:
    return f"Replace it with a complete copy. {hint}".rstrip()


def require_file(path: Path, hint: str = "") -> Path:
    """Return `path` if it is a data file, else raise a DataError that says how to get it (absent, or a Git LFS
    pointer left where the data should be)."""
    if not path.is_file():
        extra = f" {hint}" if hint else ""
        raise DataError(path, None, f"file not found (data root: set WORKBENCH_DATA or use ./data).{extra}")
    with path.open("rb") as handle:
        head = handle.read(len(LFS_SIGNATURE))
    if head == LFS_SIGNATURE:
        raise DataError(
            path,
            None,
            f"a Git LFS pointer ({path.stat().st_size} bytes), not the data: run `git lfs pull` in the repository "
            f"it came from, or put the real file here. {hint}".rstrip(),
        )
    return path


def _decoded_text(path: Path, raw: bytes, encoding: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(path, None, "the file is UTF-16 encoded (byte-order mark); save it as UTF-8")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            path,
            line,
            f"cannot decode as {encoding} (byte {raw[err.start]:#04x}): the file is in another encoding "
            f"(Latin-1? Windows-1252?); convert it to {encoding}",
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise DataError(path, line, "NUL byte in the text: binary data (compressed? UTF-16?) where text was expected")
    return text.removeprefix("\ufeff")


def read_payload(path: Path, hint: str = "") -> bytes:
    """The bytes of a data file: plain, `.gz` (decompressed) or the single member of a `.zip`. A missing file, a
    Git LFS pointer, or a truncated or corrupt archive is a DataError that says what to do."""
    require_file(path, hint)
    raw = path.read_bytes()
    if path.suffix == ".zip":
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                members = [n for n in zf.namelist() if not n.endswith("/")]
                if len(members) != 1:
                    raise DataError(path, None, f"expected one file inside the zip, found {members}")
                return zf.read(members[0])
        except DataError:
            raise
        except Exception as err:  # BadZipFile, zlib.error, EOFError, ...: all mean a damaged archive
            raise DataError(
                path, None, f"truncated or corrupt zip archive ({type(err).__name__}: {err}). {_redo(hint)}"
            ) from None
    if path.suffix == ".gz":
        try:
            return gzip.decompress(raw)
        except Exception as err:  # EOFError (truncated), BadGzipFile, zlib.error (corrupt)
            raise DataError(
                path, None, f"truncated or corrupt gzip file ({type(err).__name__}: {err}). {_redo(hint)}"
            ) from None
    return raw


def read_text(path: Path, encoding: str = "utf-8", hint: str = "") -> str:
    """Read a whole text file (plain, .gz, or the single member of a .zip) with decode errors located."""
    return _decoded_text(path, read_payload(path, hint), encoding)


def _other_delimiter(line: str, delimiter: str, fits: Callable[[list[str]], bool]) -> str:
    """' (the file looks X-separated; ...)' when splitting `line` on another delimiter `fits`, else ''."""
    for other, name in DELIMITER_NAMES.items():
        if other != delimiter and other in line:
            try:
                fields = [f.strip() for f in next(csv.reader([line], delimiter=other), [])]
            except csv.Error:
                continue
            if fits(fields):
                expected = DELIMITER_NAMES.get(delimiter, repr(delimiter))
                return f" (the file looks {name}-separated; this loader reads {expected}-separated files)"
    return ""


def read_rows(
    path: Path,
    *,
    columns: Sequence[str] | None = None,
    required: Sequence[str] = (),
    delimiter: str = ",",
    quoting: int = csv.QUOTE_MINIMAL,
    hint: str = "",
    empty_ok: bool = False,
) -> pd.DataFrame:
    """Parse a delimited file into a DataFrame of strings plus a `line` column (the record's first line).

    `columns=None` reads the header from the first line and checks that `required` are present; otherwise the
    file is headerless with these column names. Any record whose field count differs is a ragged row error; a
    file without data rows is an error unless `empty_ok` (AfriSenti's zero-shot train stubs).
    """
    text = read_text(path, hint=hint)
    first_line = text.split("\n", 1)[0].rstrip("\r")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting, strict=True)
    try:
        if columns is None:
            header = next(reader, None)
            if header is None:
                raise DataError(path, 1, "file is empty (no header line)")
            header = [h.strip() for h in header]
            missing = [c for c in required if c not in header]
            if missing:
                other = _other_delimiter(first_line, delimiter, lambda fields: set(required) <= set(fields))
                raise DataError(path, 1, f"missing column(s) {missing}; found {header}{other}")
            duplicated = sorted({c for c in header if header.count(c) > 1})
            if duplicated:
                raise DataError(path, 1, f"duplicate column name(s) {duplicated} in the header")
        else:
            header = list(columns)
        records, lines, start = [], [], reader.line_num + 1
        for row in reader:
            if row and len(row) != len(header):
                raw_line = text.split("\n", start)[start - 1].rstrip("\r") if start > 0 else ""
                other = _other_delimiter(raw_line, delimiter, lambda fields: len(fields) == len(header))
                raise DataError(
                    path,
                    start,
                    f"ragged row: expected {len(header)} fields ({', '.join(header)}), found {len(row)}{other}",
                )
            if row:
                records.append(row)
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as err:
        raise DataError(path, reader.line_num, f"malformed CSV: {err}") from None
    if not records and not empty_ok:
        what = "only a header line" if columns is None else "no rows"
        raise DataError(path, None, f"no data rows: the file has {what}. {_redo(hint)}")
    frame = pd.DataFrame(records, columns=header, dtype=object)
    frame["line"] = lines
    return frame


# ------------------------------------------------------------------------------------------------- row checks


@dataclass(frozen=True)
class Check:
    """A rule for one column: `bad(values)` marks the rows that break it, `problem(value)` says what is wrong."""

    column: str
    bad: Callable[[pd.Series], object]
    problem: Callable[[object], str]


def one_of(column: str, allowed: Iterable[str], what: str = "value", key: Callable[[str], str] | None = None) -> Check:
    """The column's value (after `key`, e.g. str.strip) must be one of `allowed`."""
    allowed = list(allowed)
    accepted, norm = set(allowed), key or (lambda value: value)
    return Check(
        column,
        lambda values: [norm(str(v)) not in accepted for v in values],
        lambda value: f"unknown {what} {value!r} in column '{column}' (expected one of {allowed})",
    )


def not_empty(column: str, what: str = "text") -> Check:
    """The column must hold something besides whitespace."""
    return Check(
        column, lambda values: [not str(v).strip() for v in values], lambda value: f"empty {what} in column '{column}'"
    )


def integer(column: str, what: str = "value", low: int | None = None, high: int | None = None) -> Check:
    """The column must be a non-negative integer written in digits, within `low..high` when given."""

    def bad(value: object) -> bool:
        text = str(value).strip()
        if not (text.isascii() and text.isdigit()):
            return True
        return (low is not None and int(text) < low) or (high is not None and int(text) > high)

    span = f" in {low}..{high}" if low is not None and high is not None else ""
    return Check(
        column,
        lambda values: [bad(v) for v in values],
        lambda value: f"{what} {value!r} in column '{column}' is not an integer{span}",
    )


def unique(column: str, what: str = "id") -> Check:
    """No value of the column may repeat; every repeat after the first use is reported."""
    return Check(
        column,
        lambda values: values.duplicated(keep="first").tolist(),
        lambda value: f"duplicate {what} {value!r} in column '{column}' (already on an earlier line)",
    )


def validate_rows(path: Path, rows: pd.DataFrame, checks: Iterable[Check]) -> None:
    """Check every row of a parsed file (before any filtering) and raise one DataError that quotes the first bad
    rows (`file:line: problem`) and counts them all. Checks on absent columns are skipped."""
    problems: dict[int, str] = {}
    for check in checks:
        if check.column not in rows.columns:
            continue
        values = rows[check.column]
        flags = list(check.bad(values))
        for position, flagged in enumerate(flags):
            if flagged and position not in problems:
                problems[position] = check.problem(values.iat[position])
    raise_problems(path, [(int(rows["line"].iat[p]), problems[p]) for p in sorted(problems)])


def select_rows(
    path: Path, rows: pd.DataFrame, filters: Sequence[tuple[str, str, Callable[[str], str] | None]]
) -> pd.DataFrame:
    """Rows where each `(column, value, key)` matches (`key(cell) == value`, key None = exact), applied in order.

    A filter that leaves no row is a DataError naming it, the filters before it and the values that do exist."""
    applied: list[str] = []
    for column, value, key in filters:
        cells = rows[column] if key is None else rows[column].map(key)
        mask = (cells == value).to_numpy(dtype=bool)
        if not mask.any():
            among = f" among the rows with {' and '.join(applied)}" if applied else ""
            present = sorted(set(rows[column]))
            raise DataError(path, None, f"no rows with {column} = {value!r}{among}; values present: {present}")
        rows = rows.loc[mask]
        applied.append(f"{column} = {value!r}")
    return rows


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
    Unknown labels are an error naming the lines (every row is checked; the first few are quoted, all counted).
    Empty text is an error unless `on_empty_text="drop"`, in which case such rows are dropped and counted.
    Counts of dropped rows per reason end up in `frame.attrs["dropped"]`; `frame.attrs["label_names"]` keeps the
    names of the integer labels.
    """
    index = {name: i for i, name in enumerate(label_names)}
    mapping = dict(label_map or {})
    expected = sorted(set(mapping) | (set(index) - set(mapping.values())))
    dropped: Counter[str] = Counter()
    problems: list[tuple[int, str]] = []
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
            problems.append(
                (int(line), f"unknown label {raw_label!r} in column '{label_column}' (expected one of {expected})")
            )
            continue
        if text is None or not str(text).strip():
            if on_empty_text == "drop":
                dropped["empty text"] += 1
                continue
            problems.append((int(line), f"empty text in column '{text_column}'"))
            continue
        out_text.append(str(text))
        out_label.append(index[label])
        out_rows.append(pos)
    raise_problems(path, problems)
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
