"""Tiny multimodal fixtures in the real layouts: the MOSI bc-LSTM npz (every key and dtype of the staged file) and
CMU-MOSEI as an MMSA pickle and as CMU-MultimodalSDK `.csd` files with a folds JSON. Feature values are random
with a weak sentiment signal, so models can learn something in a smoke run; no real data is copied."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

MOSI_DIMS = {"text": 100, "audio": 73, "video": 100}
MOSEI_DIMS = {"text": 300, "audio": 74, "vision": 35}
# Scores that hit every 7-class bin, exact zeros (neutral) and both binary labels, in train and in test.
_SCORES = np.array([-3.0, -2.2, -1.4, -0.6, 0.0, 0.4, 1.2, 1.8, 2.6, 3.0, -0.2, 0.0])


def _scores(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.resize(rng.permutation(_SCORES), n)


def _features(rng: np.random.Generator, scores: np.ndarray, dim: int, *trailing: int) -> np.ndarray:
    """Noise plus the score in the first column(s), shape (n, *trailing, dim)."""
    x = rng.normal(size=(len(scores), *trailing, dim))
    x[..., :4] += scores.reshape(-1, *([1] * (len(trailing) + 1))) * 0.8
    return x


def write_mosi_fixture(root: Path, videos_train: int = 5, videos_test: int = 3, seed: int = 0) -> Path:
    """`root/multimodal/cmu_mosi/mosi_bclstm_utterances.npz` with the staged file's keys, dtypes and ordering
    (rows sorted by id as a string, like transcripts.csv)."""
    rng = np.random.default_rng(seed)
    rows = []
    for v in range(videos_train + videos_test):
        video = f"vid{v:02d}xxxxx"[:11]
        split = "train" if v < videos_train else "test"
        n_utt = 5 + v % 4
        for segment, score in zip(range(1, n_utt + 1), _scores(rng, n_utt)):
            rows.append((f"{video}_{segment}", video, segment, v + 1, split, score))
    rows.sort(key=lambda r: r[0])
    scores = np.array([r[5] for r in rows], dtype=np.float64)
    start = np.cumsum(rng.uniform(1, 4, len(rows)))
    arrays = {
        "ids": np.array([r[0] for r in rows], dtype="<U14"),
        "video_id": np.array([r[1] for r in rows], dtype="<U11"),
        "segment": np.array([r[2] for r in rows], dtype=np.int16),
        "video_index_bclstm": np.array([r[3] for r in rows], dtype=np.int16),
        "transcript": np.array([f"UTTERANCE {i} SCORE {s:+.1f}" for i, s in enumerate(scores)], dtype="<U581"),
        "text": _features(rng, scores, MOSI_DIMS["text"]),
        "audio": _features(rng, scores, MOSI_DIMS["audio"]) + np.r_[200.0, np.zeros(MOSI_DIMS["audio"] - 1)],
        "video": np.maximum(_features(rng, scores, MOSI_DIMS["video"]), 0.0),
        "label_binary": (scores >= 0).astype(np.int8),
        "score": scores,
        "start": start,
        "end": start + rng.uniform(0.5, 3, len(rows)),
        "split_bclstm": np.array([r[4] for r in rows], dtype="<U5"),
    }
    folder = root / "multimodal" / "cmu_mosi"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mosi_bclstm_utterances.npz"
    np.savez(path, **arrays)
    return path


def mosei_split_arrays(rng: np.random.Generator, n: int, steps: int, video_prefix: str) -> dict[str, object]:
    """One MMSA split dict: ids `video$_$clip`, raw text, (n, steps, d) features, lengths and labels."""
    scores = _scores(rng, n)
    lengths = rng.integers(2, steps + 1, n)
    return {
        "id": np.array([f"{video_prefix}{i // 3}$_${i % 3}" for i in range(n)], dtype=object),
        "raw_text": np.array([f"segment {i} says {s:+.1f}" for i, s in enumerate(scores)], dtype=object),
        "text": _features(rng, scores, MOSEI_DIMS["text"], steps).astype(np.float32),
        "audio": _features(rng, scores, MOSEI_DIMS["audio"], steps).astype(np.float32),
        "vision": _features(rng, scores, MOSEI_DIMS["vision"], steps).astype(np.float32),
        "audio_lengths": lengths.tolist(),
        "vision_lengths": lengths.tolist(),
        "regression_labels": scores.astype(np.float32),
        "classification_labels": np.where(scores < 0, 0, np.where(scores > 0, 2, 1)).astype(np.float32),
    }


def write_mmsa_fixture(path: Path, n: int = 18, steps: int = 6, seed: int = 1) -> Path:
    """An MMSA-style pickle: `train`/`valid`/`test` dicts (numpy arrays and lists only)."""
    rng = np.random.default_rng(seed)
    payload = {split: mosei_split_arrays(rng, n, steps, f"{split}_v") for split in ("train", "valid", "test")}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(payload, handle, protocol=4)
    return path


def _write_csd(path: Path, name: str, entries: dict[str, np.ndarray]) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        root = handle.create_group(name)
        data = root.create_group("data")
        for key, features in entries.items():
            group = data.create_group(key)
            group.create_dataset("features", data=features)
            starts = np.arange(len(features), dtype=np.float64)
            group.create_dataset("intervals", data=np.stack([starts, starts + 1], 1))
        meta = root.create_group("metadata")
        meta.create_dataset("root name", data=name)
        meta.create_dataset("dimension names", data=np.array([b"fixture"]))


def write_csd_fixture(folder: Path, videos: int = 9, seed: int = 2) -> Path:
    """SDK computational sequences aligned to label segments (keys `video[k]`): text/audio/visual `.csd`,
    `labels.csd` (1 x 7 per segment: sentiment then six emotions) and `folds.json`; one segment lacks audio."""
    import h5py  # noqa: F401  (fail early if missing)

    rng = np.random.default_rng(seed)
    segments = [f"mv{v:02d}[{k}]" for v in range(videos) for k in range(3)]
    scores = _scores(rng, len(segments))
    steps = rng.integers(2, 7, len(segments))
    folder.mkdir(parents=True, exist_ok=True)
    for modality, dim in (("text", 300), ("audio", 74), ("visual", 35)):
        entries = {
            s: _features(rng, np.array([scores[i]]), dim, int(steps[i]))[0].astype(np.float32)
            for i, s in enumerate(segments)
            if not (modality == "audio" and i == 0)
        }
        if modality == "audio":
            entries[segments[1]][0, 0] = -np.inf  # real COVAREP has -inf; the loader zeroes it
        _write_csd(folder / f"{modality}.csd", f"{modality}_features", entries)
    labels = {s: np.r_[scores[i], rng.uniform(0, 1, 6)][None, :].astype(np.float32) for i, s in enumerate(segments)}
    _write_csd(folder / "labels.csd", "All Labels", labels)
    third = videos // 3
    folds = {
        "train": [f"mv{v:02d}" for v in range(third)],
        "valid": [f"mv{v:02d}" for v in range(third, 2 * third)],
        "test": [f"mv{v:02d}" for v in range(2 * third, videos)],
    }
    (folder / "folds.json").write_text(json.dumps(folds))
    return folder


def write_multimodal_fixtures(root: Path) -> dict[str, Path]:
    """Every multimodal fixture under `root` (the fixture data tree): MOSI npz at its real place, MOSEI MMSA
    pickle at `multimodal/cmu_mosei/mmsa_fixture.pkl`, MOSEI `.csd` folder at `multimodal/cmu_mosei/csd`."""
    root = Path(root)
    mosei = root / "multimodal" / "cmu_mosei"
    return {
        "mosi": write_mosi_fixture(root),
        "mosei_mmsa": write_mmsa_fixture(mosei / "mmsa_fixture.pkl"),
        "mosei_csd": write_csd_fixture(mosei / "csd"),
    }
