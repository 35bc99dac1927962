"""SpAtten study and benchmark: accuracy (BESSTIE Google sentiment) against measured throughput over keep schedules.

`workbench bench pruning [--profile quick] [--json]` measures, in one process, the dense Hugging Face model and the
cascade-pruned forward pass on the same batches (batch 32, real BESSTIE texts, max length 128), interleaved so that
load from other processes hits both alike; warm-up, repeats, median. Accuracy: a linear head on the mean (or [CLS])
final state, trained on en-AU + en-UK Google train rows (texts also in the evaluation rows removed) and scored on
the official validation rows, either on dense features (pruning applied afterwards) or on features computed with the
schedule's pruning on (pruning-aware training of the head).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import TensorDataset

from workbench.data import load_besstie, remove_overlap
from workbench.encoders import Encoder, cache_dir, load_encoder
from workbench.profiles import resolve_parameters
from workbench.pruning import CascadePruner, PruneSchedule, flop_ratio, keep_summary, pruned_features
from workbench.runtime import set_seed
from workbench.training import TrainConfig, classification_metrics, fit, predict

STUDY = "spatten"
F1_TOLERANCE = 0.01  # "macro-F1 no more than 1.0 point below dense"

DEFAULTS: dict[str, dict[str, object]] = {
    "smoke": dict(
        encoder="tiny",
        varieties=["en-AU", "en-UK"],
        max_train_rows=60,
        max_eval_rows=40,
        keeps=[[0.5, 1.0], [0.2, 1.0], [0.2, 0.5]],
        token_start=0.15,
        head_start=0.30,
        pooling="mean_all",
        max_length=64,
        batch_size=32,
        throughput_texts=32,
        repeats=2,
        threads=None,
        head_epochs=5,
        seed=0,
    ),
    "quick": dict(
        encoder="minilm",
        varieties=["en-AU", "en-UK"],
        max_train_rows=1200,
        max_eval_rows=None,
        keeps=[[0.3, 1.0], [0.2, 1.0], [0.15, 1.0], [0.1, 1.0], [0.05, 1.0], [0.1, 0.5]],
        token_start=0.15,
        head_start=0.30,
        pooling="mean_all",
        max_length=128,
        batch_size=32,
        throughput_texts=128,
        repeats=5,
        threads=None,
        head_epochs=60,
        seed=0,
    ),
    "paper": dict(
        encoder="bert-base-uncased",
        varieties=["en-AU", "en-UK"],
        max_train_rows=None,
        max_eval_rows=None,
        keeps=[[0.7, 1.0], [0.5, 1.0], [0.35, 1.0], [0.25, 1.0], [0.15, 1.0], [0.1, 1.0], [0.35, 0.7], [0.25, 0.5]],
        token_start=0.15,
        head_start=0.30,
        pooling="mean_all",
        max_length=128,
        batch_size=32,
        throughput_texts=512,
        repeats=7,
        threads=None,
        head_epochs=60,
        seed=0,
    ),
}


@dataclass
class StudyData:
    """Train rows (overlap with evaluation removed) and the official validation rows of BESSTIE Google sentiment."""

    train: pd.DataFrame
    valid: pd.DataFrame
    removed_overlap: int
    label_names: list[str] = field(default_factory=list)


def load_study_data(
    varieties: Sequence[str], max_train_rows: int | None = None, max_eval_rows: int | None = None, seed: int = 0
) -> StudyData:
    """BESSTIE Sentiment, Google: train from the wide en-AU/en-UK train file, evaluate on the official valid rows."""
    train = load_besstie("Sentiment", list(varieties), "Google", "train", seed=seed)
    valid = load_besstie("Sentiment", list(varieties), "Google", "valid", seed=seed)
    train, removed = remove_overlap(train, valid)
    if max_train_rows and len(train) > max_train_rows:
        train = _stratified_subset(train, max_train_rows, seed)
    if max_eval_rows and len(valid) > max_eval_rows:
        valid = _stratified_subset(valid, max_eval_rows, seed)
    return StudyData(train, valid, removed, list(train.attrs["label_names"]))


def _stratified_subset(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    keep, _ = train_test_split(range(len(frame)), train_size=rows, random_state=seed, stratify=frame["label"])
    out = frame.iloc[sorted(keep)].reset_index(drop=True)
    out.attrs = frame.attrs
    return out


def schedules_for(
    num_layers: int, keeps: Sequence[Sequence[float]], token_start: float = 0.15, head_start: float = 0.30
) -> list[PruneSchedule]:
    """The dense schedule followed by one SpAtten-shaped schedule per (last-layer token keep, head keep) pair."""
    grid = [PruneSchedule.spatten(num_layers, t, h, token_start, head_start) for t, h in keeps if (t, h) != (1.0, 1.0)]
    return [PruneSchedule.dense(num_layers), *grid]


def cached_features(
    texts: Sequence[str], encoder: Encoder, schedule: PruneSchedule, **kwargs
) -> tuple[np.ndarray, np.ndarray]:
    """`pruned_features`, stored on disk under the embedding cache (keyed by model, schedule, settings and texts),
    so that the notebook and the benchmark share one pass per schedule."""
    key = {
        "model": encoder.fingerprint,
        "token_keep": schedule.token_keep,
        "head_keep": schedule.head_keep,
        # with nothing pruned, `mean_all` and `mean` are the same vector: share one cache entry
        "pooling": "mean"
        if schedule.is_dense and kwargs.get("pooling") == "mean_all"
        else kwargs.get("pooling", "mean"),
        "max_length": kwargs.get("max_length", 128),
        "texts": hashlib.sha1("\x00".join(texts).encode()).hexdigest(),
    }
    path = cache_dir() / "pruning" / (hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20] + ".npz")
    if path.is_file():
        with np.load(path) as stored:
            return stored["features"].copy(), stored["flops"].copy()
    features, flops = pruned_features(texts, encoder, schedule, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.partial")
    with open(tmp, "wb") as handle:
        np.savez(handle, features=features, flops=flops)
    tmp.replace(path)
    return features, flops


def train_linear_head(
    features: np.ndarray, labels: np.ndarray, num_classes: int, seed: int = 0, epochs: int = 60
) -> nn.Module:
    """A linear classifier on fixed features (standardised inside the model), class-weighted CE, early stopping on a
    seeded 15% dev split of the training rows."""
    set_seed(seed)
    features = np.asarray(features, dtype=np.float32)
    mean = torch.tensor(features.mean(0), dtype=torch.float32)
    std = torch.tensor(features.std(0) + 1e-6, dtype=torch.float32)
    head = _StandardisedLinear(mean, std, num_classes)
    train_idx, dev_idx = train_test_split(
        np.arange(len(labels)), test_size=0.15, random_state=seed, stratify=labels if len(labels) > 20 else None
    )

    def data(index: np.ndarray) -> TensorDataset:
        return TensorDataset(torch.from_numpy(features[index]).float(), torch.from_numpy(labels[index]).long())

    config = TrainConfig(
        epochs=epochs, lr=3e-3, batch_size=64, patience=8, seed=seed, weight_decay=1e-2, progress=False, device="cpu"
    )
    fit(head, data(train_idx), data(dev_idx), config, num_classes=num_classes)
    return head


class _StandardisedLinear(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor, num_classes: int):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = nn.Linear(len(mean), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x - self.mean) / self.std)


def _scores(head: nn.Module, features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    ds = TensorDataset(torch.from_numpy(features).float(), torch.from_numpy(labels).long())
    predicted = predict(head, ds).argmax(-1)
    return classification_metrics(labels, predicted, labels=[0, 1])


def accuracy_curve(
    encoder: Encoder,
    data: StudyData,
    schedules: Sequence[PruneSchedule],
    *,
    pooling: str = "mean",
    max_length: int = 128,
    batch_size: int = 32,
    head_epochs: int = 60,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per (schedule, training): macro-F1 etc. of the head trained on dense features and evaluated under the
    schedule (`post_hoc`), and of the head trained with the schedule's pruning on (`pruning_aware`); plus the
    theoretical FLOP ratio dense / pruned on the evaluation texts."""
    train_texts, eval_texts = list(data.train["text"]), list(data.valid["text"])
    y_train = np.array(data.train["label"], dtype=np.int64)
    y_eval = np.array(data.valid["label"], dtype=np.int64)
    k = len(data.label_names)
    kw = dict(pooling=pooling, max_length=max_length, batch_size=batch_size, progress=progress)
    dense_train, _ = cached_features(train_texts, encoder, schedules[0], **kw)
    dense_head = train_linear_head(dense_train, y_train, k, seed, head_epochs)
    rows = []
    for schedule in schedules:
        eval_features, eval_flops = cached_features(eval_texts, encoder, schedule, **kw)
        if schedule.is_dense:
            aware_head = dense_head
        else:
            train_features, _ = cached_features(train_texts, encoder, schedule, **kw)
            aware_head = train_linear_head(train_features, y_train, k, seed, head_epochs)
        ratio = flop_ratio(eval_texts, encoder, eval_flops, max_length)
        for training, head in (("post_hoc", dense_head), ("pruning_aware", aware_head)):
            rows.append(
                {
                    "schedule": schedule.name,
                    "token_keep_last": schedule.token_keep[-1],
                    "head_keep_last": schedule.head_keep[-1],
                    "training": training,
                    "seed": seed,
                    "flop_ratio": ratio,
                    **_scores(head, eval_features, y_eval),
                }
            )
    return pd.DataFrame(rows)


