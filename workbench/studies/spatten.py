"""SpAtten study: macro-F1 on BESSTIE Google sentiment against measured throughput, over cascade-pruning schedules.

For each schedule (dense first, then SpAtten-shaped ones), a linear head on the frozen encoder's pooled states is
trained either on dense features and run under the schedule (`post_hoc`) or on the schedule's own pruned features
(`pruning_aware`), and scored on BESSTIE's official validation rows. Throughput is measured in this process: the
dense Hugging Face model against the cascade pruner on the same pre-tokenised batches, interleaved, median over
repeats. The best schedule is the fastest pruning-aware one within one macro-F1 point of dense; the issue's target
is at least twice the dense model's throughput there.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from workbench.data import BESSTIE_VARIETIES, load_besstie, remove_overlap
from workbench.data.sampling import stratified_sample
from workbench.encoders import Encoder, cache_dir, encoder_name_problem, load_encoder
from workbench.methods.probe import train_probe
from workbench.methods.spatten import CascadePruner, PruneSchedule, flop_ratio, pruned_features
from workbench.paper_models import dry_run
from workbench.profiles import Param, Profiles
from workbench.results import StudyResult, Timings, describe_data
from workbench.runtime import set_seed, torch_threads
from workbench.training import TrainConfig, classification_metrics, predict

STUDY = "spatten"
F1_TOLERANCE = 0.01  # the target: macro-F1 no more than 1.0 point below dense ...
TARGET_SPEEDUP = 2.0  # ... at no less than twice the dense model's measured throughput
POOLINGS = ("mean_all", "mean", "cls")
# SpAtten's schedule shape (REFERENCES.md): the first ~15% of layers keep all tokens, the first ~30% all heads.
PAPER_SCHEDULE = {"token_start": 0.15, "head_start": 0.30}

PROFILES = Profiles(
    base={
        "seed": Param(0, "seed of the row sampling, the head's initialisation and its dev split", minimum=0),
        "encoder": Param(
            "minilm", "encoder: registry name (minilm, tiny), local folder or hub id", validate=encoder_name_problem
        ),
        "varieties": Param(["en-AU", "en-UK"], "BESSTIE varieties (Google sentiment rows)", choices=BESSTIE_VARIETIES),
        "max_train_rows": Param(1200, "stratified subsample of the training rows; None: all", optional=True, minimum=1),
        "max_eval_rows": Param(None, "stratified subsample of the validation rows; None: all", kind="int", minimum=1),
        "keeps": Param(
            [[0.3, 1.0], [0.2, 1.0], [0.15, 1.0], [0.1, 1.0], [0.05, 1.0], [0.1, 0.5]],
            "[last-layer token keep, last-layer head keep] of each pruned schedule of the curve",
        ),
        "token_start": Param(
            PAPER_SCHEDULE["token_start"], "share of layers that keep all tokens (SpAtten: ~0.15)", minimum=0.0
        ),
        "head_start": Param(
            PAPER_SCHEDULE["head_start"], "share of layers that keep all heads (SpAtten: ~0.30)", minimum=0.0
        ),
        "pooling": Param("mean_all", "sentence vector: mean_all | mean | cls", choices=POOLINGS),
        "max_length": Param(128, "tokens per review", minimum=2),
        "batch_size": Param(32, "batch size of the pruned passes and of the throughput timing", minimum=1),
        "throughput_texts": Param(128, "held-out texts timed per configuration", minimum=1),
        "repeats": Param(5, "timed repeats (median reported), after one warm-up", minimum=1),
        "threads": Param(None, "torch threads for the run; None: torch's default", kind="int", minimum=1),
        "head_epochs": Param(60, "epochs for the linear head (early stopping on a dev split)", minimum=1),
        "explorer_token_keep": Param(0.3, "the mask explorer's initial last-layer token keep", minimum=0.05),
        "explorer_head_keep": Param(0.5, "the mask explorer's initial last-layer head keep", minimum=0.1),
    },
    smoke=dict(
        encoder="tiny",
        max_train_rows=60,
        max_eval_rows=40,
        keeps=[[0.5, 1.0], [0.2, 1.0], [0.2, 0.5]],
        max_length=64,
        throughput_texts=32,
        repeats=2,
        head_epochs=5,
    ),
    quick={},
    paper=dict(
        encoder="bert-base-uncased",
        max_train_rows=None,
        keeps=[[0.7, 1.0], [0.5, 1.0], [0.35, 1.0], [0.25, 1.0], [0.15, 1.0], [0.1, 1.0], [0.35, 0.7], [0.25, 0.5]],
        throughput_texts=512,
        repeats=7,
    ),
    # `--dry-run`: the paper encoder's real architecture (random weights) and every schedule, on a handful of rows
    dry_run=dict(
        max_train_rows=24,
        max_eval_rows=16,
        keeps=[[0.35, 1.0], [0.25, 0.5]],  # one token-only and one token + head schedule of the paper's list
        max_length=64,
        batch_size=8,
        throughput_texts=8,
        repeats=1,
        head_epochs=1,
    ),
)

# Published numbers (REFERENCES.md, "SpAtten and token pruning" and the figurative-language study): `speedup` is the
# headline factor over the dense model (None where the source gives none).
PAPER: dict[str, dict[str, object]] = {
    "spatten_tokens": {
        "method": "SpAtten token pruning (HPCA 2021, BERT/GPT-2, accelerator)",
        "speedup": 1.9,
        "speedup_text": "1.9x average (3.8x on GPT-2); computation -2.1x",
        "accuracy": "no loss",
    },
    "spatten_heads": {
        "method": "SpAtten head pruning",
        "speedup": 1.1,
        "speedup_text": "1.1x",
        "accuracy": "no loss",
    },
    "ltp": {
        "method": "LTP, software token pruning (CPU)",
        "speedup": 1.9,
        "speedup_text": "1.9x throughput",
        "accuracy": "< 1% loss",
    },
    "power_bert": {"method": "PoWER-BERT", "speedup": 4.5, "speedup_text": "up to 4.5x", "accuracy": "< 1% loss"},
    "top": {"method": "ToP (CPU latency)", "speedup": 7.4, "speedup_text": "up to 7.4x", "accuracy": "not given"},
    "besstie_masking": {
        "method": "BESSTIE study, SpAtten by masking (T4, batch 8)",
        "speedup": None,
        "speedup_text": "0.280 -> 0.281 s/batch (none)",
        "accuracy": "heatmaps only",
    },
}


@dataclass
class SpattenData:
    """Train rows (texts also in the evaluation rows removed) and the official validation rows of BESSTIE Google
    sentiment."""

    train: pd.DataFrame
    valid: pd.DataFrame
    removed_overlap: int
    label_names: list[str] = field(default_factory=list)


@dataclass
class SpattenResult(StudyResult):
    """A run's metric rows plus what the views need: the encoder, the rows, the schedules, the accuracy curve (one
    row per schedule and training), the throughput table, both merged (`curve`) and the best schedule (or None)."""

    encoder: Encoder | None = None
    frames: SpattenData | None = None
    schedules: list[PruneSchedule] = field(default_factory=list)
    accuracy: pd.DataFrame = field(default_factory=pd.DataFrame)
    throughput: pd.DataFrame = field(default_factory=pd.DataFrame)
    curve: pd.DataFrame = field(default_factory=pd.DataFrame)
    best: pd.Series | None = None

    @property
    def dense_hf(self) -> pd.Series:
        """The throughput row of the dense Hugging Face model."""
        return self.throughput[self.throughput["schedule"] == "hf_dense"].iloc[0]

    @property
    def dense_macro_f1(self) -> float:
        """Macro-F1 of the head on dense features (the reference for the tolerance)."""
        aware = self.curve[self.curve["training"] == "pruning_aware"]
        return float(aware.loc[aware["schedule"] == "dense", "macro_f1"].iloc[0])

    @property
    def target_met(self) -> bool:
        return self.best is not None and bool(self.best["speedup"] >= TARGET_SPEEDUP)


def load(params: dict[str, object]) -> SpattenData:
    """BESSTIE Sentiment, Google: train rows from the wide train file minus texts in the evaluation rows, evaluation
    on the official validation rows; each optionally a stratified, seeded subsample."""
    varieties, seed = list(params["varieties"]), int(params["seed"])
    train = load_besstie("Sentiment", varieties, "Google", "train", seed=seed)
    valid = load_besstie("Sentiment", varieties, "Google", "valid", seed=seed)
    train, removed = remove_overlap(train, valid)
    train = stratified_sample(train, params["max_train_rows"], seed)
    valid = stratified_sample(valid, params["max_eval_rows"], seed)
    return SpattenData(train, valid, removed, list(train.attrs["label_names"]))


def schedules_for(
    num_layers: int, keeps: Sequence[Sequence[float]], token_start: float = 0.15, head_start: float = 0.30
) -> list[PruneSchedule]:
    """The dense schedule followed by one SpAtten-shaped schedule per (last-layer token keep, head keep) pair."""
    bad = [k for k in keeps if not (isinstance(k, (list, tuple)) and len(k) == 2)]
    if bad:
        raise ValueError(f"keeps: each item must be [token keep, head keep], not {bad[0]!r}")
    grid = [PruneSchedule.spatten(num_layers, t, h, token_start, head_start) for t, h in keeps if (t, h) != (1.0, 1.0)]
    return [PruneSchedule.dense(num_layers), *grid]


def cached_features(
    texts: Sequence[str], encoder: Encoder, schedule: PruneSchedule, **kwargs
) -> tuple[np.ndarray, np.ndarray]:
    """`pruned_features`, stored on disk under the embedding cache (keyed by model, schedule, settings and texts),
    so that the notebook and the benchmark share one pass per schedule. A dry run's random-weight features are not
    stored."""
    if dry_run():
        return pruned_features(texts, encoder, schedule, **kwargs)
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


def head_config(seed: int, epochs: int) -> TrainConfig:
    """Training settings of the linear head: AdamW 3e-3, batch 64, weight decay 1e-2, class-weighted CE, patience 8."""
    return TrainConfig(
        epochs=epochs, lr=3e-3, batch_size=64, patience=8, seed=seed, weight_decay=1e-2, progress=False, device="cpu"
    )


def train_head(features: np.ndarray, labels: np.ndarray, num_classes: int, seed: int, epochs: int) -> nn.Module:
    """A linear probe (standardised inputs, no dropout) with early stopping on a seeded 15% dev split."""
    model, _ = train_probe(
        features, labels, num_classes, head_config(seed, epochs), dropout=0.0, dev_fraction=0.15, standardise=True
    )
    return model


def _scores(head: nn.Module, features: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, float]:
    ds = TensorDataset(torch.from_numpy(features).float(), torch.from_numpy(labels).long())
    predicted = predict(head, ds).argmax(-1)
    return classification_metrics(labels, predicted, labels=list(range(num_classes)))


def accuracy_curve(
    encoder: Encoder,
    data: SpattenData,
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
    dense_head = train_head(dense_train, y_train, k, seed, head_epochs)
    rows = []
    for schedule in schedules:
        eval_features, eval_flops = cached_features(eval_texts, encoder, schedule, **kw)
        if schedule.is_dense:
            aware_head = dense_head
        else:
            train_features, _ = cached_features(train_texts, encoder, schedule, **kw)
            aware_head = train_head(train_features, y_train, k, seed, head_epochs)
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
                    **_scores(head, eval_features, y_eval, k),
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
    batches = [encoder.tokenize(texts[i : i + batch_size], max_length) for i in range(0, len(texts), batch_size)]
    pruner = CascadePruner.from_encoder(encoder).eval()

    def dense_pass() -> None:
        for batch in batches:
            encoder.model(**batch)

    def pruned_pass(schedule: PruneSchedule):
        def run_batches() -> None:
            pruner.schedule = schedule
            for batch in batches:
                pruner(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))

        return run_batches

    configs = [("hf_dense", None, dense_pass)] + [(s.name, s, pruned_pass(s)) for s in schedules]
    seconds: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    bar = tqdm(total=(warmup + repeats) * len(configs), desc="throughput", disable=not progress)
    with torch.inference_mode():
        for rep in range(warmup + repeats):
            shift = rep % len(configs)
            for name, _, timed in configs[shift:] + configs[:shift]:
                start = time.perf_counter()
                timed()
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


def _metric_rows(curve: pd.DataFrame, dense_hf: pd.Series, dense_f1: float, params: dict[str, object]) -> list[dict]:
    """Flat rows for results.json: one per (schedule, training), then the dense Hugging Face reference."""
    keys = ["token_keep_last", "head_keep_last", "seed", "accuracy", "macro_f1", "weighted_f1", "precision",
            "recall", "flop_ratio", "seq_per_s", "speedup"]  # fmt: skip
    rows = [
        {"schedule": row["schedule"], "training": row["training"], "encoder": params["encoder"]}
        | {k: row[k] for k in keys}
        for row in curve.to_dict("records")
    ]
    rows.append(
        {
            "schedule": "hf_dense",
            "training": "dense",
            "encoder": params["encoder"],
            "token_keep_last": 1.0,
            "head_keep_last": 1.0,
            "seed": int(params["seed"]),
            "macro_f1": dense_f1,
            "flop_ratio": 1.0,
            "seq_per_s": float(dense_hf["seq_per_s"]),
            "speedup": 1.0,
        }
    )
    return rows


def run(params: dict[str, object], data: SpattenData | None = None, progress: bool = True) -> SpattenResult:
    """The whole study: data, the accuracy curve over the schedules, the throughput, the best schedule."""
    timings = Timings()
    set_seed(int(params["seed"]))
    with timings("load"):
        encoder = load_encoder(str(params["encoder"]))
        data = load(params) if data is None else data
    with torch_threads(params["threads"]):
        schedules = schedules_for(encoder.num_layers, params["keeps"], params["token_start"], params["head_start"])
        with timings("accuracy_curve"):
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
        with timings("throughput"):
            throughput = measure_throughput(
                encoder,
                list(data.valid["text"])[: int(params["throughput_texts"])],
                schedules,
                batch_size=int(params["batch_size"]),
                max_length=int(params["max_length"]),
                repeats=int(params["repeats"]),
                progress=progress,
            )
    curve = accuracy.merge(throughput[["schedule", "seq_per_s", "speedup"]], on="schedule", how="left")
    result = SpattenResult(
        study=STUDY,
        params=dict(params),
        metrics=pd.DataFrame(),
        data=[
            describe_data("besstie_google_sentiment_train", data.train, removed_overlap=data.removed_overlap),
            describe_data("besstie_google_sentiment_valid", data.valid),
        ],
        timings=dict(timings),
        notes=notes(params) + _data_notes(data),
        encoder=encoder,
        frames=data,
        schedules=schedules,
        accuracy=accuracy,
        throughput=throughput,
        curve=curve,
        best=best_schedule(curve),
    )
    result.metrics = pd.DataFrame(_metric_rows(curve, result.dense_hf, result.dense_macro_f1, params))
    best = result.best
    result.headline = {
        "best_schedule": None if best is None else best["schedule"],
        "speedup": None if best is None else float(best["speedup"]),
        "flop_ratio": None if best is None else float(best["flop_ratio"]),
        "dense_macro_f1": result.dense_macro_f1,
        "pruned_macro_f1": None if best is None else float(best["macro_f1"]),
        # a dry run's numbers come from random weights and one step: it claims no target either way
        "target_met": None if params.get("dry_run") else result.target_met,
    }
    if params.get("dry_run"):
        result.headline["dry_run"] = True
    return result


_POOLING_TEXT = {
    "mean_all": "mean_all: every token's latest state, so a pruned token counts with the output of the last layer "
    "that processed it",
    "mean": "mean over the tokens that survive to the last layer",
    "cls": "the [CLS] state",
}
_COMPARED = ("encoder", "varieties", "max_train_rows", "max_eval_rows", "keeps", "token_start", "head_start",
             "pooling", "max_length", "batch_size", "throughput_texts", "repeats", "head_epochs")  # fmt: skip


def notes(params: dict[str, object]) -> list[str]:
    """What this run is and how it differs from the paper's settings, derived from the parameters."""
    out = []
    if params.get("dry_run"):
        out.append(
            f"DRY RUN: {params['encoder']!r} has its published architecture but random weights and a stand-in "
            "tokenizer (MiniLM's), the rows are capped and every head takes one optimisation step: this checks the "
            "paper path's code, shapes and memory; the numbers mean nothing."
        )
    out += [
        f"Frozen encoder {params['encoder']!r}; a linear head (standardised inputs, class-weighted CE, at most "
        f"{params['head_epochs']} epochs, early stopping on a seeded 15% dev split) on the pooled states "
        f"({_POOLING_TEXT[str(params['pooling'])]}). post_hoc = head trained on dense features, run under pruning; "
        "pruning_aware = head trained on the schedule's pruned features. SpAtten fine-tunes the whole model with "
        "pruning on (GPU)."
    ]
    if params["encoder"] == "tiny":
        out.append("The encoder is a tiny randomly initialised BERT: its numbers and figures test the code only.")
    threads = params["threads"]
    threads = f"{threads} torch thread{'s' * (threads != 1)}" if threads else "torch's default thread count"
    out.append(
        f"Throughput: the dense Hugging Face model against the cascade pruner in one process, on the first "
        f"{params['throughput_texts']} held-out texts in batches of {params['batch_size']} (max length "
        f"{params['max_length']}), interleaved, median of {params['repeats']} repeats after one warm-up, "
        f"tokenisation excluded, {threads}; on a shared machine the timings are noisy."
    )
    train = f"a stratified {params['max_train_rows']:,}" if params["max_train_rows"] else "all"
    valid = f"a stratified {params['max_eval_rows']:,} of" if params["max_eval_rows"] else "all"
    out.append(
        f"Data: BESSTIE Sentiment, Google, {' + '.join(params['varieties'])}: {train} of the training rows whose text "
        f"is not in the held-out rows; held-out: {valid} the official validation rows."
    )
    out.append(
        f"{len(params['keeps'])} pruned schedules of SpAtten's shape (the first {params['token_start']:.0%} of layers "
        f"keep all tokens, the first {params['head_start']:.0%} all heads), last-layer (token, head) keeps "
        + ", ".join(f"({t:g}, {h:g})" for t, h in params["keeps"])
        + "."
    )
    # the paper profile's own values, without a dry run's caps (`defaults` adds them inside a `--dry-run`)
    paper = {name: PROFILES.overrides["paper"].get(name, param.value) for name, param in PROFILES.base.items()}
    differences = [
        f"{name} {_show(params[name])} (paper profile: {_show(paper[name])})"
        for name in _COMPARED
        if params[name] != paper[name]
    ]
    if differences:
        out.append("Differs from the paper profile: " + "; ".join(differences) + ".")
    else:
        out.append("The paper profile's settings (its encoder, all rows, its schedules and timing sizes).")
    return out


