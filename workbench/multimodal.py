"""Multimodal fusion: one transformer per modality, fused late (majority vote), early (concatenation) or by
multi-head attention over the modality representations, plus a uniform-weight ablation of the attention.

A :class:`ModalityTransformer` projects a modality's vectors to `hidden`, adds sinusoidal positions and runs a
transformer encoder. Over MOSEI time steps it mean-pools the final states into one vector per segment; over the
utterances of a MOSI video (context mode) it keeps one state per utterance. Attention fusion scores each modality
representation h_m against a learned query q, per head:

    alpha_m = softmax_m(q . W_k h_m / sqrt(d_k)),   fused = W_o [sum_m alpha_m W_v h_m]_heads

and the uniform ablation sets alpha_m = 1/M without computing the scores, so the query and key weights play no
part. :func:`build_model` builds a unimodal baseline or a fusion from :data:`FUSIONS` by name;
:func:`run_fusion_study` trains and evaluates them all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import RidgeClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from workbench.data.multimodal import (
    MultimodalCorpus,
    MultimodalSplit,
    SequenceView,
    standardize,
    utterance_view,
    video_view,
)
from workbench.runtime import set_seed, torch_threads
from workbench.training import TrainConfig, classification_metrics, fit, predict

IGNORE = -100


# -------------------------------------------------------------------------------------------------- the encoder


@dataclass
class ModalityTransformerConfig:
    """Size of every modality transformer and of the fusion/classifier layers."""

    hidden: int = 64
    layers: int = 1
    heads: int = 4
    feedforward: int = 128
    dropout: float = 0.1
    max_positions: int = 512


def sinusoidal_positions(length: int, hidden: int) -> torch.Tensor:
    """The transformer's fixed positional encoding, (length, hidden)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, hidden, 2, dtype=torch.float32) * (-math.log(10000.0) / hidden))
    table = torch.zeros(length, hidden)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: hidden // 2])
    return table