def measure_throughput(
    encoder: Encoder,
    texts: Sequence[str],
    schedules: Sequence[PruneSchedule],
    *,
    batch_size: int = 32,
    max_length: int = 128,
    repeats: int = 5,
    warmup: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Sequences per second of the dense Hugging Face model (`hf_dense`) and of the cascade-pruned pass per schedule,
    measured in this process on the same pre-tokenised batches (tokenisation excluded). The order of the
    configurations rotates each repeat (interleaved), and the median over repeats is reported."""
    from tqdm.auto import tqdm

    batches = [encoder.tokenize(texts[i : i + batch_size], max_length) for i in range(0, len(texts), batch_size)]
    pruner = CascadePruner.from_encoder(encoder).eval()

    def dense_pass() -> None:
        for batch in batches:
            encoder.model(**batch)

    def pruned_pass(schedule: PruneSchedule):
        def run() -> None:
            pruner.schedule = schedule
            for batch in batches:
                pruner(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))

        return run

    configs = [("hf_dense", None, dense_pass)] + [(s.name, s, pruned_pass(s)) for s in schedules]
    seconds: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    bar = tqdm(total=(warmup + repeats) * len(configs), desc="throughput", disable=not progress)
    with torch.inference_mode():
        for rep in range(warmup + repeats):
            shift = rep % len(configs)
            for name, _, run in configs[shift:] + configs[:shift]:
                start = time.perf_counter()
                run()
                if rep >= warmup:
                    seconds[name].append(time.perf_counter() - start)
                bar.update(1)
    bar.close()
    rows = []
    dense_median = statistics.median(seconds["hf_dense"])
    for name, schedule, _ in configs:
        median = statistics.median(seconds[name])
        rows.append(
            {
                "schedule": name,
                "implementation": "huggingface" if schedule is None else "cascade_pruner",
                "seq_per_s": len(texts) / median,
                "median_seconds": median,
                "all_seconds": [round(s, 4) for s in seconds[name]],
                "speedup": dense_median / median,
                "texts": len(texts),
                "batch_size": batch_size,
                "max_length": max_length,
                "repeats": repeats,
                "torch_threads": torch.get_num_threads(),
            }
        )
    return pd.DataFrame(rows)


def best_schedule(curve: pd.DataFrame, tolerance: float = F1_TOLERANCE) -> pd.Series | None:
    """The fastest pruning-aware row whose macro-F1 is at most `tolerance` below the dense model's (None if none)."""
    aware = curve[curve["training"] == "pruning_aware"]
    dense_f1 = float(aware.loc[aware["schedule"] == "dense", "macro_f1"].iloc[0])
    ok = aware[(aware["schedule"] != "dense") & (aware["macro_f1"] >= dense_f1 - tolerance - 1e-12)]
    if ok.empty:
        return None
    return ok.sort_values(["speedup", "macro_f1"], ascending=False).iloc[0]


def run_study(params: dict[str, object], progress: bool = True) -> dict[str, object]:
    """Everything the notebook and the benchmark report: data, accuracy curve, throughput, merged curve, best."""
    set_seed(int(params["seed"]))
    encoder = load_encoder(str(params["encoder"]))
    data = load_study_data(params["varieties"], params["max_train_rows"], params["max_eval_rows"], params["seed"])
    if params.get("threads"):
        torch.set_num_threads(int(params["threads"]))
    schedules = schedules_for(encoder.num_layers, params["keeps"], params["token_start"], params["head_start"])
    timings: dict[str, float] = {}
    start = time.perf_counter()
    accuracy = accuracy_curve(
        encoder,
        data,
        schedules,
        pooling=str(params["pooling"]),
        max_length=int(params["max_length"]),
        batch_size=int(params["batch_size"]),
        head_epochs=int(params["head_epochs"]),
        seed=int(params["seed"]),
        progress=progress,
    )
    timings["accuracy_curve"] = time.perf_counter() - start
    start = time.perf_counter()
    texts = list(data.valid["text"])[: int(params["throughput_texts"])]
    throughput = measure_throughput(
        encoder,
        texts,
        schedules,
        batch_size=int(params["batch_size"]),
        max_length=int(params["max_length"]),
        repeats=int(params["repeats"]),
        progress=progress,
    )
    timings["throughput"] = time.perf_counter() - start
    curve = accuracy.merge(throughput[["schedule", "seq_per_s", "speedup"]], on="schedule", how="left")
    dense_hf = throughput[throughput["schedule"] == "hf_dense"].iloc[0]
    return {
        "encoder": encoder,
        "data": data,
        "schedules": schedules,
        "accuracy": accuracy,
        "throughput": throughput,
        "curve": curve,
        "dense_hf": dense_hf,
        "best": best_schedule(curve),
        "timings": timings,
    }


def summary(study: dict[str, object]) -> dict[str, object]:
    """The benchmark's JSON object: the best schedule within 1 F1 point, its throughput and F1 beside dense."""
    curve: pd.DataFrame = study["curve"]
    best = study["best"]
    dense_hf = study["dense_hf"]
    aware = curve[curve["training"] == "pruning_aware"]
    dense_row = aware[aware["schedule"] == "dense"].iloc[0]
    schedules = {s.name: s for s in study["schedules"]}
    out: dict[str, object] = {
        "schedule": None,
        "dense_seq_per_s": float(dense_hf["seq_per_s"]),
        "pruned_seq_per_s": None,
        "speedup": None,
        "dense_macro_f1": float(dense_row["macro_f1"]),
        "pruned_macro_f1": None,
        "f1_tolerance": F1_TOLERANCE,
        "target_met": False,
    }
    if best is not None:
        schedule = schedules[best["schedule"]]
        out.update(
            schedule=schedule.name,
            schedule_detail=schedule.to_dict(),
            pruned_seq_per_s=float(best["seq_per_s"]),
            speedup=float(best["speedup"]),
            pruned_macro_f1=float(best["macro_f1"]),
            flop_ratio=float(best["flop_ratio"]),
            target_met=bool(best["speedup"] >= 2.0),
        )
    throughput: pd.DataFrame = study["throughput"]
    own_dense = throughput[throughput["schedule"] == "dense"]
    out["own_dense_seq_per_s"] = float(own_dense["seq_per_s"].iloc[0]) if len(own_dense) else None
    out["curve"] = [
        {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
        for row in curve[
            ["schedule", "training", "macro_f1", "accuracy", "flop_ratio", "seq_per_s", "speedup"]
        ].to_dict("records")
    ]
    out["texts_timed"] = int(throughput["texts"].iloc[0])
    out["batch_size"] = int(throughput["batch_size"].iloc[0])
    out["max_length"] = int(throughput["max_length"].iloc[0])
    out["repeats"] = int(throughput["repeats"].iloc[0])
    out["torch_threads"] = torch.get_num_threads()
    out["eval_rows"] = len(study["data"].valid)
    out["train_rows"] = len(study["data"].train)
    out["seconds"] = {k: round(v, 1) for k, v in study["timings"].items()}
    return out


def _table(result: dict[str, object]) -> str:
    lines = [
        f"dense (Hugging Face): {result['dense_seq_per_s']:.1f} seq/s, macro-F1 {result['dense_macro_f1']:.4f}",
        f"own forward, keep 1.0: {result['own_dense_seq_per_s']:.1f} seq/s",
    ]
    if result["schedule"]:
        lines.append(
            f"best within {result['f1_tolerance'] * 100:.1f} F1 point: {result['schedule']} "
            f"({keep_summary(PruneSchedule(**{k: v for k, v in result['schedule_detail'].items()}))}): "
            f"{result['pruned_seq_per_s']:.1f} seq/s, speed-up {result['speedup']:.2f}x "
            f"(FLOP ratio {result['flop_ratio']:.2f}x), macro-F1 {result['pruned_macro_f1']:.4f}"
        )
    else:
        lines.append("no pruned schedule kept macro-F1 within the tolerance")
    lines.append("")
    lines.append(f"{'schedule':<24}{'training':<15}{'macro_f1':>9}{'flops x':>9}{'seq/s':>9}{'speedup':>9}")
    for row in result["curve"]:
        lines.append(
            f"{row['schedule']:<24}{row['training']:<15}{row['macro_f1']:>9.4f}{row['flop_ratio']:>9.2f}"
            f"{row['seq_per_s']:>9.1f}{row['speedup']:>9.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`workbench bench pruning [--profile quick] [--json] [-p key=value ...]`."""
    parser = argparse.ArgumentParser(prog="workbench bench pruning", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=sorted(DEFAULTS))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="override a default")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.param:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    params = resolve_parameters(DEFAULTS, args.profile, **overrides)
    result = summary(run_study(params, progress=not args.json))
    result["profile"] = args.profile
    if args.json:
        print(json.dumps(result))
    else:
        print(_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
