"""SpAtten study: macro-F1 on BESSTIE Google sentiment against measured throughput, over cascade-pruning schedules,
judged against the strongest dense model of the same encoder and beside the usual CPU speed-ups (int8, ONNX Runtime).

For each schedule (dense first, then SpAtten-shaped ones) and each pooling the pruned path can use (final-layer
mean, mean over the survivors' and the pruned tokens' latest states, last-k-layer mean, all-layer mean, [CLS]), a
linear head on the frozen encoder's pooled states is trained either on dense features and run under the schedule
(`post_hoc`) or on the schedule's own pruned features (`pruning_aware`). Every choice between poolings, the dense
reference's included, is made on a seeded dev split of the training rows, never on the held-out rows that are
reported. Throughput is measured in this process: the dense Hugging Face model, the cascade pruner per schedule and
the peers (`runtimes`: PyTorch dynamic int8, ONNX Runtime fp32 and int8, the pruned schedules on the int8 encoder)
on the same pre-tokenised batches, interleaved, median over repeats. With `finetune`, the encoder is also fine-tuned,
once densely and once with a schedule's pruning on (SpAtten's own setting). The best schedule is the fastest one within
one macro-F1 point of the dense reference; the goals are >= 2x the dense throughput (pruned) and >= 3x (pruned + int8).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset
from tqdm.auto import tqdm

from workbench.data import BESSTIE_VARIETIES, load_besstie, remove_overlap
from workbench.data.sampling import split_indices, stratified_sample
from workbench.encoders import Encoder, cache_dir, encoder_name_problem, load_encoder
from workbench.methods.probe import train_probe
from workbench.methods.runtimes import RUNTIME_TEXT, RUNTIMES, dense_runners, quantize_linear_int8, runtime_problem
from workbench.methods.spatten import (
    POOLINGS,
    CascadePruner,
    PrunedClassifier,
    PruneSchedule,
    flop_ratio,
    pool_layers,
    pooling_problem,
    pruned_features,
    token_lengths,
)
from workbench.paper_models import dry_run
from workbench.profiles import Param, Profiles
from workbench.results import StudyResult, Timings, describe_data, figures_meaningful
from workbench.runtime import set_seed, torch_threads
from workbench.saving import TrainedModel, model_name
from workbench.training import TrainConfig, classification_metrics, fit, predict

STUDY = "spatten"
F1_TOLERANCE = 0.01  # the target: macro-F1 no more than 1.0 point below the strongest dense reference ...
TARGET_SPEEDUP = 2.0  # ... at no less than twice the dense model's measured throughput
TARGET_SPEEDUP_INT8 = 3.0  # and the pruned model with int8 linear layers: >= 3x dense fp32, same tolerance
DEV_FRACTION = 0.15  # the seeded dev split of the training rows: early stopping and every choice of pooling
# SpAtten's schedule shape (REFERENCES.md): the first ~15% of layers keep all tokens, the first ~30% all heads.
PAPER_SCHEDULE = {"token_start": 0.15, "head_start": 0.30}


def _pooling_choice(value: object) -> str | None:
    return None if value == "dev" else pooling_problem(value)


def _poolings_problem(value: object) -> str | None:
    if not value:
        return "name at least one pooling"
    return next((p for p in map(pooling_problem, value) if p), None)


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
        "pooling": Param(
            "dev",
            "pooling of the pruned schedules: dev (each schedule's best on the dev split) or one of `poolings`",
            validate=_pooling_choice,
        ),
        "poolings": Param(
            list(POOLINGS),
            "poolings evaluated (mean, mean_all, mean_last<k>, mean_layers, cls); the dense reference is the one with "
            "the best dev-split macro-F1",
            validate=_poolings_problem,
        ),
        "max_length": Param(128, "tokens per review", minimum=2),
        "batch_size": Param(32, "batch size of the pruned passes and of the throughput timing", minimum=1),
        "throughput_texts": Param(128, "held-out texts timed per configuration", minimum=1),
        "repeats": Param(5, "timed repeats (median reported), after one warm-up", minimum=1),
        "threads": Param(None, "torch threads for the run; None: torch's default", kind="int", minimum=1),
        "runtimes": Param(
            list(RUNTIMES),
            "peers timed and scored beside dense and pruned (one missing here is skipped with a message)",
            choices=RUNTIMES,
        ),
        "head_epochs": Param(60, "epochs for the linear head (early stopping on a dev split)", minimum=1),
        "finetune": Param(False, "also fine-tune the encoder, densely and with `finetune_keep`'s pruning on (SpAtten)"),
        "finetune_keep": Param([0.1, 1.0], "[last-layer token keep, head keep] of the schedule fine-tuned with"),
        "finetune_rows": Param(
            400, "stratified training rows for fine-tuning (dev split included); None: all", optional=True, minimum=1
        ),
        "finetune_epochs": Param(2, "fine-tuning epochs (early stopping on the dev split)", minimum=1),
        "finetune_lr": Param(5e-5, "fine-tuning learning rate (AdamW, word embeddings frozen)", minimum=0.0),
        "finetune_batch_size": Param(16, "fine-tuning batch size", minimum=1),
        "explorer_token_keep": Param(0.3, "the mask explorer's initial last-layer token keep", minimum=0.05),
        "explorer_head_keep": Param(0.5, "the mask explorer's initial last-layer head keep", minimum=0.1),
        "save_models": Param(True, "save each schedule's chosen pruning-aware head and the fine-tuned models"),
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
        finetune=True,
        finetune_keep=[0.2, 1.0],
        finetune_epochs=1,
        finetune_lr=1e-3,
    ),
    quick={},
    paper=dict(
        encoder="bert-base-uncased",
        max_train_rows=None,
        keeps=[[0.7, 1.0], [0.5, 1.0], [0.35, 1.0], [0.25, 1.0], [0.15, 1.0], [0.1, 1.0], [0.35, 0.7], [0.25, 0.5]],
        throughput_texts=512,
        repeats=7,
        finetune=True,
        finetune_keep=[0.15, 1.0],
        finetune_rows=None,
        finetune_epochs=3,
        finetune_lr=2e-5,
        finetune_batch_size=32,
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
        finetune_keep=[0.35, 1.0],
        finetune_rows=24,
        finetune_epochs=1,
        finetune_batch_size=8,
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
    """A run's metric rows plus what the views need: the encoder, the rows, the schedules, the accuracy rows (one per
    schedule, training and pooling, with its dev-split score and `chosen` flag), the throughput table (every timed
    configuration), `curve` (the chosen pooling's rows with their throughput), the dense reference row, the best
    schedule within the tolerance (or None) and the best trade-off, the peers (`runtimes`) with the best pruned + int8
    schedule, the fine-tuning comparison (empty without `finetune`) and the runtimes skipped here (with why)."""

    encoder: Encoder | None = None
    frames: SpattenData | None = None
    schedules: list[PruneSchedule] = field(default_factory=list)
    accuracy: pd.DataFrame = field(default_factory=pd.DataFrame)
    throughput: pd.DataFrame = field(default_factory=pd.DataFrame)
    curve: pd.DataFrame = field(default_factory=pd.DataFrame)
    reference: pd.Series | None = None
    best: pd.Series | None = None
    trade_off: pd.Series | None = None
    runtimes: pd.DataFrame = field(default_factory=pd.DataFrame)
    best_int8: pd.Series | None = None
    finetuned: pd.DataFrame = field(default_factory=pd.DataFrame)
    skipped: list[str] = field(default_factory=list)

    @property
    def dense_hf(self) -> pd.Series:
        """The throughput row of the dense Hugging Face model (fp32)."""
        return self.throughput[self.throughput["schedule"] == "hf_dense"].iloc[0]

    @property
    def dense_reference(self) -> str:
        """The pooling of the dense reference: the dense pooling with the best dev-split macro-F1."""
        return str(self.reference["pooling"])

    @property
    def dense_macro_f1(self) -> float:
        """Held-out macro-F1 of the dense reference (the baseline of the tolerance)."""
        return float(self.reference["macro_f1"])

    @property
    def meaningful(self) -> bool:
        return is_meaningful(self.params)

    @property
    def target_met(self) -> bool | None:
        """A pruned schedule within the tolerance at >= 2x dense throughput; None when the figures mean nothing."""
        if not self.meaningful:
            return None
        return self.best is not None and bool(self.best["speedup"] >= TARGET_SPEEDUP)

    @property
    def int8_target_met(self) -> bool | None:
        """A pruned schedule on the int8 encoder within the tolerance at >= 3x dense fp32; None as above, or when the
        combination was not run."""
        if not self.meaningful or "pruned_int8" not in set(self.runtimes.get("runtime", [])):
            return None
        return self.best_int8 is not None and bool(self.best_int8["speedup"] >= TARGET_SPEEDUP_INT8)


def is_meaningful(params: dict[str, object]) -> bool:
    """False for a smoke run, a dry run or the tiny random encoder: their figures test the code only, so no target is
    judged on them."""
    return figures_meaningful(str(params.get("profile", "")), params)


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


def evaluated_poolings(params: dict[str, object]) -> list[str]:
    """`poolings`, plus a fixed `pooling` when it is not among them (in order, without repeats)."""
    extra = [] if params["pooling"] == "dev" else [str(params["pooling"])]
    return list(dict.fromkeys([*map(str, params["poolings"]), *extra]))


def dense_poolings(poolings: Sequence[str]) -> list[str]:
    """The poolings worth scoring on the dense model: `mean_all` is the final-layer `mean` when nothing is pruned."""
    return [p for p in poolings if not (p == "mean_all" and "mean" in poolings)]


def cached_features(
    texts: Sequence[str],
    encoder: Encoder,
    schedule: PruneSchedule,
    *,
    poolings: Sequence[str],
    max_length: int = 128,
    batch_size: int = 32,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """`pruned_features` for every pooling in `poolings` (one pass), stored on disk under the embedding cache (keyed
    by model, schedule, poolings, settings and texts), so that the notebook and the benchmark share one pass per
    schedule. A dry run's random-weight features are not stored."""
    kw = dict(pooling=list(poolings), max_length=max_length, batch_size=batch_size, progress=progress)
    if dry_run():
        return pruned_features(texts, encoder, schedule, **kw)
    key = {
        "model": encoder.fingerprint,
        "token_keep": schedule.token_keep,
        "head_keep": schedule.head_keep,
        "poolings": sorted(poolings),
        "max_length": max_length,
        "texts": hashlib.sha1("\x00".join(texts).encode()).hexdigest(),
    }
    path = cache_dir() / "pruning" / (hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20] + ".npz")
    if path.is_file():
        with np.load(path) as stored:
            return {p: stored[f"pool:{p}"].copy() for p in poolings}, stored["flops"].copy()
    features, flops = pruned_features(texts, encoder, schedule, **kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.partial")
    with open(tmp, "wb") as handle:
        np.savez(handle, flops=flops, **{f"pool:{p}": f for p, f in features.items()})
    tmp.replace(path)
    return features, flops


def head_config(seed: int, epochs: int) -> TrainConfig:
    """Training settings of the linear head: AdamW 3e-3, batch 64, weight decay 1e-2, class-weighted CE, patience 8."""
    return TrainConfig(
        epochs=epochs, lr=3e-3, batch_size=64, patience=8, seed=seed, weight_decay=1e-2, progress=False, device="cpu"
    )


def train_head(
    features: np.ndarray, labels: np.ndarray, num_classes: int, seed: int, epochs: int
) -> tuple[nn.Module, float]:
    """A linear probe (standardised inputs, no dropout) with early stopping on the seeded dev split
    (`DEV_FRACTION` of the training rows), and its macro-F1 on that dev split."""
    model, history = train_probe(
        features,
        labels,
        num_classes,
        head_config(seed, epochs),
        dropout=0.0,
        dev_fraction=DEV_FRACTION,
        standardise=True,
    )
    return model, float(history.best_score)


def dev_indices(labels: np.ndarray, seed: int) -> np.ndarray:
    """The dev rows `train_head` holds out of the training rows (the same seeded, stratified split)."""
    return np.asarray(split_indices(len(labels), labels, seed, test_size=DEV_FRACTION, sort=False)[1])


def _scores(head: nn.Module, features: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, float]:
    ds = TensorDataset(torch.from_numpy(np.asarray(features, np.float32)), torch.from_numpy(labels).long())
    predicted = predict(head, ds).argmax(-1)
    return classification_metrics(labels, predicted, labels=list(range(num_classes)))


def accuracy_curve(
    encoder: Encoder,
    data: SpattenData,
    schedules: Sequence[PruneSchedule],
    *,
    poolings: Sequence[str] = POOLINGS,
    pooling: str = "dev",
    max_length: int = 128,
    batch_size: int = 32,
    head_epochs: int = 60,
    seed: int = 0,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[tuple[str, str, str], nn.Module]]:
    """One row per (schedule, pooling, training) and the heads behind them, keyed (schedule, training, pooling).

    `post_hoc`: the head trained on dense features of that pooling, run on the schedule's features;
    `pruning_aware`: a head trained on the schedule's own features. Each row has the held-out metrics, the macro-F1
    on the dev split of the training rows (`dev_macro_f1`: for post_hoc, the dense head on the pruned dev rows), the
    theoretical FLOP ratio dense / pruned, and `chosen` (`choose_poolings`)."""
    train_texts, eval_texts = list(data.train["text"]), list(data.valid["text"])
    y_train = np.array(data.train["label"], dtype=np.int64)
    y_eval = np.array(data.valid["label"], dtype=np.int64)
    k = len(data.label_names)
    dev = dev_indices(y_train, seed)
    kw = dict(poolings=list(poolings), max_length=max_length, batch_size=batch_size, progress=progress)
    dense_train, _ = cached_features(train_texts, encoder, schedules[0], **kw)
    dense_heads = {p: train_head(dense_train[p], y_train, k, seed, head_epochs) for p in poolings}
    heads: dict[tuple[str, str, str], nn.Module] = {}
    rows = []
    for schedule in schedules:
        eval_features, eval_flops = cached_features(eval_texts, encoder, schedule, **kw)
        train_features = dense_train if schedule.is_dense else cached_features(train_texts, encoder, schedule, **kw)[0]
        ratio = flop_ratio(eval_texts, encoder, eval_flops, max_length)
        for name in dense_poolings(poolings) if schedule.is_dense else poolings:
            dense_head, dense_dev = dense_heads[name]
            if schedule.is_dense:
                aware_head, aware_dev, post_dev = dense_head, dense_dev, dense_dev
            else:
                aware_head, aware_dev = train_head(train_features[name], y_train, k, seed, head_epochs)
                post_dev = _scores(dense_head, train_features[name][dev], y_train[dev], k)["macro_f1"]
            for training, head, dev_f1 in (
                ("post_hoc", dense_head, post_dev),
                ("pruning_aware", aware_head, aware_dev),
            ):
                heads[(schedule.name, training, name)] = head
                rows.append(
                    {
                        "schedule": schedule.name,
                        "token_keep_last": schedule.token_keep[-1],
                        "head_keep_last": schedule.head_keep[-1],
                        "training": training,
                        "pooling": name,
                        "seed": seed,
                        "flop_ratio": ratio,
                        "dev_macro_f1": dev_f1,
                        **_scores(head, eval_features[name], y_eval, k),
                    }
                )
    return choose_poolings(pd.DataFrame(rows), pooling), heads


def choose_poolings(accuracy: pd.DataFrame, pooling: str = "dev") -> pd.DataFrame:
    """`accuracy` with a `chosen` column: per (schedule, training), the pooling with the best `dev_macro_f1` (the
    first listed on a tie). The held-out `macro_f1` plays no part. The dense schedule's choice is the dense
    reference; with a fixed `pooling`, the pruned schedules use that one instead of their dev choice."""
    chosen = pd.Series(False, index=accuracy.index)
    for (schedule, _), group in accuracy.groupby(["schedule", "training"], sort=False):
        if pooling != "dev" and schedule != "dense":
            index = group.index[group["pooling"] == pooling][0]
        else:
            index = group["dev_macro_f1"].idxmax()
        chosen[index] = True
    return accuracy.assign(chosen=chosen)


def dense_reference(accuracy: pd.DataFrame) -> pd.Series:
    """The dense reference: the dense schedule's row whose pooling won on the dev split."""
    dense = accuracy[(accuracy["schedule"] == "dense") & (accuracy["training"] == "pruning_aware")]
    return dense[dense["chosen"]].iloc[0]


def _length_ordered_batches(encoder: Encoder, texts: Sequence[str], batch_size: int, max_length: int):
    order = np.argsort(token_lengths(texts, encoder, max_length), kind="stable")
    for start in range(0, len(texts), batch_size):
        index = order[start : start + batch_size]
        yield index, encoder.tokenize([texts[i] for i in index], max_length)


@torch.inference_mode()
def runner_features(
    runner: Callable, encoder: Encoder, texts: Sequence[str], pooling: str, max_length: int = 128, batch_size: int = 32
) -> np.ndarray:
    """(n, d) pooled features of `texts` from a dense runtime (`workbench.methods.runtimes.dense_runners`)."""
    features = np.zeros((len(texts), encoder.hidden_size), np.float32)
    for index, batch in _length_ordered_batches(encoder, texts, batch_size, max_length):
        means, cls = runner(**batch)
        features[index] = pool_layers(means, cls, pooling).float().cpu().numpy()
    return features


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
    runners: dict[str, Callable] | None = None,
    int8_model: nn.Module | None = None,
) -> pd.DataFrame:
    """Sequences per second of every configuration, measured in this process on the same pre-tokenised batches
    (tokenisation excluded): the dense Hugging Face model (`hf_dense`, fp32, per-layer means and [CLS] out, like
    every dense runtime), the cascade pruner per schedule, each dense runtime of `runners`, and with `int8_model`
    each pruned schedule on that int8 encoder (`<schedule> int8`). The order of the configurations rotates each
    repeat (interleaved); the median over repeats is reported, `speedup` against `hf_dense`."""
    from workbench.methods.runtimes import LayerPooler

    batches = [encoder.tokenize(texts[i : i + batch_size], max_length) for i in range(0, len(texts), batch_size)]
    special = [i for i in encoder.tokenizer.all_special_ids if i != encoder.tokenizer.pad_token_id]
    pruner = CascadePruner(encoder.model, protected_ids=special).eval()
    int8_pruner = CascadePruner(int8_model, protected_ids=special).eval() if int8_model is not None else None
    hf = LayerPooler(encoder.model).eval()

    def model_pass(model: Callable) -> Callable[[], None]:
        def run_batches() -> None:
            for batch in batches:
                model(**batch)

        return run_batches

    def pruned_pass(which: CascadePruner, schedule: PruneSchedule) -> Callable[[], None]:
        def run_batches() -> None:
            which.schedule = schedule
            for batch in batches:
                which(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))

        return run_batches

    # (name, implementation, runtime, schedule name, timed pass)
    configs = [("hf_dense", "huggingface", "fp32", "dense", model_pass(hf))]
    configs += [(s.name, "cascade_pruner", "fp32", s.name, pruned_pass(pruner, s)) for s in schedules]
    for name, runner in (runners or {}).items():
        implementation = "onnxruntime" if name.startswith("onnx") else "huggingface"
        configs.append((name, implementation, name, "dense", model_pass(runner)))
    if int8_pruner is not None:
        configs += [
            (f"{s.name} int8", "cascade_pruner", "pruned_int8", s.name, pruned_pass(int8_pruner, s))
            for s in schedules
            if not s.is_dense
        ]
    seconds: dict[str, list[float]] = {c[0]: [] for c in configs}
    bar = tqdm(total=(warmup + repeats) * len(configs), desc="throughput", disable=not progress)
    with torch.inference_mode():
        for rep in range(warmup + repeats):
            shift = rep % len(configs)
            for name, *_, timed in configs[shift:] + configs[:shift]:
                start = time.perf_counter()
                timed()
                if rep >= warmup:
                    seconds[name].append(time.perf_counter() - start)
                bar.update(1)
    bar.close()
    rows = []
    dense_median = statistics.median(seconds["hf_dense"])
    for name, implementation, runtime, schedule, _ in configs:
        median = statistics.median(seconds[name])
        rows.append(
            {
                "schedule": name,
                "base_schedule": schedule,
                "runtime": runtime,
                "implementation": implementation,
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


def score_runtimes(
    encoder: Encoder,
    data: SpattenData,
    accuracy: pd.DataFrame,
    heads: dict[tuple[str, str, str], nn.Module],
    schedules: Sequence[PruneSchedule],
    *,
    runners: dict[str, Callable] | None = None,
    int8_model: nn.Module | None = None,
    max_length: int = 128,
    batch_size: int = 32,
) -> pd.DataFrame:
    """Held-out metrics of every peer, each with the fp32 head of what it stands in for (post-training
    quantization / conversion: nothing is retrained): a dense runtime with the dense reference's pooling and head;
    a pruned schedule on the int8 encoder with that schedule's chosen pooling and pruning-aware head."""
    eval_texts = list(data.valid["text"])
    y_eval = np.array(data.valid["label"], dtype=np.int64)
    k = len(data.label_names)
    reference = dense_reference(accuracy)
    rows = []
    for name, runner in (runners or {}).items():
        pooling = str(reference["pooling"])
        features = runner_features(runner, encoder, eval_texts, pooling, max_length, batch_size)
        head = heads[("dense", "pruning_aware", pooling)]
        rows.append(
            {"config": name, "runtime": name, "schedule": "dense", "training": "post_training", "pooling": pooling}
            | {"flop_ratio": 1.0, **_scores(head, features, y_eval, k)}
        )
    if int8_model is not None:
        chosen = accuracy[accuracy["chosen"] & (accuracy["training"] == "pruning_aware")].set_index("schedule")
        for schedule in schedules:
            if schedule.is_dense:
                continue
            pooling = str(chosen.loc[schedule.name, "pooling"])
            features, _ = pruned_features(
                eval_texts, encoder, schedule, pooling=pooling, max_length=max_length, batch_size=batch_size,
                progress=False, model=int8_model,
            )  # fmt: skip
            head = heads[(schedule.name, "pruning_aware", pooling)]
            rows.append(
                {"config": f"{schedule.name} int8", "runtime": "pruned_int8", "schedule": schedule.name}
                | {
                    "training": "pruning_aware",
                    "pooling": pooling,
                    "flop_ratio": chosen.loc[schedule.name, "flop_ratio"],
                }
                | _scores(head, features, y_eval, k)
            )
    return pd.DataFrame(rows)


class _Reviews(Dataset):
    """Tokenised texts (no padding) and labels; `pad` makes a batch dict padded to its longest text."""

    def __init__(self, encoder: Encoder, texts: Sequence[str], labels: Sequence[int], max_length: int):
        self.ids = encoder.tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
        self.labels = [int(y) for y in labels]
        self.pad_id = int(encoder.tokenizer.pad_token_id or 0)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.ids[i], self.labels[i]

    def pad(self, items: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for ids, _ in items)
        input_ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, (ids, _) in enumerate(items):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": mask, "labels": torch.tensor([y for _, y in items])}


def fine_tune_comparison(
    encoder: Encoder,
    data: SpattenData,
    schedule: PruneSchedule,
    pooling: str,
    heads: dict[tuple[str, str, str], nn.Module],
    params: dict[str, object],
    progress: bool = True,
    keep: dict[str, nn.Module] | None = None,
) -> pd.DataFrame:
    """SpAtten's setting on a CPU budget: the encoder fine-tuned (word embeddings frozen, early stopping on the dev
    split) once densely and once with `schedule`'s pruning on, each starting from the frozen encoder's linear head
    of `pooling` (LP-FT). Rows: the dense fine-tuned model (`finetuned`, dense), the same model with the schedule
    applied after fine-tuning (`finetuned_post_hoc`), and the model fine-tuned with pruning on
    (`finetuned_pruning_aware`); held-out metrics and the dev split's macro-F1. The encoder itself is not changed."""
    seed, length = int(params["seed"]), int(params["max_length"])
    rows = stratified_sample(data.train, params["finetune_rows"], seed)
    labels = np.array(rows["label"], dtype=np.int64)
    dev = dev_indices(labels, seed)
    train = np.setdiff1d(np.arange(len(labels)), dev)
    texts = np.array(rows["text"], dtype=object)
    train_ds = _Reviews(encoder, texts[train], labels[train], length)
    dev_ds = _Reviews(encoder, texts[dev], labels[dev], length)
    eval_ds = _Reviews(encoder, list(data.valid["text"]), list(data.valid["label"]), length)
    k = len(data.label_names)
    special = [i for i in encoder.tokenizer.all_special_ids if i != encoder.tokenizer.pad_token_id]
    config = TrainConfig(
        epochs=int(params["finetune_epochs"]),
        lr=float(params["finetune_lr"]),
        batch_size=int(params["finetune_batch_size"]),
        patience=int(params["finetune_epochs"]),
        seed=seed,
        eval_batch_size=64,
        device="cpu",
        progress=progress,
    )
    dense = PruneSchedule.dense(encoder.num_layers)

    def metrics(model: PrunedClassifier, evaluated: PruneSchedule, ds: _Reviews) -> dict[str, float]:
        model.pruner.schedule = evaluated
        logits = predict(model, ds, batch_size=64, collate_fn=ds.pad)
        return classification_metrics(np.array(ds.labels), logits.argmax(-1), labels=list(range(k)))

    out = []
    for training, trained_with in (("finetuned", dense), ("finetuned_pruning_aware", schedule)):
        model = copy.deepcopy(encoder.model).train()
        model.get_input_embeddings().weight.requires_grad_(False)
        start_head = copy.deepcopy(heads[(trained_with.name, "pruning_aware", pooling)])
        classifier = PrunedClassifier(model, start_head, trained_with, pooling, special)
        start = time.perf_counter()
        history = fit(classifier, train_ds, dev_ds, config, collate_fn=train_ds.pad, num_classes=k, desc=training)
        seconds = time.perf_counter() - start
        evaluations = [(training, trained_with)]
        if training == "finetuned":
            evaluations.append(("finetuned_post_hoc", schedule))
        for name, evaluated in evaluations:
            out.append(
                {
                    "schedule": evaluated.name,
                    "training": name,
                    "pooling": pooling,
                    "seed": seed,
                    "finetune_rows": len(train),
                    "finetune_epochs_run": len(history.epochs),
                    "finetune_seconds": seconds,
                    "dev_macro_f1": metrics(classifier, evaluated, dev_ds)["macro_f1"],
                    **metrics(classifier, evaluated, eval_ds),
                }
            )
        if keep is not None:  # the fine-tuned model, with the schedule it was trained with (to save it)
            classifier.pruner.schedule = trained_with
            keep[training] = classifier
    return pd.DataFrame(out)


def best_schedule(
    curve: pd.DataFrame, tolerance: float = F1_TOLERANCE, reference_f1: float | None = None
) -> pd.Series | None:
    """The fastest pruning-aware row whose macro-F1 is at most `tolerance` below `reference_f1` (default: the dense
    row's macro-F1); None if none is."""
    aware = curve[curve["training"] == "pruning_aware"]
    if reference_f1 is None:
        reference_f1 = float(aware.loc[aware["schedule"] == "dense", "macro_f1"].iloc[0])
    ok = aware[(aware["schedule"] != "dense") & (aware["macro_f1"] >= reference_f1 - tolerance - 1e-12)]
    if ok.empty:
        return None
    return ok.sort_values(["speedup", "macro_f1"], ascending=False).iloc[0]


def best_trade_off(
    curve: pd.DataFrame, reference_f1: float, target: float = TARGET_SPEEDUP, tolerance: float = F1_TOLERANCE
) -> pd.Series | None:
    """The row to report when judging a goal: the best schedule within the tolerance when one exists; else the most
    accurate pruned schedule that reaches `target`; else the most accurate pruned schedule (faster on a tie)."""
    best = best_schedule(curve, tolerance, reference_f1)
    if best is not None:
        return best
    pruned = curve[(curve["training"] == "pruning_aware") & (curve["schedule"] != "dense")]
    if pruned.empty:
        return None
    fast = pruned[pruned["speedup"] >= target]
    return (fast if len(fast) else pruned).sort_values(["macro_f1", "speedup"], ascending=False).iloc[0]


def _metric_rows(result: SpattenResult) -> list[dict]:
    """Flat rows for results.json: every (schedule, training, pooling) of the frozen encoder with its throughput,
    every peer, the fine-tuning rows, then the dense Hugging Face reference."""
    params = result.params
    keys = ["token_keep_last", "head_keep_last", "seed", "dev_macro_f1", "accuracy", "macro_f1", "weighted_f1",
            "precision", "recall", "flop_ratio", "chosen"]  # fmt: skip
    fp32 = result.throughput[result.throughput["runtime"] == "fp32"].set_index("schedule")
    rows = []
    for row in result.accuracy.to_dict("records"):
        speed = fp32.loc[row["schedule"]]
        rows.append(
            {"schedule": row["schedule"], "training": row["training"], "pooling": row["pooling"], "runtime": "fp32"}
            | {"encoder": params["encoder"], **{k: row[k] for k in keys}}
            | {"seq_per_s": float(speed["seq_per_s"]), "speedup": float(speed["speedup"])}
        )
    for row in result.runtimes.to_dict("records"):
        rows.append({"encoder": params["encoder"], "seed": int(params["seed"]), **row})
    for row in result.finetuned.to_dict("records"):
        speed = fp32.loc[row["schedule"] if row["schedule"] != "dense" else "hf_dense"]
        rows.append(
            {"encoder": params["encoder"], "runtime": "fp32", **row}
            | {"seq_per_s": float(speed["seq_per_s"]), "speedup": float(speed["speedup"])}
        )
    rows.append(
        {
            "schedule": "hf_dense",
            "training": "dense",
            "pooling": result.dense_reference,
            "runtime": "fp32",
            "encoder": params["encoder"],
            "token_keep_last": 1.0,
            "head_keep_last": 1.0,
            "seed": int(params["seed"]),
            "dev_macro_f1": float(result.reference["dev_macro_f1"]),
            "macro_f1": result.dense_macro_f1,
            "flop_ratio": 1.0,
            "seq_per_s": float(result.dense_hf["seq_per_s"]),
            "speedup": 1.0,
        }
    )
    return rows


def run(params: dict[str, object], data: SpattenData | None = None, progress: bool = True) -> SpattenResult:
    """The whole study: data, the accuracy rows over schedules and poolings, the dense reference (by dev), the
    throughput of every configuration, the peers' scores, the optional fine-tuning, the best schedules."""
    timings = Timings()
    set_seed(int(params["seed"]))
    skipped: list[str] = []
    with timings("load"):
        encoder = load_encoder(str(params["encoder"]))
        data = load(params) if data is None else data
    length, batch_size = int(params["max_length"]), int(params["batch_size"])
    with torch_threads(params["threads"]):
        schedules = schedules_for(encoder.num_layers, params["keeps"], params["token_start"], params["head_start"])
        tuned_schedule = None
        if params["finetune"]:
            tuned_schedule = PruneSchedule.spatten(
                encoder.num_layers, *map(float, params["finetune_keep"]), params["token_start"], params["head_start"]
            )
            if tuned_schedule.name not in {s.name for s in schedules}:
                schedules.append(tuned_schedule)  # timed and scored frozen too, for the comparison
        with timings("accuracy_curve"):
            accuracy, heads = accuracy_curve(
                encoder,
                data,
                schedules,
                poolings=evaluated_poolings(params),
                pooling=str(params["pooling"]),
                max_length=length,
                batch_size=batch_size,
                head_epochs=int(params["head_epochs"]),
                seed=int(params["seed"]),
                progress=progress,
            )
        reference = dense_reference(accuracy)
        timed_texts = list(data.valid["text"])[: int(params["throughput_texts"])]
        with tempfile.TemporaryDirectory(prefix="workbench-onnx-") as workdir:
            with timings("runtimes_setup"):
                sample = encoder.tokenize(timed_texts[:2], length)
                runners = dense_runners(encoder.model, list(params["runtimes"]), sample, workdir, skipped.append)
                int8_model = None
                if "pruned_int8" in params["runtimes"]:
                    problem = runtime_problem("pruned_int8")
                    if problem:
                        skipped.append(f"skipped pruned_int8: {problem}")
                    else:
                        int8_model = quantize_linear_int8(encoder.model)
            with timings("throughput"):
                throughput = measure_throughput(
                    encoder,
                    timed_texts,
                    schedules,
                    batch_size=batch_size,
                    max_length=length,
                    repeats=int(params["repeats"]),
                    progress=progress,
                    runners=runners,
                    int8_model=int8_model,
                )
            with timings("runtime_scores"):
                peers = score_runtimes(
                    encoder, data, accuracy, heads, schedules, runners=runners, int8_model=int8_model,
                    max_length=length, batch_size=batch_size,
                )  # fmt: skip
        finetuned = pd.DataFrame()
        tuned_models: dict[str, nn.Module] | None = {} if params["save_models"] else None
        if tuned_schedule is not None:
            with timings("finetune"):
                finetuned = fine_tune_comparison(
                    encoder, data, tuned_schedule, str(reference["pooling"]), heads, params, progress, tuned_models
                )
    speed = throughput[["schedule", "seq_per_s", "speedup"]]
    order = {s.name: i for i, s in enumerate(schedules)}
    chosen = accuracy[accuracy["chosen"]].sort_values(
        ["schedule", "training"], key=lambda c: c.map(order) if c.name == "schedule" else c, kind="stable"
    )
    curve = chosen.merge(speed[throughput["runtime"] == "fp32"], on="schedule", how="left")
    if len(peers):
        peers = peers.merge(speed.rename(columns={"schedule": "config"}), on="config", how="left")
    reference_f1 = float(reference["macro_f1"])
    int8_rows = peers[peers["runtime"] == "pruned_int8"] if len(peers) else peers
    result = SpattenResult(
        study=STUDY,
        params=dict(params),
        metrics=pd.DataFrame(),
        data=[
            describe_data("besstie_google_sentiment_train", data.train, removed_overlap=data.removed_overlap),
            describe_data("besstie_google_sentiment_valid", data.valid),
        ],
        timings=dict(timings),
        notes=notes(params) + _data_notes(data) + skipped,
        encoder=encoder,
        frames=data,
        schedules=schedules,
        accuracy=accuracy,
        throughput=throughput,
        curve=curve,
        reference=reference,
        best=best_schedule(curve, reference_f1=reference_f1),
        trade_off=best_trade_off(curve, reference_f1),
        runtimes=peers,
        best_int8=best_schedule(int8_rows.assign(training="pruning_aware"), reference_f1=reference_f1)
        if len(int8_rows)
        else None,
        finetuned=finetuned,
        skipped=skipped,
        trained_models=_models_to_save(params, encoder, data, schedules, accuracy, heads, tuned_models),
    )
    result.metrics = pd.DataFrame(_metric_rows(result))
    result.headline = headline(result)
    return result


def _models_to_save(
    params: dict[str, object],
    encoder: Encoder,
    data: SpattenData,
    schedules: Sequence[PruneSchedule],
    accuracy: pd.DataFrame,
    heads: dict[tuple[str, str, str], nn.Module],
    tuned: dict[str, nn.Module] | None,
) -> dict[str, TrainedModel]:
    """With `save_models`: each schedule's pruning-aware head of its chosen pooling (inputs: the pruned features of
    the first held-out reviews) and the fine-tuned pruned classifiers (inputs: their token ids)."""
    if not params["save_models"]:
        return {}
    length, texts = int(params["max_length"]), list(data.valid["text"])[:32]
    chosen = accuracy[accuracy["chosen"] & (accuracy["training"] == "pruning_aware")].set_index("schedule")
    out = {}
    for schedule in schedules:
        pooling = str(chosen.loc[schedule.name, "pooling"])
        features, _ = pruned_features(texts, encoder, schedule, pooling=pooling, max_length=length, progress=False)
        description = (
            f"The linear head trained on {pooling}-pooled states of the frozen encoder {params['encoder']} run with the "
            f"cascade pruning schedule '{schedule.name}' (per-layer token keep {list(schedule.token_keep)}, head "
            f"keep {list(schedule.head_keep)}). Inputs: those pooled states; the encoder is pretrained and not saved: "
            f"`pruned_features(texts, load_encoder({params['encoder']!r}), schedule, pooling={pooling!r}, "
            f"max_length={length})` (workbench.methods.spatten) gives them."
        )
        rows = {"schedule": schedule.name, "training": "pruning_aware", "pooling": pooling, "runtime": "fp32"}
        head = heads[(schedule.name, "pruning_aware", pooling)]
        out[model_name("head", schedule.name, pooling)] = TrainedModel(head, (features,), rows, description)
    batch = {k: v for k, v in encoder.tokenize(texts, length).items()}
    for training, classifier in (tuned or {}).items():
        schedule = classifier.pruner.schedule
        description = (
            f"The encoder {params['encoder']} fine-tuned {'densely' if schedule.is_dense else 'with pruning on'} "
            f"(schedule '{schedule.name}', {classifier.pooling} pooling, SpAtten's setting) with its linear head: "
            "the whole pruned classifier, tokenizer saved alongside."
        )
        rows = {"training": [training, "finetuned_post_hoc"] if training == "finetuned" else training}
        out[model_name(training, schedule.name)] = TrainedModel(classifier, batch, rows, description, encoder.tokenizer)
    return out


def headline(result: SpattenResult) -> dict[str, object]:
    """The numbers the report index shows: the dense reference, the best (or best trade-off) schedule, the best
    pruned + int8 schedule, and the targets (None when the run's figures mean nothing)."""
    shown = result.best if result.best is not None else result.trade_off
    out: dict[str, object] = {
        "dense_reference": result.dense_reference,
        "dense_macro_f1": result.dense_macro_f1,
        "best_schedule": None if shown is None else shown["schedule"],
        "within_tolerance": result.best is not None,
        "speedup": None if shown is None else float(shown["speedup"]),
        "pruned_macro_f1": None if shown is None else float(shown["macro_f1"]),
        "target_met": result.target_met,
    }
    if result.best_int8 is not None:
        out.update(
            pruned_int8_schedule=result.best_int8["schedule"],
            pruned_int8_speedup=float(result.best_int8["speedup"]),
            pruned_int8_macro_f1=float(result.best_int8["macro_f1"]),
        )
    out["int8_target_met"] = result.int8_target_met
    if result.params.get("dry_run"):
        out["dry_run"] = True
    if not result.meaningful:
        out["meaningful"] = False
    return out


_POOLING_TEXT = {
    "mean_all": "every token's latest state, so a pruned token counts with the output of the last layer that "
    "processed it",
    "mean": "the mean over the tokens that survive to the last layer (the final-layer mean when nothing is pruned)",
    "mean_layers": "the mean_all vector averaged over every layer",
    "cls": "the [CLS] state",
}


def _pooling_text(pooling: str) -> str:
    if pooling.startswith("mean_last"):
        return f"the mean_all vector averaged over the last {pooling.removeprefix('mean_last')} layers"
    return _POOLING_TEXT[pooling]


_COMPARED = ("encoder", "varieties", "max_train_rows", "max_eval_rows", "keeps", "token_start", "head_start",
             "pooling", "poolings", "max_length", "batch_size", "throughput_texts", "repeats", "head_epochs",
             "runtimes", "finetune", "finetune_keep", "finetune_rows", "finetune_epochs", "finetune_lr",
             "finetune_batch_size")  # fmt: skip


def notes(params: dict[str, object]) -> list[str]:
    """What this run is and how it differs from the paper's settings, derived from the parameters."""
    out = []
    if params.get("dry_run"):
        out.append(
            f"DRY RUN: {params['encoder']!r} has its published architecture but random weights and a stand-in "
            "tokenizer (MiniLM's), the rows are capped and every head takes one optimisation step: this checks the "
            "paper path's code, shapes and memory; the numbers mean nothing."
        )
    elif not is_meaningful(params):
        out.append(
            f"NOT MEANINGFUL: a {params['profile']} run"
            + (" on a tiny randomly initialised BERT" if params["encoder"] == "tiny" else "")
            + ": its numbers and figures test the code only, and no target is judged."
        )
    if params["encoder"] == "tiny":
        out.append("The encoder is a tiny randomly initialised BERT: its numbers and figures test the code only.")
    poolings = evaluated_poolings(params)
    pooling = str(params["pooling"])
    choice = (
        "each pruned schedule uses the pooling with the best dev-split macro-F1"
        if pooling == "dev"
        else f"the pruned schedules use {pooling} ({_pooling_text(pooling)})"
    )
    out.append(
        f"Frozen encoder {params['encoder']!r}; a linear head (standardised inputs, class-weighted CE, at most "
        f"{params['head_epochs']} epochs, early stopping on a seeded {DEV_FRACTION:.0%} dev split of the training "
        f"rows) on the pooled states, for each of {len(poolings)} poolings: "
        + "; ".join(f"{p} = {_pooling_text(p)}" for p in poolings)
        + ". The dense reference is the dense pooling with the best dev-split macro-F1 (never chosen on the held-out "
        f"rows); {choice}. post_hoc = head trained on dense features, run under pruning; pruning_aware = head "
        "trained on the schedule's pruned features."
    )
    if params["finetune"]:
        t, h = params["finetune_keep"]
        rows = f"a stratified {params['finetune_rows']:,}" if params["finetune_rows"] else "all"
        out.append(
            f"Fine-tuning (SpAtten's setting): the encoder fine-tuned on {rows} of the training rows (the same "
            f"{DEV_FRACTION:.0%} dev split for early stopping), {params['finetune_epochs']} epoch(s), AdamW lr "
            f"{params['finetune_lr']:g}, batch {params['finetune_batch_size']}, word embeddings frozen, no dropout, "
            "starting from the frozen encoder's linear head (LP-FT): once densely (then also run with the schedule "
            f"applied afterwards) and once with the last-layer keep (token {t:g}, head {h:g}) schedule's pruning on."
        )
    else:
        out.append(
            "The encoder stays frozen (finetune=False); SpAtten fine-tunes the whole model with pruning on "
            "(`finetune=True` runs that comparison)."
        )
    threads = params["threads"]
    threads = f"{threads} torch thread{'s' * (threads != 1)}" if threads else "torch's default thread count"
    runtimes = list(params["runtimes"])
    peers = "; ".join(f"{r}: {RUNTIME_TEXT[r]}" for r in runtimes) if runtimes else "none"
    out.append(
        f"Throughput: the dense Hugging Face model (fp32), the cascade pruner per schedule and the peers ({peers}) in "
        f"one process, on the first {params['throughput_texts']} held-out texts in batches of {params['batch_size']} "
        f"(max length {params['max_length']}), interleaved, median of {params['repeats']} repeats after one warm-up, "
        f"tokenisation excluded, {threads} (ONNX Runtime with as many intra-op threads); on a shared machine the "
        "timings are noisy. A peer is scored with the fp32 head of what it replaces (post-training: no retraining)."
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
        if params[name] != paper[name] and (params["finetune"] or not name.startswith("finetune_"))
    ]
    if differences:
        out.append(f"Profile {params.get('profile')}; differs from the paper profile: " + "; ".join(differences) + ".")
    else:
        out.append("The paper profile's settings (its encoder, all rows, its schedules and timing sizes).")
    return out


def _show(value: object) -> str:
    if value is None:
        return "all"
    if isinstance(value, list) and value and isinstance(value[0], list):
        return f"{len(value)} schedules"
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def _data_notes(data: SpattenData) -> list[str]:
    n = len(data.valid)
    return [
        f"{data.removed_overlap} training rows removed because their text is in the held-out rows; {len(data.train)} "
        f"training and {n} held-out rows (one macro-F1 point is about {0.01 * n:.1f} of them)."
    ]


CURVE_COLUMNS = ["schedule", "training", "pooling", "dev_macro_f1", "macro_f1", "accuracy", "weighted_f1",
                 "flop_ratio", "seq_per_s", "speedup"]  # fmt: skip


def tables(result: SpattenResult) -> dict[str, pd.DataFrame]:
    """`schedules` (per-layer keeps); `dense_by_pooling` (every dense pooling: dev and held-out macro-F1, the chosen
    reference); `poolings` (pruning-aware held-out macro-F1 per schedule x pooling, dev-chosen marked in `chosen`);
    `curve` (the chosen pooling's rows); `throughput` (every timed configuration); `runtimes` (the peers beside the
    dense reference and the best pruned schedule, F1 change in points); `finetune` (with `finetune`: fine-tuned vs
    frozen); `paper` (published speed-ups beside this run's best schedule)."""
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
    acc = result.accuracy
    dense = acc[(acc["schedule"] == "dense") & (acc["training"] == "pruning_aware")]
    dense_by_pooling = dense[["pooling", "dev_macro_f1", "macro_f1", "accuracy", "chosen"]].rename(
        columns={"chosen": "reference"}
    )
    aware = acc[acc["training"] == "pruning_aware"]
    grid = aware.pivot_table(index="schedule", columns="pooling", values="macro_f1", sort=False)
    grid["chosen"] = aware[aware["chosen"]].set_index("schedule")["pooling"]
    throughput = result.throughput[["schedule", "runtime", "implementation", "seq_per_s", "median_seconds", "speedup"]]
    reference_f1 = result.dense_macro_f1
    peers = [
        {"runtime": "fp32 (Hugging Face)", "schedule": "dense", "pooling": result.dense_reference}
        | {"macro_f1": reference_f1, "seq_per_s": float(result.dense_hf["seq_per_s"]), "speedup": 1.0}
    ]
    shown = result.best if result.best is not None else result.trade_off
    if shown is not None:
        peers.append({"runtime": "fp32 cascade pruner"} | {k: shown[k] for k in ("schedule", "pooling", "macro_f1",
                     "seq_per_s", "speedup")})  # fmt: skip
    for row in result.runtimes.to_dict("records"):
        peers.append({k: row[k] for k in ("runtime", "schedule", "pooling", "macro_f1", "seq_per_s", "speedup")})
    runtimes = pd.DataFrame(peers)
    runtimes["f1_change_points"] = (runtimes["macro_f1"] - reference_f1) * 100
    runtimes["within_tolerance"] = runtimes["macro_f1"] >= reference_f1 - F1_TOLERANCE - 1e-12
    out = {
        "schedules": schedules,
        "dense_by_pooling": dense_by_pooling.reset_index(drop=True).round(4),
        "poolings": grid.round(4),
        "curve": result.curve[CURVE_COLUMNS].round(4),
        "throughput": throughput.round(4),
        "runtimes": runtimes.round(4),
    }
    if len(result.finetuned):
        out["finetune"] = _finetune_table(result).round(4)
    best = result.best
    ours = {
        "method": f"ours: {shown['schedule'] if shown is not None else '-'} ({result.params['encoder']}, this CPU)",
        "speedup": None if shown is None else float(shown["speedup"]),
        "speedup_text": "-" if shown is None else f"{shown['speedup']:.2f}x measured, {shown['flop_ratio']:.2f}x FLOPs",
        "accuracy": "-"
        if shown is None
        else f"macro-F1 {shown['macro_f1']:.4f} vs dense reference {reference_f1:.4f} ({result.dense_reference})"
        + ("" if best is not None else " (outside the tolerance)"),
    }
    paper = pd.DataFrame([*PAPER.values(), ours]).rename(columns={"speedup_text": "speed-up"})
    out["paper"] = paper[["method", "speed-up", "accuracy"]]
    return out


def _finetune_table(result: SpattenResult) -> pd.DataFrame:
    """Fine-tuned rows beside the frozen encoder's rows of the same schedules and pooling, with throughput."""
    tuned = result.finetuned
    pooling = str(tuned["pooling"].iloc[0])
    schedule = str(tuned.loc[tuned["training"] == "finetuned_pruning_aware", "schedule"].iloc[0])
    acc = result.accuracy
    frozen = acc[
        (acc["pooling"] == pooling) & (acc["training"] == "pruning_aware") & acc["schedule"].isin(["dense", schedule])
    ].assign(training=lambda f: np.where(f["schedule"] == "dense", "frozen", "frozen_pruning_aware"))
    fp32 = result.throughput[result.throughput["runtime"] == "fp32"].set_index("schedule")
    rows = pd.concat([frozen, tuned], ignore_index=True)
    rows["speedup"] = [1.0 if s == "dense" else float(fp32.loc[s, "speedup"]) for s in rows["schedule"]]
    return rows[["schedule", "training", "pooling", "dev_macro_f1", "macro_f1", "accuracy", "speedup"]]


def verdict(result: SpattenResult) -> str:
    """Markdown: the dense reference, the best schedule within the tolerance (or the best trade-off), the best
    pruned + int8 schedule, and whether each goal is met; no verdict for a dry or smoke run."""
    if result.params.get("dry_run"):
        return "**Dry run** (random weights, one training step, capped rows): no verdict on the targets."
    if not result.meaningful:
        return (
            f"**{str(result.params.get('profile', '')).capitalize() or 'This'} run: the figures are not meaningful** "
            "(a random tiny model on a handful of rows); no verdict on the targets."
        )
    ref = f"dense reference `{result.dense_reference}` (chosen on the dev split) {result.dense_macro_f1:.4f}"
    dense_speed = float(result.dense_hf["seq_per_s"])
    lines = []
    best, shown = result.best, result.trade_off
    if best is not None:
        lines.append(
            f"**Best within {F1_TOLERANCE * 100:.0f} F1 point: `{best['schedule']}`** ({best['pooling']}): "
            f"{best['seq_per_s']:.1f} vs {dense_speed:.1f} seq/s = **{best['speedup']:.2f}x** measured (FLOP ratio "
            f"{best['flop_ratio']:.2f}x); macro-F1 {best['macro_f1']:.4f} vs {ref}."
        )
    elif shown is not None:
        lines.append(
            f"**No pruned schedule kept macro-F1 within {F1_TOLERANCE * 100:.0f} point of the {ref}.** Best "
            f"trade-off: `{shown['schedule']}` ({shown['pooling']}) at {shown['speedup']:.2f}x, macro-F1 "
            f"{shown['macro_f1']:.4f} ({(shown['macro_f1'] - result.dense_macro_f1) * 100:+.1f} points)."
        )
    lines.append(
        f"Goal (>= {TARGET_SPEEDUP:.1f}x, <= {F1_TOLERANCE * 100:.0f} point below the strongest dense reference): "
        f"**{'met' if result.target_met else 'not met'}**."
    )
    if result.int8_target_met is not None:
        b8 = result.best_int8
        if b8 is not None:
            lines.append(
                f"Pruned + int8: `{b8['schedule']}` at **{b8['speedup']:.2f}x** dense fp32, macro-F1 "
                f"{b8['macro_f1']:.4f}."
            )
        lines.append(
            f"Goal (pruned + int8 >= {TARGET_SPEEDUP_INT8:.1f}x within {F1_TOLERANCE * 100:.0f} point): "
            f"**{'met' if result.int8_target_met else 'not met'}**."
        )
    return "  \n".join(lines)


def explanation(result: SpattenResult) -> list[str]:
    """Why each goal is met or not, from this run's own numbers: what limits the accuracy of faster schedules, how
    far the measured speed-up falls below the FLOP ratio and why, and what int8 adds."""
    if not result.meaningful:
        return ["The figures of this run are not meaningful (random tiny model or dry run): nothing to explain."]
    out = []
    ref_f1 = result.dense_macro_f1
    aware = result.curve[(result.curve["training"] == "pruning_aware") & (result.curve["schedule"] != "dense")]
    limit = ref_f1 - F1_TOLERANCE
    best = result.best
    faster = aware[aware["speedup"] > (best["speedup"] if best is not None else 0.0)]
    lost = faster[faster["macro_f1"] < limit - 1e-12]
    if len(lost):
        worst = lost.sort_values("speedup").iloc[0]
        out.append(
            f"Accuracy limits the speed: the next faster schedule, `{worst['schedule']}` ({worst['speedup']:.2f}x), "
            f"scores {worst['macro_f1']:.4f}, {(ref_f1 - worst['macro_f1']) * 100:.1f} points below the dense "
            f"reference ({result.dense_reference}, {ref_f1:.4f})."
        )
    own = result.throughput[result.throughput["schedule"] == "dense"]
    if len(own) and best is not None:
        own_speed = float(own["speedup"].iloc[0])
        out.append(
            f"Measured vs theoretical: `{best['schedule']}` removes {best['flop_ratio']:.2f}x of the FLOPs but runs "
            f"{best['speedup']:.2f}x faster; our keep-1.0 forward already runs at {own_speed:.2f}x the Hugging Face "
            "model (explicit attention probabilities, which token importance needs, instead of fused SDPA), and "
            "padding to the longest kept review plus the top-k / gather bookkeeping take the rest."
        )
    if best is not None and best["speedup"] < TARGET_SPEEDUP and not len(faster):
        out.append(
            f"No schedule in this run is faster than `{best['schedule']}`: a more aggressive keep (token keep below "
            f"{best['token_keep_last']:g}) would be the next to try."
        )
    peers = result.runtimes
    for runtime in ("torch_int8", "onnx_fp32", "onnx_int8"):
        row = peers[peers["runtime"] == runtime] if len(peers) else peers
        if len(row):
            r = row.iloc[0]
            out.append(
                f"{runtime}: {r['speedup']:.2f}x dense fp32, macro-F1 {r['macro_f1']:.4f} "
                f"({(r['macro_f1'] - ref_f1) * 100:+.1f} points)."
            )
    if result.int8_target_met is False:
        int8 = peers[peers["runtime"] == "pruned_int8"]
        fastest = int8.sort_values("speedup", ascending=False).iloc[0]
        out.append(
            f"Pruned + int8 peaks at {fastest['speedup']:.2f}x (`{fastest['schedule']}`, macro-F1 "
            f"{fastest['macro_f1']:.4f}); int8 speeds up the linear layers only, while the pruner's attention, "
            "gathers and layer norms stay fp32, so the two gains do not multiply."
        )
    for line in result.skipped:
        out.append(line[0].upper() + line[1:] + ".")
    return out


__all__ = [
    "PAPER",
    "PROFILES",
    "STUDY",
    "SpattenData",
    "SpattenResult",
    "accuracy_curve",
    "best_schedule",
    "best_trade_off",
    "choose_poolings",
    "dense_reference",
    "explanation",
    "fine_tune_comparison",
    "is_meaningful",
    "load",
    "measure_throughput",
    "notes",
    "run",
    "schedules_for",
    "score_runtimes",
    "tables",
    "verdict",
]
