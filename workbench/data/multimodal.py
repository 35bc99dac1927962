"""Multimodal sentiment data: CMU-MOSI utterance features (bc-LSTM release) and CMU-MOSEI for users who have it.

Every loader returns a :class:`MultimodalCorpus`: per split, a frame (one row per sample: `text`, integer
`label`, `label_name`, `score`, ids) plus one float array per modality (`text`, `audio`, `visual`), either one
vector per sample (MOSI: `(n, d)`) or time steps (MOSEI: `(n, T, d)` with a valid length per sample and modality).

Labels come from the continuous score in [-3, 3] (:func:`sentiment_labels`): `binary` (score >= 0 is positive, the
MOSI release's own labels), `3class` (negative < -band, neutral within the band, positive > band; band 0 means
neutral is exactly 0) and `7class` (score rounded half to even, as numpy and MMSA do, and clipped to -3..3).

MOSI caveat (see its PROVENANCE.md): the text and visual features were learned on the released train split, so
evaluate on the released test split only; a validation set carved from train videos overstates text and visual.
"""

from __future__ import annotations

import json
import os
import pickle
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.data.schema import DataError, data_dir, require_file

MODALITIES = ("text", "audio", "visual")
LABEL_SCHEMES = ("binary", "3class", "7class")
MOSI_FILE = Path("multimodal") / "cmu_mosi" / "mosi_bclstm_utterances.npz"
MOSI_KEYS = {
    "ids": "U",
    "video_id": "U",
    "segment": "i",
    "transcript": "U",
    "text": "f",
    "audio": "f",
    "video": "f",
    "label_binary": "i",
    "score": "f",
    "start": "f",
    "end": "f",
    "split_bclstm": "U",
}
MMSA_SPLITS = {"train": "train", "valid": "valid", "test": "test"}
MMSA_MODALITY_KEYS = {"text": "text", "audio": "audio", "visual": "vision"}
MMSA_LENGTH_KEYS = {"audio": "audio_lengths", "visual": "vision_lengths"}
CSD_DEFAULT_NAMES = {
    "text": ("CMU_MOSEI_TimestampedWordVectors.csd", "CMU_MOSEI_TimestampedGloveVectors.csd", "text.csd"),
    "audio": ("CMU_MOSEI_COVAREP.csd", "audio.csd"),
    "visual": ("CMU_MOSEI_VisualFacet42.csd", "visual.csd"),
    "labels": ("CMU_MOSEI_Labels.csd", "labels.csd"),
}


# ----------------------------------------------------------------------------------------------------------- labels