def _show(value: object) -> str:
    if value is None:
        return "all"
    if isinstance(value, list) and value and isinstance(value[0], list):
        return f"{len(value)} schedules"
    return str(value)


def _data_notes(data: SpattenData) -> list[str]:
    n = len(data.valid)
    return [
        f"{data.removed_overlap} training rows removed because their text is in the held-out rows; {len(data.train)} "
        f"training and {n} held-out rows (one macro-F1 point is about {0.01 * n:.1f} of them)."
    ]


CURVE_COLUMNS = ["schedule", "training", "macro_f1", "accuracy", "weighted_f1", "flop_ratio", "seq_per_s", "speedup"]


def tables(result: SpattenResult) -> dict[str, pd.DataFrame]:
    """`schedules` (per-layer keeps), `curve` (one row per schedule and training), `throughput` (per configuration,
    dense Hugging Face first), `paper` (published speed-ups beside this run's best schedule)."""
    schedules = pd.DataFrame(
        [
            {
                "schedule": s.name,
                "token_keep": "/".join(f"{r:.2f}" for r in s.token_keep),
                "head_keep": "/".join(f"{r:.2f}" for r in s.head_keep),
            }
            for s in result.schedules
        ]
    )
    throughput = result.throughput[["schedule", "implementation", "seq_per_s", "median_seconds", "speedup"]]
    best = result.best
    ours = {
        "method": f"ours: {best['schedule'] if best is not None else '-'} ({result.params['encoder']}, this CPU)",
        "speedup": None if best is None else float(best["speedup"]),
        "speedup_text": "-" if best is None else f"{best['speedup']:.2f}x measured, {best['flop_ratio']:.2f}x FLOPs",
        "accuracy": "-" if best is None else f"macro-F1 {best['macro_f1']:.4f} vs {result.dense_macro_f1:.4f}",
    }
    paper = pd.DataFrame([*PAPER.values(), ours]).rename(columns={"speedup_text": "speed-up"})
    return {
        "schedules": schedules,
        "curve": result.curve[CURVE_COLUMNS].round(4),
        "throughput": throughput.round(4),
        "paper": paper[["method", "speed-up", "accuracy"]],
    }


