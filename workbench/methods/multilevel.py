"""Multi-level attention with contrastive learning (arXiv 2501.13467): a small transformer trained from scratch.

Each layer runs **global** self-attention (every token sees every token) and **local** attention (token i sees
only tokens j with |i - j| <= window) on the same query/key/value projections, and fuses the two views with a
learned gate, per token and per channel:

    g = sigmoid(W_g [h_global ; h_local] + b_g),   h = g * h_global + (1 - g) * h_local

(the paper leaves the fusion open; a sigmoid gate lets each position choose between context and neighbourhood).
The **lightweight module** replaces the feed-forward block d -> d_ff -> d by a bottleneck d -> d_ff / r -> d,
cutting its parameters and FLOPs by r (measured by `feed_forward_cost` and `measure_flops`). **Supervised
contrastive learning** (Khosla et al. 2020) pulls same-label reviews of a batch together on the pooled
representation; it is added to cross-entropy with a weight and used in training only. The baselines and the
text-model registry are in `workbench.methods.textmodels`; the study (profiles, data, tables) in
`workbench.studies.multilevel`.

The same layers also run **on a pretrained encoder's token states** (`MultiLevelStateClassifier`): a linear
projection of the states (hidden -> d_model) replaces the token and position embeddings (the states already carry
context and position), then the same encoder layers, pooling and classifier. The plain baselines on the same states
(mean pooling + linear, a BiLSTM) are in `workbench.methods.textmodels`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from workbench.saving import HubModule


@dataclass(kw_only=True)
class LayerStackConfig:
    """The encoder layers both multi-level classifiers share (`EncoderLayer`): global + local attention
    (`multi_level`, local radius `window`) or plain, full or bottlenecked (`lightweight`) feed-forward;
    `multi_level=False, lightweight=False` is the plain-transformer baseline."""

    num_classes: int = 2
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    d_ff: int = 256
    dropout: float = 0.1
    multi_level: bool = True
    window: int = 8
    lightweight: bool = False
    bottleneck_ratio: int = 4

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(kw_only=True)
class MultiLevelConfig(LayerStackConfig):
    """The from-scratch transformer: token and position embeddings, then the layers."""

    vocab_size: int
    max_length: int = 256
    pad_token_id: int = 0


def local_window_mask(length: int, window: int, device: torch.device | None = None) -> torch.Tensor:
    """(length, length) bool: True where query i may attend key j, i.e. |i - j| <= window."""
    pos = torch.arange(length, device=device)
    return (pos[:, None] - pos[None, :]).abs() <= window


def masked_softmax(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis that gives exactly zero weight where `allowed` is False.

    Every row must allow at least one key (callers always allow the diagonal), so no row is all -inf.
    """
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)


class MultiLevelAttention(nn.Module):
    """Multi-head attention with a global and (optionally) a local, windowed view fused by a sigmoid gate.

    Both views share the Q/K/V projections, so multi-level attention adds only the gate (2 d^2 + d parameters)
    to a plain layer. After a forward pass with `keep_weights=True`, `last_weights` holds the attention weights
    (`global`, `local`: (batch, heads, L, L)) and the mean gate value per token (`gate`: (batch, L)).
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float, multi_level: bool, window: int):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        self.num_heads, self.head_dim = num_heads, d_model // num_heads
        self.multi_level, self.window = multi_level, window
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.gate = nn.Linear(2 * d_model, d_model) if multi_level else None
        self.dropout = nn.Dropout(dropout)
        self.keep_weights = False
        self.last_weights: dict[str, torch.Tensor] = {}

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, length, _ = x.shape
        return x.view(b, length, self.num_heads, self.head_dim).transpose(1, 2)

    def _attend(self, q, k, v, allowed) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Context (batch, L, d) and, when `keep_weights` is on, the explicit weights (else None: fused kernel)."""
        b, _, length, _ = q.shape
        if self.keep_weights:
            weights = masked_softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_dim), allowed)
            context = self.dropout(weights) @ v
        else:  # same maths, fused (several times faster on CPU)
            p = self.dropout.p if self.training else 0.0
            weights, context = None, F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        return context.transpose(1, 2).reshape(b, length, -1), weights

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """x: (batch, L, d); key_mask: (batch, L) bool, True for real tokens."""
        length = x.shape[1]
        q, k, v = (self._heads(t) for t in self.qkv(x).chunk(3, dim=-1))
        diagonal = torch.eye(length, dtype=torch.bool, device=x.device)
        allowed_global = key_mask[:, None, None, :] | diagonal  # padding queries attend to themselves only
        h_global, w_global = self._attend(q, k, v, allowed_global)
        record = {"global": w_global}
        if self.multi_level:
            allowed_local = allowed_global & local_window_mask(length, self.window, x.device)
            h_local, w_local = self._attend(q, k, v, allowed_local)
            gate = torch.sigmoid(self.gate(torch.cat([h_global, h_local], dim=-1)))
            hidden = gate * h_global + (1 - gate) * h_local
            record.update(local=w_local, gate=gate.mean(-1))
        else:
            hidden = h_global
        if self.keep_weights:
            self.last_weights = {name: t.detach() for name, t in record.items() if t is not None}
        return self.out(hidden)