def sentiment_labels(scores: np.ndarray, scheme: str = "binary", band: float = 0.0) -> tuple[np.ndarray, list[str]]:
    """Integer labels and their names from continuous scores in [-3, 3].

    `binary`: score >= 0 -> positive (the MOSI release's labels; zeros count as positive). `3class`: negative if
    score < -band, positive if score > band, else neutral. `7class`: `np.round` (half to even, the MMSA and
    PROVENANCE convention), clipped to -3..3.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scheme == "binary":
        return (scores >= 0).astype(np.int64), ["negative", "positive"]
    if scheme == "3class":
        if band < 0:
            raise ValueError(f"band must be >= 0, not {band}")
        labels = np.where(scores < -band, 0, np.where(scores > band, 2, 1))
        return labels.astype(np.int64), ["negative", "neutral", "positive"]
    if scheme == "7class":
        rounded = np.clip(np.round(scores), -3, 3)
        return (rounded + 3).astype(np.int64), ["-3", "-2", "-1", "0", "+1", "+2", "+3"]
    raise ValueError(f"unknown label scheme {scheme!r}; expected one of {LABEL_SCHEMES}")


# ------------------------------------------------------------------------------------------------------ containers


@dataclass
class MultimodalSplit:
    """One split: `frame` (one row per sample), `features[m]` of shape (n, d) or (n, T, d), and for time-step data
    `lengths[m]` (valid steps per sample; steps beyond it are zero padding)."""

    frame: pd.DataFrame
    features: dict[str, np.ndarray]
    lengths: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def has_time_axis(self) -> bool:
        return next(iter(self.features.values())).ndim == 3

    def __len__(self) -> int:
        return len(self.frame)


@dataclass
class MultimodalCorpus:
    """A named multimodal dataset: splits, modality order, the label scheme in use and where it came from."""

    name: str
    splits: dict[str, MultimodalSplit]
    scheme: str = "binary"
    band: float = 0.0
    source_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(next(iter(self.splits.values())).features)

    @property
    def feature_dims(self) -> dict[str, int]:
        first = next(iter(self.splits.values()))
        return {m: int(x.shape[-1]) for m, x in first.features.items()}

    @property
    def label_names(self) -> list[str]:
        return sentiment_labels(np.zeros(1), self.scheme, self.band)[1]

    def relabel(self, scheme: str, band: float = 0.0) -> MultimodalCorpus:
        """The same corpus with labels from another scheme (features are shared, not copied)."""
        splits = {name: _with_labels(s, scheme, band) for name, s in self.splits.items()}
        return replace(self, splits=splits, scheme=scheme, band=band)


def _with_labels(split: MultimodalSplit, scheme: str, band: float) -> MultimodalSplit:
    frame = split.frame.copy()
    labels, names = sentiment_labels(frame["score"].to_numpy(), scheme, band)
    frame["label"] = labels
    frame["label_name"] = [names[i] for i in labels]
    frame.attrs = {**split.frame.attrs, "label_names": names}
    return MultimodalSplit(frame, split.features, split.lengths)


# ------------------------------------------------------------------------------------------------------------ MOSI


def _mosi_arrays(path: Path) -> dict[str, np.ndarray]:
    """Read and validate the MOSI npz: every key present, dtype kinds right, one row per utterance, values sane."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as err:  # BadZipFile, EOFError, zlib.error, ValueError (object arrays need pickle), ...
        if str(err).startswith("Object arrays"):  # an npz member saved with pickle
            raise DataError(
                path, None, "holds an object array, which only pickle can load: refused (numbers and strings only)"
            ) from None
        raise DataError(
            path,
            None,
            f"not a readable .npz archive, truncated or corrupt? ({type(err).__name__}: {err}). Replace it with a "
            "complete copy (see PROVENANCE.md).",
        ) from None
    try:
        _check_mosi(path, arrays)
    except DataError:
        raise
    except Exception as err:  # an array of an unexpected shape (0-d, ...) trips the checks themselves
        raise DataError(path, None, f"unexpected array layout ({type(err).__name__}: {err})") from None
    return arrays