def verdict(result: SpattenResult) -> str:
    """One Markdown line: the best schedule within the tolerance, its speed and F1 beside dense, and the target."""
    best = result.best
    if result.params.get("dry_run"):
        return "**Dry run** (random weights, one training step, capped rows): no verdict on the target."
    if best is None:
        return f"**No pruned schedule kept macro-F1 within {F1_TOLERANCE * 100:.0f} point of dense.**"
    return (
        f"**Best within {F1_TOLERANCE * 100:.0f} F1 point: `{best['schedule']}`**: {best['seq_per_s']:.1f} vs "
        f"{result.dense_hf['seq_per_s']:.1f} seq/s = **{best['speedup']:.2f}x** measured (FLOP ratio "
        f"{best['flop_ratio']:.2f}x); macro-F1 {best['macro_f1']:.4f} vs dense {result.dense_macro_f1:.4f}. "
        f"Target (>= {TARGET_SPEEDUP:.1f}x, <= {F1_TOLERANCE * 100:.0f} point drop): "
        f"**{'met' if result.target_met else 'not met'}**."
    )


__all__ = [
    "PAPER",
    "PROFILES",
    "STUDY",
    "SpattenData",
    "SpattenResult",
    "accuracy_curve",
    "best_schedule",
    "load",
    "measure_throughput",
    "notes",
    "run",
    "schedules_for",
    "tables",
    "verdict",
]
