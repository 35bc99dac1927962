"""Multimodal fusion: one transformer per modality, fused late (majority vote), early (concatenation) or by
multi-head attention over the modality representations, plus a uniform-weight ablation of the attention.

A :class:`ModalityTransformer` projects a modality's vectors to `hidden`, adds sinusoidal positions and runs a
transformer encoder. Over MOSEI time steps it mean-pools the final states into one vector per segment; over the
utterances of a MOSI video (context mode) it keeps one state per utterance. Attention fusion scores each modality
representation h_m against a learned query q, per head:

    alpha_m = softmax_m(q . W_k h_m / sqrt(d_k)),   fused = W_o [sum_m alpha_m W_v h_m]_heads

and the uniform ablation sets alpha_m = 1/M without computing the scores, so the query and key weights play no
part. The fusions are registered as kind `fusion` (`workbench.registry`); :func:`build_model` builds a unimodal
baseline (a modality name) or a fusion (a registered name).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from workbench.data.multimodal import SequenceView
from workbench.registry import UnknownNameError, build, names, register
from workbench.saving import HubModule
from workbench.training import class_weights, predict

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


class UnimodalClassifier(_Encoders, HubModule):
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


@register("fusion", "late")
class LateFusion(nn.Module, HubModule):
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


@register("fusion", "early")
class EarlyFusion(_Encoders, HubModule):
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


@register("fusion", "attention")
class AttentionFusion(_Encoders, HubModule):
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


@register("fusion", "uniform")
class UniformFusion(AttentionFusion):
    """Ablation: attention fusion with every modality weighted 1/M (the learned scores are bypassed)."""

    uniform = True


def build_model(
    kind: str,
    input_dims: Mapping[str, int],
    num_classes: int,
    config: ModalityTransformerConfig | None = None,
    per_position: bool = False,
) -> nn.Module:
    """A unimodal baseline (`kind` = a modality name of `input_dims`) or a fusion registered under kind `fusion`."""
    config = config or ModalityTransformerConfig()
    if kind in input_dims:
        return UnimodalClassifier(kind, input_dims[kind], num_classes, config, per_position)
    fusions = names("fusion")
    if kind in fusions:
        return build("fusion", kind, input_dims, num_classes, config, per_position)
    raise UnknownNameError(
        f"unknown model {kind!r}; expected a modality ({', '.join(input_dims)}) or a fusion ({', '.join(fusions)})"
    )


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


def inverse_frequency_weights(data: SequenceDataset, num_classes: int) -> torch.Tensor:
    """Class weights for `fusion_loss` from the valid training positions (padding ignored)."""
    labels = data.labels.numpy()
    return class_weights(labels[labels != IGNORE], num_classes)


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