def _check_mosi(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Every MOSI key present, dtype kinds right, one row per utterance, values sane; else a DataError."""
    missing = [k for k in MOSI_KEYS if k not in arrays]
    if missing:
        raise DataError(path, None, f"missing key(s) {missing}; found {sorted(arrays)}")
    n = len(arrays["ids"])
    for key, kind in MOSI_KEYS.items():
        value = arrays[key]
        if value.dtype.kind not in (kind, "u" if kind == "i" else kind):
            raise DataError(path, None, f"key '{key}': dtype {value.dtype} is not of kind '{kind}'")
        if value.shape[0] != n:
            raise DataError(path, None, f"key '{key}': {value.shape[0]} rows, expected {n} (one per utterance)")
        expected_ndim = 2 if key in ("text", "audio", "video") else 1
        if value.ndim != expected_ndim:
            raise DataError(path, None, f"key '{key}': shape {value.shape}, expected {expected_ndim} dimension(s)")
        if kind == "f" and not np.isfinite(value).all():
            bad = int(np.argwhere(~np.isfinite(value.reshape(n, -1)))[0, 0])
            raise DataError(path, None, f"key '{key}': non-finite value at row {bad} (id {arrays['ids'][bad]})")
    score = arrays["score"]
    if (np.abs(score) > 3).any():
        bad = int(np.argmax(np.abs(score) > 3))
        raise DataError(path, None, f"key 'score': {score[bad]} outside [-3, 3] at row {bad} (id {arrays['ids'][bad]})")
    if not np.isin(arrays["label_binary"], (0, 1)).all():
        raise DataError(path, None, "key 'label_binary': values other than 0/1")
    mismatch = np.flatnonzero(arrays["label_binary"] != (score >= 0))
    if mismatch.size:
        raise DataError(path, None, f"key 'label_binary' disagrees with score >= 0 at {mismatch.size} rows")
    unknown = sorted(set(arrays["split_bclstm"]) - {"train", "test"})
    if unknown:
        raise DataError(path, None, f"key 'split_bclstm': unknown split(s) {unknown} (expected train/test)")
    if len(set(arrays["ids"])) != n:
        raise DataError(path, None, "key 'ids': duplicate utterance ids")
    present = sorted({str(v) for v in arrays["split_bclstm"]})
    for name in ("train", "test"):
        if name not in present:
            raise DataError(path, None, f"key 'split_bclstm': no {name} rows; values present: {present}")


def mosi_path(root: str | os.PathLike | None = None) -> Path:
    """Where the MOSI npz lives under the data root."""
    return data_dir(root) / MOSI_FILE


def load_mosi(scheme: str = "binary", band: float = 0.0, root: str | os.PathLike | None = None) -> MultimodalCorpus:
    """CMU-MOSI bc-LSTM utterance features, released (video-independent) train/test split only.

    One vector per utterance and modality: text 100-d, audio 73-d, visual 100-d (float32). Rows are sorted by
    video, then segment number, so that each video's utterances are contiguous and in order. There is no
    validation split on purpose: the text/visual extractors saw the train labels (see PROVENANCE.md).
    """
    path = require_file(mosi_path(root), "The bc-LSTM MOSI release is staged in shared/data (see PROVENANCE.md).")
    arrays = _mosi_arrays(path)
    order = np.lexsort((arrays["segment"], arrays["video_id"]))
    frame = pd.DataFrame(
        {
            "text": arrays["transcript"][order].astype(str),
            "id": arrays["ids"][order].astype(str),
            "video_id": arrays["video_id"][order].astype(str),
            "segment": arrays["segment"][order].astype(np.int64),
            "score": arrays["score"][order],
            "start": arrays["start"][order],
            "end": arrays["end"][order],
            "split": arrays["split_bclstm"][order].astype(str),
        }
    )
    features = {"text": arrays["text"], "audio": arrays["audio"], "visual": arrays["video"]}
    splits = {}
    for name in ("train", "test"):
        rows = (frame["split"] == name).to_numpy()
        part = frame.loc[rows].reset_index(drop=True)
        part.attrs = {"dropped": {}, "source_files": [str(path)]}
        feats = {m: x[order][rows].astype(np.float32) for m, x in features.items()}
        splits[name] = MultimodalSplit(part, feats)
    corpus = MultimodalCorpus(
        "CMU-MOSI",
        splits,
        source_files=[str(path)],
        notes=["text and visual features were learned on the train split: train scores overstate them"],
    )
    return corpus.relabel(scheme, band)


def summarize_multimodal(root: str | os.PathLike | None = None) -> list[dict[str, object]]:
    """Catalog rows (dataset, subset, split, rows, labels) for `workbench data`; empty if MOSI is not present."""
    try:
        corpus = load_mosi(root=root)
    except DataError as err:
        if "file not found" in err.problem:
            return []
        raise
    rows = []
    for split, part in corpus.splits.items():
        counts = Counter(part.frame["label_name"])
        rows.append(
            {
                "dataset": "CMU-MOSI",
                "subset": "bc-LSTM utterances (text 100, audio 73, visual 100)",
                "split": split,
                "rows": len(part),
                "labels": {name: int(counts.get(name, 0)) for name in corpus.label_names},
            }
        )
    return rows


# ----------------------------------------------------------------------------------------------- MOSEI: MMSA pickle


class _UnsafePickle(Exception):
    """A numpy object in the pickle that the safe reconstruction refuses (turned into a DataError by the loader)."""


class _NDArrayClass:
    """Stands for `numpy.ndarray` in the pickle: only `_reconstruct` may use it; calling it is refused."""

    def __new__(cls, *args, **kwargs):
        raise _UnsafePickle("numpy.ndarray called directly")


class _DTypeStub:
    """What the pickle's `numpy.dtype(spec, align, copy)` call and its state build; :meth:`dtype` makes a fresh,
    canonical dtype from the spec, the byte order and the item size only (never numpy's flags or fields from the
    file), and refuses anything but plain numeric, bytes, unicode and object dtypes."""

    def __init__(self, spec=None, align=False, copy=True, *rest):
        self.spec, self.state, self._dtype = spec, None, None

    def __setstate__(self, state) -> None:
        self.state = state

    def dtype(self) -> np.dtype:
        if self._dtype is None:
            if not isinstance(self.spec, str) or not self.spec.strip():
                raise _UnsafePickle(f"dtype spec {self.spec!r}")
            base = np.dtype(self.spec)
            if base.kind not in "biufcSUO" or base.shape or base.names:
                raise _UnsafePickle(f"dtype {self.spec!r} (only plain numbers, strings and objects)")
            order, size = "|", base.itemsize
            if self.state is not None:
                if (
                    not isinstance(self.state, tuple)
                    or len(self.state) < 8
                    or any(x is not None for x in self.state[2:5])
                ):
                    raise _UnsafePickle(f"dtype state {self.state!r}")
                order, size = self.state[1], self.state[5]
                if order not in ("<", ">", "|", "=") or not isinstance(size, int):
                    raise _UnsafePickle(f"dtype state {self.state!r}")
            if base.kind == "U" and base.itemsize == 0:
                base = np.dtype(f"U{max(size, 0) // 4}")
            elif base.kind == "S" and base.itemsize == 0:
                base = np.dtype(f"S{max(size, 0)}")
            self._dtype = base.newbyteorder(order) if order in "<>" and base.itemsize > 1 else base
        return self._dtype


class _ArrayStub:
    """What `_reconstruct(ndarray, ...)` and the array's state build; :func:`_safe_array` turns it into an array."""

    def __init__(self):
        self.state = None

    def __setstate__(self, state) -> None:
        self.state = state


def _reconstruct(subtype, shape=None, dtype_code=None) -> _ArrayStub:
    if subtype is not _NDArrayClass:
        raise _UnsafePickle(f"_reconstruct of {subtype!r}")
    return _ArrayStub()


def _as_dtype(dtype) -> np.dtype:
    if not isinstance(dtype, _DTypeStub):
        raise _UnsafePickle(f"dtype {dtype!r}")
    return dtype.dtype()


def _from_bytes(data, dtype: np.dtype, shape, order: str) -> np.ndarray:
    """An array built only by `np.frombuffer` (numeric / string dtypes) or element by element (object dtype)."""
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise _UnsafePickle(f"array shape {shape!r}")
    count = 1
    for d in shape:
        count *= d
    if dtype.kind == "O":
        if not isinstance(data, list) or len(data) != count:
            raise _UnsafePickle("object array without one list item per element")
        flat = np.empty(count, dtype=object)
        for i, item in enumerate(data):
            flat[i] = _safe_tree(item)
        return flat.reshape(shape, order=order)
    if isinstance(data, pickle.PickleBuffer):
        data = data.raw()
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) != count * dtype.itemsize:
        raise _UnsafePickle(f"array data of {type(data).__name__} for {count} x {dtype}")
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order=order)