class FeedForward(nn.Module):
    """Position-wise d -> hidden -> d with GELU; the lightweight module is this with a narrow `hidden`."""

    def __init__(self, d_model: int, hidden: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def feed_forward_cost(d_model: int, hidden: int, tokens: int = 1) -> dict[str, int]:
    """Parameters and multiply-add FLOPs (2 per MAC) of one `FeedForward` block over `tokens` positions."""
    return {"params": 2 * d_model * hidden + hidden + d_model, "flops": tokens * 2 * 2 * d_model * hidden}


class EncoderLayer(nn.Module):
    """Pre-norm transformer layer: x + Attn(LN(x)), then x + FFN(LN(x)). `config`: a `MultiLevelConfig` or a
    `StateHeadConfig` (the sizes and switches they share)."""

    def __init__(self, config: MultiLevelConfig | StateHeadConfig):
        super().__init__()
        c = config
        hidden = c.d_ff // c.bottleneck_ratio if c.lightweight else c.d_ff
        self.norm1, self.norm2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.attention = MultiLevelAttention(c.d_model, c.num_heads, c.dropout, c.multi_level, c.window)
        self.feed_forward = FeedForward(c.d_model, hidden, c.dropout)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.norm1(x), key_mask))
        return x + self.dropout(self.feed_forward(self.norm2(x)))