class ModalityTransformer(nn.Module):
    """Linear projection + positional encoding + transformer encoder over one modality's sequence.

    `forward(x (B, L, d), mask (B, L) True=valid)` returns the final states (B, L, hidden)."""

    def __init__(self, input_dim: int, config: ModalityTransformerConfig):
        super().__init__()
        self.projection = nn.Linear(input_dim, config.hidden)
        self.register_buffer("positions", sinusoidal_positions(config.max_positions, config.hidden), persistent=False)
        layer = nn.TransformerEncoderLayer(
            config.hidden, config.heads, config.feedforward, config.dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.projection(x) + self.positions[: x.shape[1]]
        return self.encoder(self.dropout(h), src_key_padding_mask=~mask)


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the valid steps: (B, L, h), (B, L) -> (B, h)."""
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def classifier_head(in_features: int, hidden: int, num_classes: int, dropout: float) -> nn.Sequential:
    """Two-layer MLP used on top of every representation (unimodal or fused)."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes))


@dataclass
class FusionOutput:
    """`logits` (B, C) or (B, L, C); late fusion adds each modality's logits; attention adds `modality_weights`
    (..., heads, M) in the order of `modalities`."""

    logits: torch.Tensor
    modality_logits: dict[str, torch.Tensor] = field(default_factory=dict)
    modality_weights: torch.Tensor | None = None
    modalities: tuple[str, ...] = ()


class _Encoders(nn.Module):
    """One ModalityTransformer per modality, pooled (one vector per sample) or per position (context mode)."""

    def __init__(self, input_dims: Mapping[str, int], config: ModalityTransformerConfig, per_position: bool):
        super().__init__()
        self.modalities = tuple(input_dims)
        self.per_position = per_position
        self.encoders = nn.ModuleDict({m: ModalityTransformer(d, config) for m, d in input_dims.items()})

    def represent(self, features: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        reps = []
        for m in self.modalities:
            states = self.encoders[m](features[m], masks[m])
            reps.append(states if self.per_position else masked_mean(states, masks[m]))
        return reps


# --------------------------------------------------------------------------------------------------- the models


class UnimodalClassifier(_Encoders):
    """One modality's transformer and classifier: the unimodal baseline, and a voter in late fusion."""

    def __init__(
        self, modality: str, input_dim: int, num_classes: int, config: ModalityTransformerConfig, per_position: bool
    ):
        super().__init__({modality: input_dim}, config, per_position)
        self.head = classifier_head(config.hidden, config.hidden, num_classes, config.dropout)

    def forward(self, features: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> FusionOutput:
        (rep,) = self.represent(features, masks)
        return FusionOutput(self.head(rep), modalities=self.modalities)


def majority_vote(modality_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Vote scores from each voter's argmax: votes per class, ties broken by the mean softmax probability.

    The tie-break adds at most 0.5, so a class with more votes always wins; argmax of the result is the vote."""
    stacked = torch.stack(list(modality_logits))  # (M, ..., C)
    votes = F.one_hot(stacked.argmax(-1), stacked.shape[-1]).sum(0).to(stacked.dtype)
    return votes + 0.5 * stacked.softmax(-1).mean(0)


class LateFusion(nn.Module):
    """Independent unimodal classifiers; the prediction is their majority vote. Trained with the sum of the
    unimodal losses (the voters share nothing), or assembled from already trained unimodal baselines."""

    def __init__(
        self, input_dims: Mapping[str, int], num_classes: int, config: ModalityTransformerConfig, per_position: bool
    ):
        super().__init__()
        self.voters = nn.ModuleDict(
            {m: UnimodalClassifier(m, d, num_classes, config, per_position) for m, d in input_dims.items()}
        )

    @classmethod
    def from_unimodal(cls, classifiers: Mapping[str, UnimodalClassifier]) -> LateFusion:
        """Late fusion of trained unimodal baselines (no further training)."""
        model = cls.__new__(cls)
        nn.Module.__init__(model)
        model.voters = nn.ModuleDict(dict(classifiers))
        return model

    def forward(self, features: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> FusionOutput:
        per_modality = {m: voter(features, masks).logits for m, voter in self.voters.items()}
        return FusionOutput(majority_vote(list(per_modality.values())), per_modality, modalities=tuple(per_modality))


class EarlyFusion(_Encoders):
    """Concatenate the modality representations, then classify."""

    def __init__(
        self, input_dims: Mapping[str, int], num_classes: int, config: ModalityTransformerConfig, per_position: bool
    ):
        super().__init__(input_dims, config, per_position)
        self.head = classifier_head(config.hidden * len(input_dims), config.hidden, num_classes, config.dropout)

    def forward(self, features: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> FusionOutput:
        return FusionOutput(self.head(torch.cat(self.represent(features, masks), -1)), modalities=self.modalities)


class ModalityAttention(nn.Module):
    """Multi-head attention of a learned query over the M modality representations (..., M, h) -> (..., h).

    With `uniform=True` every modality gets weight 1/M and the query/key parameters are never used."""

    def __init__(self, hidden: int, heads: int, uniform: bool = False):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden {hidden} is not divisible by heads {heads}")
        self.heads, self.head_dim, self.uniform = heads, hidden // heads, uniform
        self.query = nn.Parameter(torch.randn(heads, self.head_dim) / math.sqrt(self.head_dim))
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.output = nn.Linear(hidden, hidden)

    def weights(self, tokens: torch.Tensor) -> torch.Tensor:
        """(..., M, h) -> attention weights (..., heads, M)."""
        shape = (*tokens.shape[:-2], self.heads, tokens.shape[-2])
        if self.uniform:
            return tokens.new_full(shape, 1.0 / tokens.shape[-2])
        keys = self.key(tokens).unflatten(-1, (self.heads, self.head_dim))  # (..., M, heads, dk)
        scores = torch.einsum("...mhd,hd->...hm", keys, self.query) / math.sqrt(self.head_dim)
        return scores.softmax(-1)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self.weights(tokens)
        values = self.value(tokens).unflatten(-1, (self.heads, self.head_dim))
        mixed = torch.einsum("...hm,...mhd->...hd", weights, values).flatten(-2)
        return self.output(mixed), weights


class AttentionFusion(_Encoders):
    """Multi-head attention over the modality representations, then classify; exposes the modality weights."""

    uniform = False

    def __init__(
        self, input_dims: Mapping[str, int], num_classes: int, config: ModalityTransformerConfig, per_position: bool
    ):
        super().__init__(input_dims, config, per_position)
        self.attention = ModalityAttention(config.hidden, config.heads, uniform=self.uniform)
        self.norm = nn.LayerNorm(config.hidden)
        self.head = classifier_head(config.hidden, config.hidden, num_classes, config.dropout)

    def forward(self, features: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> FusionOutput:
        fused, weights = self.attention(torch.stack(self.represent(features, masks), -2))
        return FusionOutput(self.head(self.norm(fused)), modality_weights=weights, modalities=self.modalities)


class UniformFusion(AttentionFusion):
    """Ablation: attention fusion with every modality weighted 1/M (the learned scores are bypassed)."""

    uniform = True


FUSIONS: dict[str, type[nn.Module]] = {
    "late": LateFusion,
    "early": EarlyFusion,
    "attention": AttentionFusion,
    "uniform": UniformFusion,
}


def build_model(
    kind: str,
    input_dims: Mapping[str, int],
    num_classes: int,
    config: ModalityTransformerConfig | None = None,
    per_position: bool = False,
) -> nn.Module:
    """A unimodal baseline (`kind` = a modality name) or a fusion from :data:`FUSIONS`."""
    config = config or ModalityTransformerConfig()
    if kind in input_dims:
        return UnimodalClassifier(kind, input_dims[kind], num_classes, config, per_position)
    if kind in FUSIONS:
        return FUSIONS[kind](input_dims, num_classes, config, per_position)
    raise ValueError(f"unknown model {kind!r}; expected a modality {tuple(input_dims)} or a fusion {tuple(FUSIONS)}")


# ------------------------------------------------------------------------------------------- data, loss, metrics


class SequenceDataset(Dataset):
    """Items `(features dict, masks dict, label)` from a :class:`SequenceView`, for `workbench.training.fit`."""

    def __init__(self, view: SequenceView):
        self.features = {m: torch.tensor(x, dtype=torch.float32) for m, x in view.features.items()}
        self.masks = {m: torch.tensor(x, dtype=torch.bool) for m, x in view.masks.items()}
        self.labels = torch.tensor(view.labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return {m: x[i] for m, x in self.features.items()}, {m: x[i] for m, x in self.masks.items()}, self.labels[i]


def fusion_loss(model: nn.Module, batch, class_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy on the fused logits (padding positions ignored); for late fusion, the sum of the voters'."""
    features, masks, labels = batch
    out = model(features, masks)
    logits_list = list(out.modality_logits.values()) or [out.logits]
    weight = class_weight.to(labels.device) if class_weight is not None else None
    return sum(
        F.cross_entropy(lg.reshape(-1, lg.shape[-1]), labels.reshape(-1), weight=weight, ignore_index=IGNORE)
        for lg in logits_list
    )


def predictions(model: nn.Module, data: SequenceDataset, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(true labels, predicted labels) at every valid position."""
    logits = predict(model, data, batch_size=batch_size)
    labels = data.labels.numpy()
    valid = labels != IGNORE
    return labels[valid], logits.argmax(-1)[valid]


@torch.no_grad()
def modality_weights(model: nn.Module, data: SequenceDataset, batch_size: int = 256) -> np.ndarray:
    """Attention weight per valid sample and modality, averaged over heads: (n, M)."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(data), batch_size):
        stop = min(start + batch_size, len(data))
        features = {m: x[start:stop].to(device) for m, x in data.features.items()}
        masks = {m: x[start:stop].to(device) for m, x in data.masks.items()}
        weights = model(features, masks).modality_weights.mean(-2)  # (..., M)
        valid = data.labels[start:stop] != IGNORE
        out.append(weights[valid.to(device)].cpu().numpy())
    return np.concatenate(out)


# ------------------------------------------------------------------------------------------------ linear probe


def pooled_features(split: MultimodalSplit, modality: str) -> np.ndarray:
    """One vector per sample: the MOSI vector itself, or the mean over valid MOSEI time steps."""
    x = split.features[modality]
    if x.ndim == 2:
        return x
    mask = np.arange(x.shape[1])[None, :] < split.lengths[modality][:, None]
    return (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)


def linear_probe(corpus: MultimodalCorpus, alpha: float = 10.0, evaluate_on: str = "test") -> pd.DataFrame:
    """Ridge classifier on standardized features per modality and on their concatenation (the staging baseline:
    lambda = 10), scored on train and on `evaluate_on`. One row per (probe, split)."""
    train, test = corpus.splits["train"], corpus.splits[evaluate_on]
    inputs = {m: (pooled_features(train, m), pooled_features(test, m)) for m in corpus.modalities}
    inputs["concat"] = tuple(np.concatenate([inputs[m][i] for m in corpus.modalities], 1) for i in (0, 1))
    rows = []
    labels = list(range(len(corpus.label_names)))
    for name, (x_train, x_test) in inputs.items():
        probe = make_pipeline(StandardScaler(), RidgeClassifier(alpha=alpha)).fit(x_train, train.frame["label"])
        for split, x, frame in (("train", x_train, train.frame), (evaluate_on, x_test, test.frame)):
            metrics = classification_metrics(frame["label"], probe.predict(x), labels=labels)
            rows.append({"model": name, "family": "linear probe", "split": split, **metrics})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------- the study

MODES = ("utterance", "context")
KINDS = ("text", "audio", "visual", "late", "early", "attention", "uniform")

# Per-profile parameters. `paper` uses the paper's data (CMU-MOSEI time steps, 3 classes first) and a larger
# transformer; the paper does not state its sizes in the material we have, so those are our choice.
DEFAULTS: dict[str, dict[str, object]] = {
    "smoke": {
        "dataset": "mosi",
        "mosei_path": None,
        "schemes": ["binary", "3class"],
        "band": 0.0,
        "modes": ["utterance", "context"],
        "kinds": list(KINDS),
        "seeds": [0, 1],
        "hidden": 16,
        "layers": 1,
        "heads": 2,
        "feedforward": 32,
        "dropout": 0.1,
        "max_steps": 8,
        "epochs_utterance": 2,
        "epochs_context": 2,
        "batch_utterance": 16,
        "batch_context": 4,
        "lr": 1e-3,
        "weighted_loss": False,
        "torch_threads": 1,
    },
    "quick": {
        "dataset": "mosi",
        "mosei_path": None,
        "schemes": ["binary", "3class", "7class"],
        "band": 0.0,
        "modes": ["utterance", "context"],
        "kinds": list(KINDS),
        "seeds": [0, 1, 2],
        "hidden": 64,
        "layers": 1,
        "heads": 4,
        "feedforward": 128,
        "dropout": 0.2,
        "max_steps": 50,
        "epochs_utterance": 15,
        "epochs_context": 40,
        "batch_utterance": 64,
        "batch_context": 8,
        "lr": 1e-3,
        "weighted_loss": False,
        "torch_threads": 1,
    },
    "paper": {
        "dataset": "mosei_mmsa",
        "mosei_path": None,
        "schemes": ["3class", "binary", "7class"],
        "band": 0.0,
        "modes": ["utterance"],
        "kinds": list(KINDS),
        "seeds": [0, 1, 2, 3, 4],
        "hidden": 128,
        "layers": 2,
        "heads": 4,
        "feedforward": 256,
        "dropout": 0.1,
        "max_steps": 50,
        "epochs_utterance": 30,
        "epochs_context": 60,
        "batch_utterance": 64,
        "batch_context": 8,
        "lr": 1e-4,
        "weighted_loss": False,
        "torch_threads": None,
    },
}


def load_corpus(
    dataset: str, mosei_path: str | None = None, band: float = 0.0, max_steps: int = 50
) -> MultimodalCorpus:
    """The study's data by name: `mosi` (shared data root), `mosei_mmsa` (a pickle you name) or `mosei_csd` (a
    folder of SDK `.csd` files with `folds.json`)."""
    from workbench.data.multimodal import load_csd_directory, load_mmsa_pickle, load_mosi

    if dataset == "mosi":
        return load_mosi(band=band)
    if dataset in ("mosei_mmsa", "mosei_csd"):
        if not mosei_path:
            raise ValueError(
                f"dataset={dataset!r} needs mosei_path: CMU-MOSEI is not shipped here. Get it (MMSA pickle or the "
                "CMU-MultimodalSDK .csd files) and pass -p mosei_path=/path/to/it"
            )
        if dataset == "mosei_mmsa":
            return load_mmsa_pickle(mosei_path, band=band, max_steps=max_steps)
        return load_csd_directory(mosei_path, band=band, max_steps=max_steps)
    raise ValueError(f"unknown dataset {dataset!r}; expected mosi, mosei_mmsa or mosei_csd")


def _views(corpus: MultimodalCorpus, mode: str) -> tuple[SequenceDataset, SequenceDataset]:
    train, test = standardize(corpus.splits["train"], corpus.splits["test"])
    make = {"utterance": utterance_view, "context": video_view}[mode]
    return SequenceDataset(make(train)), SequenceDataset(make(test))


def _score(model: nn.Module, data: SequenceDataset, num_classes: int) -> dict[str, float]:
    y_true, y_pred = predictions(model, data)
    return classification_metrics(y_true, y_pred, labels=list(range(num_classes)))


@dataclass
class StudyResult:
    """Metric rows (one per scheme, mode, model, seed and split), per-sample attention weights on the test
    split, and test predictions of every model (for confusion matrices)."""

    metrics: pd.DataFrame
    weights: pd.DataFrame
    predictions: pd.DataFrame


def run_fusion_study(
    corpus: MultimodalCorpus,
    *,
    schemes: Iterable[str],
    modes: Iterable[str],
    kinds: Iterable[str],
    seeds: Iterable[int],
    params: Mapping[str, object],
    progress: bool = True,
) -> StudyResult:
    """Train and evaluate every model kind for each label scheme, mode and seed, with fixed hyperparameters and
    no validation split (it would be carved from train videos whose text/visual features saw their labels).

    Late fusion is the vote of the unimodal baselines of the same seed (trained first, so they must be in
    `kinds` for `late` to be run without extra training); otherwise it is trained as a whole. Runs on
    `params["torch_threads"]` threads (1 is fastest for these small models on a shared CPU)."""
    kinds, seeds, modes, schemes = list(kinds), list(seeds), usable_modes(corpus, modes), list(schemes)
    with torch_threads(params.get("torch_threads")):
        return _run(corpus, schemes, modes, kinds, seeds, params, progress)


def usable_modes(corpus: MultimodalCorpus, modes: Iterable[str]) -> list[str]:
    """The requested modes this corpus supports: the video-context mode needs one vector per utterance."""
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"unknown mode(s) {unknown}; expected {MODES}")
    has_steps = next(iter(corpus.splits.values())).has_time_axis
    return [m for m in modes if not (m == "context" and has_steps)]


def _train_config(params: Mapping[str, object], mode: str, seed: int) -> TrainConfig:
    return TrainConfig(
        epochs=int(params[f"epochs_{mode}"]),
        lr=float(params["lr"]),
        batch_size=int(params[f"batch_{mode}"]),
        weight_decay=0.0,
        max_grad_norm=1.0,
        seed=seed,
        progress=False,
        device="cpu" if not torch.cuda.is_available() else None,
    )


def _class_weight(data: SequenceDataset, num_classes: int, weighted: bool) -> torch.Tensor | None:
    """Inverse-frequency class weights over the valid training positions, or None for plain cross-entropy."""
    if not weighted:
        return None
    labels = data.labels.numpy()
    counts = np.bincount(labels[labels != IGNORE], minlength=num_classes)
    return torch.tensor(counts.sum() / (num_classes * np.maximum(counts, 1)), dtype=torch.float32)


def _run(corpus, schemes, modes, kinds, seeds, params, progress) -> StudyResult:
    from tqdm.auto import tqdm

    config = ModalityTransformerConfig(**config_of(params))
    metric_rows, weight_frames, prediction_frames = [], [], []
    bar = tqdm(total=len(schemes) * len(modes) * len(seeds) * len(kinds), desc="models", disable=not progress)
    for scheme in schemes:
        labelled = corpus.relabel(scheme, float(params.get("band", 0.0)))
        num_classes = len(labelled.label_names)
        for mode in modes:
            train_data, test_data = _views(labelled, mode)
            class_weight = _class_weight(train_data, num_classes, bool(params.get("weighted_loss")))
            for seed in seeds:
                trained: dict[str, nn.Module] = {}
                for kind in kinds:
                    start, cpu_start = time.perf_counter(), time.process_time()
                    set_seed(seed)
                    voters = {m: trained.get(m) for m in labelled.modalities}
                    if kind == "late" and all(voters.values()):
                        model, epochs = LateFusion.from_unimodal(voters), 0
                    else:
                        model = build_model(kind, labelled.feature_dims, num_classes, config, mode == "context")
                        history = fit(
                            model,
                            train_data,
                            None,
                            _train_config(params, mode, seed),
                            loss_fn=partial(fusion_loss, class_weight=class_weight),
                            optimizer=torch.optim.Adam(model.parameters(), lr=float(params["lr"])),
                        )
                        epochs = len(history.epochs)
                    trained[kind] = model
                    key = {"scheme": scheme, "mode": mode, "model": kind, "seed": seed}
                    cost = {
                        "epochs": epochs,
                        "seconds": time.perf_counter() - start,
                        "cpu_seconds": time.process_time() - cpu_start,
                    }
                    family = "unimodal" if kind in labelled.modalities else "fusion"
                    for split, data in (("train", train_data), ("test", test_data)):
                        scores = _score(model, data, num_classes)
                        metric_rows.append({**key, "family": family, "split": split, **scores, **cost})
                    y_true, y_pred = predictions(model, test_data)
                    prediction_frames.append(pd.DataFrame({**key, "y_true": y_true, "y_pred": y_pred}))
                    if isinstance(model, AttentionFusion):
                        w = pd.DataFrame(modality_weights(model, test_data), columns=list(labelled.modalities))
                        w = (
                            w.rename_axis("sample")
                            .reset_index()
                            .melt("sample", var_name="modality", value_name="weight")
                        )
                        weight_frames.append(w.assign(**key))
                    bar.update()
    bar.close()
    concat = lambda frames: pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()  # noqa: E731
    return StudyResult(pd.DataFrame(metric_rows), concat(weight_frames), concat(prediction_frames))


def summarize(metrics: pd.DataFrame, metric: str = "accuracy", split: str = "test") -> pd.DataFrame:
    """Mean, std and count of `metric` over seeds per scheme, mode and model."""
    rows = metrics[metrics["split"] == split]
    out = rows.groupby(["scheme", "mode", "model"], sort=False)[metric].agg(["mean", "std", "count"])
    return out.reset_index()


def train_test_gap(metrics: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Mean train and test `metric` per scheme, mode and model, and their difference (the overfit/leak gap)."""
    means = metrics.pivot_table(
        index=["scheme", "mode", "model"], columns="split", values=metric, aggfunc="mean", sort=False
    )
    means["gap"] = means["train"] - means["test"]
    return means.reset_index()


def compare_fusions(
    metrics: pd.DataFrame,
    better: str = "attention",
    than: Sequence[str] = ("early", "uniform"),
    metric: str = "accuracy",
) -> pd.DataFrame:
    """Is `better` ahead of each rival by more than the seed spread? Per scheme and mode: both means, the
    difference, the spread (the larger of the two seed standard deviations) and a plain verdict."""
    summary = summarize(metrics, metric).set_index(["scheme", "mode", "model"])
    rows = []
    for (scheme, mode), _ in summary.groupby(level=["scheme", "mode"], sort=False):
        if (scheme, mode, better) not in summary.index:
            continue
        a = summary.loc[(scheme, mode, better)]
        for rival in than:
            if (scheme, mode, rival) not in summary.index:
                continue
            b = summary.loc[(scheme, mode, rival)]
            diff = float(a["mean"] - b["mean"])
            spread = float(np.nanmax([a["std"], b["std"], 0.0]))
            if diff > spread:
                verdict = f"{better} beats {rival} by more than the seed spread"
            elif diff < -spread:
                verdict = f"{better} is worse than {rival} by more than the seed spread"
            else:
                verdict = f"no difference beyond the seed spread ({better} vs {rival})"
            rows.append(
                {
                    "scheme": scheme,
                    "mode": mode,
                    "model": better,
                    "rival": rival,
                    f"{metric}_model": float(a["mean"]),
                    f"{metric}_rival": float(b["mean"]),
                    "difference": diff,
                    "seed_spread": spread,
                    "verdict": verdict,
                }
            )
    return pd.DataFrame(rows)


def config_of(params: Mapping[str, object]) -> dict[str, object]:
    """The transformer config implied by the study parameters (for results.json)."""
    fields = ModalityTransformerConfig.__dataclass_fields__
    return asdict(ModalityTransformerConfig(**{k: params[k] for k in fields if k in params}))


def weight_summary(weights: pd.DataFrame) -> pd.DataFrame:
    """Mean attention weight per scheme, mode, model, seed and modality over the test samples (flat rows)."""
    if weights.empty:
        return pd.DataFrame()
    keys = ["scheme", "mode", "model", "seed", "modality"]
    return weights.groupby(keys, sort=False)["weight"].mean().reset_index()


# Published 3-class CMU-MOSEI test accuracy (%) of arXiv 2501.08085 (REFERENCES.md); MOSI here is other data.
PAPER_MOSEI_3CLASS_ACCURACY = {
    "text": 69.36,
    "audio": 65.84,
    "visual": 65.69,
    "late": 66.23,
    "early": 71.87,
    "attention": 72.39,
}


def beside_paper(metrics: pd.DataFrame, scheme: str = "3class") -> pd.DataFrame:
    """Our test accuracy (mean +- std over seeds, per mode) beside the paper's MOSEI 3-class accuracy."""
    summary = summarize(metrics[metrics["scheme"] == scheme]).fillna({"std": 0.0})  # one seed: no spread
    table = summary.pivot_table(index="model", columns="mode", values=["mean", "std"], sort=False)
    out = pd.DataFrame(index=pd.Index(list(dict.fromkeys([*PAPER_MOSEI_3CLASS_ACCURACY, *table.index])), name="model"))
    out["paper (MOSEI, 3-class)"] = [PAPER_MOSEI_3CLASS_ACCURACY.get(m, np.nan) / 100 for m in out.index]
    for mode in summary["mode"].unique():
        out[f"ours ({mode}, {scheme})"] = [
            f"{table.loc[m, ('mean', mode)]:.3f} ± {np.nan_to_num(table.loc[m, ('std', mode)]):.3f}"
            if m in table.index
            else ""
            for m in out.index
        ]
    return out.reset_index()