def _safe_array(stub: _ArrayStub) -> np.ndarray:
    state = stub.state
    if isinstance(state, tuple) and len(state) == 5:
        state = state[1:]  # (version, shape, dtype, is_fortran, data)
    if not isinstance(state, tuple) or len(state) != 4:
        raise _UnsafePickle("array state")
    shape, dtype, fortran, data = state
    return _from_bytes(data, _as_dtype(dtype), shape, "F" if fortran else "C")


def _frombuffer(buffer, dtype, shape, order) -> np.ndarray:  # what pickle protocol 5 calls
    if order not in ("C", "F"):
        raise _UnsafePickle(f"array order {order!r}")
    return _from_bytes(buffer, _as_dtype(dtype), shape, order)


def _scalar(dtype, data=None):
    dtype = _as_dtype(dtype)
    if dtype.kind == "O":
        return _safe_tree(data)
    return _from_bytes(data, dtype, (), "C")[()]


def _safe_tree(value):
    """The unpickled payload with every stub replaced by a real array or dtype (containers rebuilt as they were)."""
    if isinstance(value, _ArrayStub):
        return _safe_array(value)
    if isinstance(value, _DTypeStub):
        return value.dtype()
    if isinstance(value, dict):
        out = type(value)()
        for key, item in value.items():
            out[_safe_tree(key)] = _safe_tree(item)
        return out
    if isinstance(value, (list, tuple)):
        items = [_safe_tree(item) for item in value]
        return items if isinstance(value, list) else tuple(items)
    return value