class AttentionMapsMixin:
    """`attention_maps(*inputs)` for a classifier with `layers` of `EncoderLayer` and a `features(*inputs)`."""

    @torch.no_grad()
    def attention_maps(self, *inputs: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Per layer: `global` and `local` weights (batch, heads, L, L) and the mean `gate` (batch, L), in eval mode."""
        was_training = self.training
        self.eval()
        for layer in self.layers:
            layer.attention.keep_weights = True
        try:
            self.features(*inputs)
            return [dict(layer.attention.last_weights) for layer in self.layers]
        finally:
            for layer in self.layers:
                layer.attention.keep_weights = False
                layer.attention.last_weights = {}
            self.train(was_training)


class MultiLevelClassifier(AttentionMapsMixin, nn.Module, HubModule):
    """Token + position embeddings, `num_layers` encoder layers, masked mean pooling, linear classifier.

    `forward(input_ids, attention_mask) -> logits`; `features(...) -> (logits, pooled)` for the contrastive loss
    and for projections of the representation space.
    """

    def __init__(self, config: MultiLevelConfig):
        super().__init__()
        c = self.config = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model, padding_idx=c.pad_token_id)
        self.position_embedding = nn.Embedding(c.max_length, c.d_model)
        self.layers = nn.ModuleList(EncoderLayer(c) for _ in range(c.num_layers))
        self.norm = nn.LayerNorm(c.d_model)
        self.dropout = nn.Dropout(c.dropout)
        self.classifier = nn.Linear(c.d_model, c.num_classes)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        length = input_ids.shape[1]
        if length > self.config.max_length:
            raise ValueError(f"sequence length {length} exceeds max_length={self.config.max_length}")
        key_mask = attention_mask.bool()
        positions = torch.arange(length, device=input_ids.device)
        x = self.dropout(self.token_embedding(input_ids) + self.position_embedding(positions))
        for layer in self.layers:
            x = layer(x, key_mask)
        x = self.norm(x)
        weights = key_mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.classifier(self.dropout(pooled)), pooled

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.features(input_ids, attention_mask)[0]


@dataclass(kw_only=True)
class StateHeadConfig(LayerStackConfig):
    """A transformer head over pretrained token states (hidden `input_size`): projection to `d_model`, then the
    layers (one by default)."""

    input_size: int
    num_layers: int = 1


class MultiLevelStateClassifier(AttentionMapsMixin, nn.Module, HubModule):
    """Linear projection of the encoder's token states (hidden -> d_model), `num_layers` encoder layers (global +
    local attention or plain; full or lightweight feed-forward), masked mean pooling, linear classifier.

    `forward(states, mask) -> logits`; `features(states, mask) -> (logits, pooled)` as `MultiLevelClassifier`."""

    def __init__(self, config: StateHeadConfig):
        super().__init__()
        c = self.config = config
        self.projection = nn.Linear(c.input_size, c.d_model)
        self.layers = nn.ModuleList(EncoderLayer(c) for _ in range(c.num_layers))
        self.norm = nn.LayerNorm(c.d_model)
        self.dropout = nn.Dropout(c.dropout)
        self.classifier = nn.Linear(c.d_model, c.num_classes)

    def features(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key_mask = mask.bool()
        x = self.dropout(self.projection(states))
        for layer in self.layers:
            x = layer(x, key_mask)
        x = self.norm(x)
        weights = key_mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.classifier(self.dropout(pooled)), pooled

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.features(states, mask)[0]


def supervised_contrastive_loss(features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SupCon (Khosla et al. 2020, L_out) on L2-normalised features; same-label samples are positives.

        L = mean_{i with P(i) != {}} -1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p / t) / sum_{a != i} exp(z_i.z_a / t) )

    Anchors without a positive in the batch are skipped; a batch with none at all gives 0 (with a gradient path).
    """
    z = F.normalize(features, dim=-1)
    n = z.shape[0]
    logits = z @ z.T / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    counts = positives.sum(1)
    has_positive = counts > 0
    if not has_positive.any():
        return features.sum() * 0.0
    per_anchor = -log_prob.masked_fill(~positives, 0.0).sum(1) / counts.clamp(min=1)
    return per_anchor[has_positive].mean()


def contrastive_objective(
    weight: float, temperature: float = 0.1
) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], torch.Tensor]:
    """A `loss_fn(model, batch)` for `workbench.training.fit`: CE + weight * SupCon on the pooled representation.

    Batches are `(*inputs, labels)` (token ids and mask, or token states and mask); the model must have
    `features(*inputs) -> (logits, pooled)`.
    """

    def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        *inputs, labels = batch
        logits, pooled = model.features(*inputs)
        loss = F.cross_entropy(logits, labels)
        if weight:
            loss = loss + weight * supervised_contrastive_loss(pooled, labels, temperature)
        return loss

    return loss_fn


def count_parameters(model: nn.Module, exclude_embeddings: bool = False) -> int:
    """Trainable parameters; `exclude_embeddings` leaves out `nn.Embedding` tables (the vocabulary dominates)."""
    skip = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if p.requires_grad and not (exclude_embeddings and id(p) in skip))


@torch.no_grad()
def measure_flops(model: nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs of one forward pass on `inputs`, counted by `torch.utils.flop_counter` (matmuls; no softmax/norms)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(*inputs)
    model.train(was_training)
    return int(counter.get_total_flops())