# The only globals a pickle may name, each mapped to a safe stand-in (numpy 1.x and 2.x spellings; `_frombuffer`
# is what pickle protocol 5 uses), plus plain containers that are not pickle opcodes of their own.
_PICKLE_ALLOWED = {
    ("numpy", "ndarray"): _NDArrayClass,
    ("numpy", "dtype"): _DTypeStub,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,  # pickle protocols <= 3 spell these containers as globals
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickler that builds only dicts, lists, tuples, sets, strings, bytes, numbers and numpy arrays.

    `find_class` is the only way a pickle reaches a callable (GLOBAL, STACK_GLOBAL and the copyreg extension codes
    all go through it), so refusing every global outside `_PICKLE_ALLOWED` means a class instance, `os.system` or
    any other reference is refused before anything is called; nothing is imported on the pickle's behalf.
    Persistent ids are refused by `pickle.Unpickler`. The numpy names it admits are stand-ins that rebuild arrays
    with `np.frombuffer` from a fresh dtype (never numpy's own `__setstate__` with flags from the file): call
    :meth:`load_safe` to get the payload with real arrays.
    """

    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) in _PICKLE_ALLOWED:
            return _PICKLE_ALLOWED[module, name]
        raise DataError(
            self.path,
            None,
            f"pickle refers to {module}.{name}; refused: only numpy arrays and plain containers are allowed "
            "(an MMSA feature pickle holds nothing else)",
        )

    def load_safe(self):
        try:
            return _safe_tree(self.load())
        except _UnsafePickle as err:
            raise DataError(self.path, None, f"refused numpy object in the pickle: {err}") from None


def _mmsa_split(path: Path, name: str, part: object, max_steps: int | None) -> MultimodalSplit:
    if not isinstance(part, Mapping):
        raise DataError(path, None, f"key '{name}': expected a dict, found {type(part).__name__}")
    needed = [*MMSA_MODALITY_KEYS.values(), "regression_labels"]
    missing = [k for k in needed if k not in part]
    if missing:
        raise DataError(path, None, f"key '{name}': missing {missing}; found {sorted(map(str, part))}")
    scores = np.asarray(part["regression_labels"], dtype=np.float64).reshape(-1)
    n = len(scores)
    if not np.isfinite(scores).all() or (np.abs(scores) > 3).any():
        raise DataError(path, None, f"key '{name}/regression_labels': values must be finite and within [-3, 3]")
    features, lengths, frame_notes = {}, {}, []
    for modality, key in MMSA_MODALITY_KEYS.items():
        x = np.asarray(part[key])
        if x.dtype.kind not in "fiu" or x.ndim != 3 or x.shape[0] != n:
            raise DataError(
                path,
                None,
                f"key '{name}/{key}': shape {x.shape} dtype {x.dtype}, expected numeric ({n}, time steps, dims)",
            )
        x = x.astype(np.float32)
        steps = np.full(n, x.shape[1], dtype=np.int64)
        length_key = MMSA_LENGTH_KEYS.get(modality)
        if length_key and length_key in part:
            steps = np.asarray(part[length_key], dtype=np.int64).reshape(-1)
            if len(steps) != n or (steps < 0).any() or (steps > x.shape[1]).any():
                raise DataError(path, None, f"key '{name}/{length_key}': need {n} lengths within 0..{x.shape[1]}")
        features[modality], lengths[modality], zeroed = _clean_steps(x, steps, max_steps)
        if zeroed:
            frame_notes.append(f"{name}/{key}: {zeroed} non-finite values set to 0")
    ids = [str(i) for i in np.asarray(part.get("id", np.arange(n))).reshape(-1)]
    if len(ids) != n:
        raise DataError(path, None, f"key '{name}/id': {len(ids)} ids for {n} samples")
    raw = part.get("raw_text")
    text = [str(t) for t in np.asarray(raw).reshape(-1)] if raw is not None else ids
    frame = pd.DataFrame(
        {"text": text, "id": ids, "video_id": [i.rsplit("$_$", 1)[0] for i in ids], "score": scores, "split": name}
    )
    frame.attrs = {"dropped": {}, "source_files": [str(path)], "notes": frame_notes}
    return MultimodalSplit(frame, features, lengths)


def _clean_steps(x: np.ndarray, steps: np.ndarray, max_steps: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Zero non-finite values (MOSEI's COVAREP has -inf), cut to `max_steps`; returns (features, lengths, zeroed)."""
    finite = np.isfinite(x)
    x = np.where(finite, x, 0.0).astype(np.float32)
    if max_steps is not None:
        x, steps = x[:, :max_steps], np.minimum(steps, max_steps)
    return x, steps, int((~finite).sum())


def load_mmsa_pickle(
    path: str | os.PathLike, scheme: str = "3class", band: float = 0.0, max_steps: int | None = None
) -> MultimodalCorpus:
    """CMU-MOSEI (or MOSI) features in the MMSA layout: a pickle holding `train`/`valid`/`test` dicts, each with
    `text`, `audio`, `vision` arrays (n, T, d), `regression_labels` (n,), optionally `id`, `raw_text`,
    `audio_lengths`, `vision_lengths`.

    Pickles are code, so the file is read only through a restricted unpickler (a `pickle.Unpickler` subclass
    whose `find_class` admits plain containers and numpy array reconstruction only: `numpy(._core|.core).
    multiarray._reconstruct` and `.scalar`, `numpy.ndarray`, `numpy.dtype`, `numpy(._core|.core).numeric.
    _frombuffer`, `collections.OrderedDict`, `builtins.set`/`frozenset`/`bytearray`). Any other global (a class
    instance, `os.system`, ...) is refused before it is called, with a DataError naming the file and the refused
    global. The admitted numpy names are safe stand-ins: arrays are rebuilt with `np.frombuffer` from a fresh
    plain dtype (numeric, bytes, unicode or object), so a crafted dtype or array state is refused too. This
    function never looks for a pickle on its own: pass a path you chose. Non-finite feature values are set to 0
    and counted in the notes.
    """
    path = require_file(Path(path))
    try:
        with path.open("rb") as handle:
            payload = _ArraysOnlyUnpickler(handle, path).load_safe()
    except DataError:
        raise
    except Exception as err:  # a truncated or foreign file fails in many ways; all mean "not an MMSA pickle"
        raise DataError(path, None, f"cannot unpickle ({type(err).__name__}: {err})") from None
    if not isinstance(payload, Mapping):
        raise DataError(path, None, f"expected a dict with train/valid/test, found {type(payload).__name__}")
    missing = [s for s in MMSA_SPLITS if s not in payload]
    if missing:
        raise DataError(path, None, f"missing split(s) {missing}; found {sorted(map(str, payload))}")
    splits = {}
    for name, key in MMSA_SPLITS.items():
        try:
            splits[name] = _mmsa_split(path, key, payload[key], max_steps)
        except DataError:
            raise
        except (ValueError, TypeError, OverflowError) as err:  # e.g. text where numbers belong
            raise DataError(path, None, f"key '{key}': malformed values ({type(err).__name__}: {err})") from None
    _check_same_dims(path, splits)
    notes = [note for part in splits.values() for note in part.frame.attrs["notes"]]
    corpus = MultimodalCorpus("CMU-MOSEI (MMSA pickle)", splits, source_files=[str(path)], notes=notes)
    return corpus.relabel(scheme, band)


def _check_same_dims(path: Path, splits: Mapping[str, MultimodalSplit]) -> None:
    dims = {name: {m: x.shape[-1] for m, x in s.features.items()} for name, s in splits.items()}
    if len({tuple(d.items()) for d in dims.values()}) > 1:
        raise DataError(path, None, f"feature sizes differ between splits: {dims}")


# -------------------------------------------------------------------------------------------- MOSEI: SDK .csd files


def _read_csd(path: Path) -> dict[str, np.ndarray]:
    """One computational sequence: segment id -> features (T, d), checked against its intervals (T, 2)."""
    import h5py

    require_file(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise DataError(path, None, f"not an HDF5 computational sequence ({err})") from None
    with handle:
        roots = list(handle.keys())
        if len(roots) != 1:
            raise DataError(path, None, f"expected one root group (the sequence name), found {roots}")
        root = handle[roots[0]]
        if "data" not in root:
            raise DataError(path, f"{roots[0]}", "no 'data' group")
        out, dims = {}, set()
        for key, entry in root["data"].items():
            where = f"{roots[0]}/data/{key}"
            if "features" not in entry or "intervals" not in entry:
                raise DataError(path, where, "entry needs 'features' and 'intervals' datasets")
            feats, intervals = np.asarray(entry["features"]), np.asarray(entry["intervals"])
            if feats.ndim != 2 or feats.dtype.kind not in "fiu":
                raise DataError(
                    path, where, f"features: shape {feats.shape} dtype {feats.dtype}, expected (steps, dims)"
                )
            if intervals.shape != (feats.shape[0], 2):
                raise DataError(path, where, f"intervals shape {intervals.shape} does not match {feats.shape[0]} steps")
            dims.add(feats.shape[1])
            if len(dims) > 1:
                raise DataError(path, where, f"feature size {feats.shape[1]} differs from the others {sorted(dims)}")
            out[str(key)] = feats
    return out


def _video_of(segment_id: str) -> str:
    """`video[3]` -> `video` (the SDK's aligned segment ids); plain ids are their own video."""
    return segment_id.split("[", 1)[0]


def load_csd(
    files: Mapping[str, str | os.PathLike],
    labels: str | os.PathLike,
    folds: Mapping[str, Iterable[str]] | str | os.PathLike,
    scheme: str = "3class",
    band: float = 0.0,
    max_steps: int = 50,
) -> MultimodalCorpus:
    """CMU-MultimodalSDK computational sequences (HDF5 `.csd`), already aligned to the label segments.

    `files` maps modality (`text`, `audio`, `visual`) to its `.csd`; `labels` is the label sequence (first column
    = sentiment in [-3, 3], one row per segment); `folds` maps `train`/`valid`/`test` to video ids (a dict or a
    JSON file, e.g. dumped from `mmsdk.mmdatasdk.cmu_mosei.standard_folds`). Segments are matched by id (the
    SDK's `video[k]` keys after `dataset.align(...)`); ones missing from any file or fold are dropped and counted.
    Each segment keeps up to `max_steps` time steps (zero padded); non-finite values become 0.
    """
    label_path = Path(labels)
    sequences = {m: _read_csd(Path(p)) for m, p in files.items()}
    unknown = sorted(set(sequences) - set(MODALITIES))
    if unknown:
        raise ValueError(f"unknown modality name(s) {unknown}; use {MODALITIES}")
    label_seq = _read_csd(label_path)
    if isinstance(folds, (str, os.PathLike)):
        fold_path = require_file(Path(folds))
        try:
            folds = json.loads(fold_path.read_text())
        except json.JSONDecodeError as err:
            raise DataError(fold_path, err.lineno, f"invalid JSON ({err.msg})") from None
    missing_folds = [s for s in MMSA_SPLITS if s not in folds]
    if missing_folds:
        raise ValueError(f"folds need {list(MMSA_SPLITS)}; missing {missing_folds}")
    fold_of = {str(v): split for split in MMSA_SPLITS for v in folds[split]}
    dropped: Counter[str] = Counter()
    by_split: dict[str, list[str]] = {s: [] for s in MMSA_SPLITS}
    for segment in sorted(label_seq):
        absent = [m for m, seq in sequences.items() if segment not in seq]
        if absent:
            dropped[f"segment missing from {'/'.join(absent)}"] += 1
        elif _video_of(segment) not in fold_of:
            dropped["video in no fold"] += 1
        else:
            by_split[fold_of[_video_of(segment)]].append(segment)
    splits, notes = {}, [f"dropped {n} segments: {why}" for why, n in dropped.items()]
    for split, segments in by_split.items():
        scores = []
        for segment in segments:
            value = label_seq[segment]
            if value.shape[0] != 1:
                raise DataError(
                    label_path, segment, f"{value.shape[0]} label rows; align the sequences to the labels first"
                )
            scores.append(float(value[0, 0]))
        scores_arr = np.asarray(scores, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(scores_arr) | (np.abs(scores_arr) > 3))
        if bad.size:
            raise DataError(label_path, segments[bad[0]], f"sentiment {scores_arr[bad[0]]} is not within [-3, 3]")
        features, lengths = {}, {}
        for modality, seq in sequences.items():
            dim = next(iter(seq.values())).shape[1]
            x = np.zeros((len(segments), max_steps, dim), dtype=np.float32)
            steps = np.zeros(len(segments), dtype=np.int64)
            for row, segment in enumerate(segments):
                values = seq[segment][:max_steps]
                x[row, : len(values)], steps[row] = values, len(values)
            features[modality], lengths[modality], zeroed = _clean_steps(x, steps, None)
            if zeroed:
                notes.append(f"{split}/{modality}: {zeroed} non-finite values set to 0")
        frame = pd.DataFrame(
            {"text": segments, "id": segments, "video_id": [_video_of(s) for s in segments], "score": scores_arr}
        )
        frame["split"] = split
        frame.attrs = {"dropped": dict(dropped), "source_files": [str(p) for p in (*files.values(), label_path)]}
        splits[split] = MultimodalSplit(frame, {m: features[m] for m in MODALITIES if m in features}, lengths)
    empty = [s for s, part in splits.items() if len(part) == 0]
    if empty:
        raise DataError(label_path, None, f"no segments in split(s) {empty} after matching ids and folds")
    corpus = MultimodalCorpus(
        "CMU-MOSEI (SDK .csd)", splits, source_files=splits["train"].frame.attrs["source_files"], notes=notes
    )
    return corpus.relabel(scheme, band)


def load_csd_directory(
    directory: str | os.PathLike, folds: str | os.PathLike | None = None, **kwargs
) -> MultimodalCorpus:
    """:func:`load_csd` on a folder holding the SDK's standard MOSEI file names (or `text.csd`, `audio.csd`,
    `visual.csd`, `labels.csd`) and `folds.json` (or the `folds` path given)."""
    directory = Path(directory)
    found = {}
    for role, names in CSD_DEFAULT_NAMES.items():
        hits = [directory / n for n in names if (directory / n).is_file()]
        if not hits:
            raise DataError(directory, None, f"no {role} sequence; expected one of {list(names)}")
        found[role] = hits[0]
    labels = found.pop("labels")
    return load_csd(found, labels, folds or directory / "folds.json", **kwargs)


# ------------------------------------------------------------------------------------------- views for the models


def standardize(train: MultimodalSplit, *others: MultimodalSplit) -> list[MultimodalSplit]:
    """Z-score every modality with mean/std from `train` (valid time steps only); constant columns stay 0.

    MOSI audio spans 80-376 Hz in one column and ~0 in others, so without this one column would dominate."""
    stats = {}
    for m, x in train.features.items():
        valid = _valid_steps(x, train.lengths.get(m))
        mean, std = valid.mean(axis=0), valid.std(axis=0)
        stats[m] = (mean, np.where(std > 1e-8, std, 1.0))
    out = []
    for split in (train, *others):
        features = {}
        for m, x in split.features.items():
            z = ((x - stats[m][0]) / stats[m][1]).astype(np.float32)
            if x.ndim == 3:
                z = z * _step_mask(x.shape[1], split.lengths.get(m), len(x))[..., None]
            features[m] = z
        out.append(MultimodalSplit(split.frame, features, split.lengths))
    return out


def _step_mask(steps: int, lengths: np.ndarray | None, n: int) -> np.ndarray:
    if lengths is None:
        return np.ones((n, steps), dtype=bool)
    return np.arange(steps)[None, :] < np.asarray(lengths)[:, None]


def _valid_steps(x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    if x.ndim == 2:
        return x
    return x[_step_mask(x.shape[1], lengths, len(x))]


@dataclass
class SequenceView:
    """Model-ready arrays: `features[m]` (N, L, d), `masks[m]` (N, L) bool, `labels` (N,) or (N, L) with -100 at
    padding, and `rows` (N, L) mapping each position to its frame row (-1 at padding; context view only)."""

    features: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    labels: np.ndarray
    rows: np.ndarray | None = None

    @property
    def per_position(self) -> bool:
        return self.labels.ndim == 2


def utterance_view(split: MultimodalSplit) -> SequenceView:
    """One sample per utterance/segment: MOSI vectors become length-1 sequences; MOSEI keeps its time steps."""
    features, masks = {}, {}
    for m, x in split.features.items():
        features[m] = x[:, None, :] if x.ndim == 2 else x
        masks[m] = _step_mask(features[m].shape[1], split.lengths.get(m), len(x))
        masks[m][:, 0] |= ~masks[m].any(axis=1)  # an empty sequence attends to its (zero) first step
    return SequenceView(features, masks, split.frame["label"].to_numpy(dtype=np.int64))


def video_view(split: MultimodalSplit) -> SequenceView:
    """One sample per video: its utterance vectors in segment order, padded to the longest video, with one label
    per utterance (context mode, as in bc-LSTM). Needs one vector per utterance (no time axis)."""
    if split.has_time_axis:
        raise ValueError("the video-context view needs one vector per utterance; this data has time steps")
    groups = split.frame.groupby("video_id", sort=False).indices
    longest = max(len(ix) for ix in groups.values())
    rows = np.full((len(groups), longest), -1, dtype=np.int64)
    for v, ix in enumerate(groups.values()):
        ordered = (
            ix[np.argsort(split.frame["segment"].to_numpy()[ix], kind="stable")] if "segment" in split.frame else ix
        )
        rows[v, : len(ix)] = ordered
    valid = rows >= 0
    labels = np.where(valid, split.frame["label"].to_numpy(dtype=np.int64)[np.maximum(rows, 0)], -100)
    features = {
        m: np.where(valid[..., None], x[np.maximum(rows, 0)], 0.0).astype(np.float32) for m, x in split.features.items()
    }
    return SequenceView(features, {m: valid.copy() for m in features}, labels, rows)
