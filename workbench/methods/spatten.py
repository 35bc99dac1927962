"""SpAtten cascade token and head pruning that removes work, over any BERT-family encoder's own weights.

The forward pass re-implements a BERT layer from the Hugging Face module's weights, so that it can run on fewer
tokens and fewer heads than the model was built with:

- **token importance** of token j (per sample) is the attention probability it receives, summed over the kept heads
  and the real (non-padding) queries of every layer so far: s_j = sum_l sum_h sum_i A^(l,h)[i, j];
- **head importance** of head h is the accumulated magnitude of its output: sum_l sum_i sum_d |O^(l,h)[i, d]|;
- before layer l, each sample keeps its ceil(t_l * n) most important tokens (n = its real length; [CLS], [SEP] and
  other special tokens are always kept) and its round(h_l * H) most important heads. Removed tokens are gathered out
  of the hidden states (later layers run on shorter, re-padded sequences) and removed heads are never computed
  (their Q/K/V/output weight slices are gathered per sample). Removal is a cascade: what is gone stays gone.

The schedule (t_l, h_l) is data: :class:`PruneSchedule`. With every ratio 1.0 the output equals the dense model's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from workbench.encoders import Encoder
from workbench.saving import HubModule


@dataclass(frozen=True)
class PruneSchedule:
    """Per-layer keep ratios. `token_keep[l]` is the share of each sample's real tokens that layer l processes
    (non-increasing: a cascade); `head_keep[l]` the share of heads it computes. Layer 0 runs dense because no
    importance has been measured before it."""

    token_keep: tuple[float, ...]
    head_keep: tuple[float, ...]
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "token_keep", tuple(float(v) for v in self.token_keep))
        object.__setattr__(self, "head_keep", tuple(float(v) for v in self.head_keep))
        if len(self.token_keep) != len(self.head_keep):
            raise ValueError(f"token_keep has {len(self.token_keep)} layers but head_keep has {len(self.head_keep)}")
        for what, ratios in (("token_keep", self.token_keep), ("head_keep", self.head_keep)):
            if any(not 0.0 < r <= 1.0 for r in ratios):
                raise ValueError(f"{what} ratios must lie in (0, 1], got {ratios}")
            if any(b > a for a, b in zip(ratios, ratios[1:])):
                raise ValueError(f"{what} must be non-increasing (pruned items stay pruned), got {ratios}")
            if ratios and ratios[0] != 1.0:
                raise ValueError(f"{what}[0] must be 1.0: no importance is known before the first layer")

    @property
    def num_layers(self) -> int:
        return len(self.token_keep)

    @property
    def is_dense(self) -> bool:
        return all(r == 1.0 for r in self.token_keep + self.head_keep)

    @classmethod
    def dense(cls, num_layers: int) -> PruneSchedule:
        """Keep everything (reproduces the unpruned model)."""
        return cls((1.0,) * num_layers, (1.0,) * num_layers, name="dense")

    @classmethod
    def spatten(
        cls,
        num_layers: int,
        token_keep: float = 1.0,
        head_keep: float = 1.0,
        token_start: float = 0.15,
        head_start: float = 0.30,
    ) -> PruneSchedule:
        """SpAtten's shape: the first `token_start` (`head_start`) share of layers keep all tokens (heads); after that
        the kept share decays geometrically so that the last layer keeps `token_keep` (`head_keep`)."""

        def ramp(final: float, start: float) -> tuple[float, ...]:
            first = min(num_layers - 1, max(1, round(start * num_layers)))
            steps = num_layers - first
            return tuple(1.0 if i < first else final ** ((i - first + 1) / steps) for i in range(num_layers))

        name = f"spatten t{token_keep:g} h{head_keep:g}"
        return cls(ramp(token_keep, token_start), ramp(head_keep, head_start), name=name)

    def to_dict(self) -> dict[str, object]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class PrunedOutput:
    """What a pruned forward pass returns (batch of B texts, original padded length L, H heads, N layers).

    `last_hidden_state` (B, K, d) and `mask` (B, K) hold the tokens that survived to the end, re-padded;
    `positions` (B, K) their original positions. `token_masks` (B, N, L) says which original tokens each layer
    processed (the query and key set of that layer), `head_masks` (B, N, H) which heads it computed.
    `flops` (B,) counts the multiply-adds x2 of every layer for each sample at its real (unpadded) kept size.
    `latest_states` (B, L, d) holds each original token's output of the last layer that processed it.
    `layer_means` (B, N, d): after each layer, the mean over every real token of its latest state (for layer-wise
    pooling; with nothing pruned, the mean of that layer's output).
    `attentions`, if asked for, are per-layer (B, H, L, L) probabilities on the original grid (zeros where pruned).
    """

    last_hidden_state: torch.Tensor
    mask: torch.Tensor
    positions: torch.Tensor
    token_masks: torch.Tensor
    head_masks: torch.Tensor
    token_importance: torch.Tensor
    head_importance: torch.Tensor
    flops: torch.Tensor
    latest_states: torch.Tensor
    layer_means: torch.Tensor
    attentions: tuple[torch.Tensor, ...] | None = None
    kept_layer_mean: torch.Tensor | None = None  # (B, K, d): see `CascadePruner.forward(state_layers=...)`

    def pooled(self, pooling: str = "mean") -> torch.Tensor:
        """(B, d) sentence vector (see `POOLINGS`).

        `cls`: the [CLS] state; `mean`: the mean over the tokens that survived to the last layer; `mean_all`: the mean
        over every real token of its latest state (the output of the last layer that processed it), so that pruned
        tokens still count with what they had when they were dropped (no extra compute); `mean_last<k>` and
        `mean_layers`: that `mean_all` vector averaged over the last k layers, or over every layer."""
        if pooling == "mean":
            m = self.mask.unsqueeze(-1).to(self.last_hidden_state.dtype)
            return (self.last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1)
        return pool_layers(self.layer_means, self.last_hidden_state[:, 0], pooling)


# Sentence vectors the pruned path can use; `mean_last<k>` takes any k (4 is the usual "last four layers").
POOLINGS = ("mean", "mean_all", "mean_last4", "mean_layers", "cls")


def pooling_problem(pooling: object) -> str | None:
    """Why `pooling` names no pooling (None when it does): `mean`, `mean_all`, `mean_last<k>` (k >= 1),
    `mean_layers` or `cls`."""
    if isinstance(pooling, str) and (pooling in POOLINGS or re.fullmatch(r"mean_last[1-9][0-9]*", pooling)):
        return None
    return f"unknown pooling {pooling!r}; expected one of {', '.join(POOLINGS)} (or mean_last<k> for any k >= 1)"


def pool_layers(layer_means: torch.Tensor, cls: torch.Tensor, pooling: str) -> torch.Tensor:
    """(B, d) sentence vector from per-layer token means (B, N, d) and the final [CLS] state (B, d).

    `mean` and `mean_all` take the last layer's mean (for a dense model the two are the same vector), `mean_last<k>`
    the mean of the last k layers' means (k capped at N), `mean_layers` the mean over all N layers (the embedding
    output excluded), `cls` the [CLS] state."""
    problem = pooling_problem(pooling)
    if problem:
        raise ValueError(problem)
    if pooling == "cls":
        return cls
    if pooling in ("mean", "mean_all"):
        return layer_means[:, -1]
    if pooling == "mean_layers":
        return layer_means.mean(1)
    k = int(pooling.removeprefix("mean_last"))
    return layer_means[:, -k:].mean(1)


def layer_flops(
    tokens: torch.Tensor, heads: torch.Tensor, hidden: int, head_dim: int, intermediate: int
) -> torch.Tensor:
    """Theoretical FLOPs (2 x multiply-adds) of one encoder layer for `tokens` real tokens and `heads` heads.

    Q/K/V projections 3*2*n*d*(h*dh), scores and context 2*2*n^2*(h*dh), output projection 2*n*(h*dh)*d,
    feed-forward 2*2*n*d*d_ff. Softmax, layer norms and biases are left out (lower order)."""
    n, inner = tokens.double(), heads.double() * head_dim
    return 6 * n * hidden * inner + 4 * n * n * inner + 2 * n * inner * hidden + 4 * n * hidden * intermediate


def dense_flops(lengths: torch.Tensor | Sequence[int], config) -> torch.Tensor:
    """FLOPs of the unpruned encoder for texts of these real lengths (no padding)."""
    n = torch.as_tensor(lengths)
    heads = torch.full_like(n, config.num_attention_heads)
    per_layer = layer_flops(
        n, heads, config.hidden_size, config.hidden_size // config.num_attention_heads, config.intermediate_size
    )
    return per_layer * config.num_hidden_layers


def _weight_and_bias(linear: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear layer's float weight and bias; a dynamically quantized (int8) layer's are dequantized, since the
    per-sample head gather needs float slices (the FFN and dense-head projections still run in int8)."""
    if callable(linear.weight):  # torch.ao dynamic quantized Linear: weight() / bias() are methods
        return linear.weight().dequantize(), linear.bias()
    return linear.weight, linear.bias


def _gather_rows(weight: torch.Tensor, heads: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Per-sample slices of a (H*dh, d) projection weight for the kept heads: (B, h*dh, d)."""
    per_head = weight.view(-1, head_dim, weight.shape[-1])
    return per_head[heads].flatten(1, 2)


class CascadePruner(nn.Module):
    """SpAtten cascade token + head pruning over a Hugging Face BERT-family model (BERT, RoBERTa, XLM-R, MiniLM).

    It holds the model (weights are shared, not copied) and a :class:`PruneSchedule`; `forward` takes a tokenized
    batch and returns a :class:`PrunedOutput`. Batches may mix lengths: every sample is pruned by its own importance
    and gives the same result as when it is run alone.
    """

    def __init__(self, model: nn.Module, schedule: PruneSchedule | None = None, protected_ids: Sequence[int] = ()):
        super().__init__()
        encoder = getattr(model, "encoder", None)
        if encoder is None or not hasattr(encoder, "layer") or not hasattr(model, "embeddings"):
            raise TypeError(
                f"cascade pruning needs a BERT-family encoder with .embeddings and .encoder.layer "
                f"(BertModel, RobertaModel, XLMRobertaModel, ...), not {type(model).__name__}"
            )
        self.model = model
        config = model.config
        self.num_layers = config.num_hidden_layers
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.schedule = schedule or PruneSchedule.dense(self.num_layers)
        self.protected_ids = sorted(set(int(i) for i in protected_ids))

    @classmethod
    def from_encoder(cls, encoder: Encoder, schedule: PruneSchedule | None = None) -> CascadePruner:
        """A pruner over a registry encoder; its tokenizer's special tokens ([CLS], [SEP], ...) are never pruned."""
        special = [i for i in encoder.tokenizer.all_special_ids if i != encoder.tokenizer.pad_token_id]
        return cls(encoder.model, schedule, protected_ids=special)

    @property
    def schedule(self) -> PruneSchedule:
        return self._schedule

    @schedule.setter
    def schedule(self, schedule: PruneSchedule) -> None:
        if schedule.num_layers != self.num_layers:
            raise ValueError(f"schedule has {schedule.num_layers} layers, the model has {self.num_layers}")
        self._schedule = schedule

    def _attention(self, layer, x, mask, heads):
        """Self-attention for the kept heads only. Returns (attention output, probs (B,h,K,K), |head output| (B,h))."""
        attn = layer.attention.self
        batch, length, _ = x.shape
        dense_heads = heads is None
        h = self.num_heads if dense_heads else heads.shape[1]

        def project(linear: nn.Linear) -> torch.Tensor:
            if dense_heads:
                out = linear(x)
            else:
                full_weight, full_bias = _weight_and_bias(linear)
                weight = _gather_rows(full_weight, heads, self.head_dim)  # (B, h*dh, d)
                bias = full_bias.view(-1, self.head_dim)[heads].flatten(1, 2)  # (B, h*dh)
                out = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
            return out.view(batch, length, h, self.head_dim).transpose(1, 2)

        q, k, v = project(attn.query), project(attn.key), project(attn.value)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (self.head_dim**-0.5)
        padding = torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device).masked_fill_(
            ~mask, torch.finfo(scores.dtype).min
        )
        probs = scores.add_(padding[:, None, None, :]).softmax(-1)
        context = torch.matmul(probs, v)  # (B, h, K, dh)
        real = mask[:, None, :, None].to(context.dtype)
        head_magnitude = (context.abs() * real).sum((2, 3))
        context = context.transpose(1, 2).reshape(batch, length, h * self.head_dim)
        dense = layer.attention.output.dense
        if dense_heads:
            out = dense(context)
        else:  # output projection columns of the kept heads: (d, H*dh) -> per sample (B, h*dh, d)
            weight, bias = _weight_and_bias(dense)
            per_head = weight.t().reshape(self.num_heads, self.head_dim, -1)
            out = torch.baddbmm(bias.expand(batch, 1, -1), context, per_head[heads].flatten(1, 2))
        out = layer.attention.output.LayerNorm(out + x)
        return out, probs, head_magnitude

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        output_attentions: bool = False,
        state_layers: int = 1,
    ) -> PrunedOutput:
        """`state_layers` > 1 also returns `kept_layer_mean`: each surviving token's states averaged over the last
        `state_layers` layers (every survivor went through all of them), aligned with `last_hidden_state`."""
        schedule, cfg = self.schedule, self.model.config
        if not 1 <= state_layers <= self.num_layers:
            raise ValueError(f"state_layers must lie in [1, {self.num_layers}], not {state_layers}")
        batch, length = input_ids.shape
        device = input_ids.device
        mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        x = self.model.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        n_real = mask.sum(1)
        special = torch.tensor(self.protected_ids, device=device, dtype=input_ids.dtype)
        protected = torch.isin(input_ids, special) & mask
        positions = torch.arange(length, device=device).expand(batch, length)
        token_score = torch.zeros(batch, length, device=device, dtype=x.dtype)  # on the original grid
        head_score = torch.zeros(batch, self.num_heads, device=device, dtype=x.dtype)
        all_heads = torch.arange(self.num_heads, device=device).expand(batch, -1)
        heads: torch.Tensor | None = None  # None = all heads, else (B, h) kept head ids, ascending
        token_masks = torch.zeros(batch, self.num_layers, length, dtype=torch.bool, device=device)
        head_masks = torch.zeros(batch, self.num_layers, self.num_heads, dtype=torch.bool, device=device)
        flops = torch.zeros(batch, dtype=torch.float64, device=device)
        attentions = []
        latest = x.new_zeros(batch, length + 1, x.shape[-1])  # one spare column absorbs padded slots
        real = mask.unsqueeze(-1).to(x.dtype)  # every real token of the original grid
        count = real.sum(1).clamp(min=1)
        layer_means = []
        summed = x.new_zeros(batch, length + 1, x.shape[-1]) if state_layers > 1 else None
        for index, layer in enumerate(self.model.encoder.layer):
            if index > 0 and schedule.token_keep[index] < 1.0:
                x, mask, positions, protected = _prune_tokens(
                    x, mask, positions, token_score.gather(1, positions), protected, n_real, schedule.token_keep[index]
                )
            keep_heads = max(1, round(schedule.head_keep[index] * self.num_heads))
            if keep_heads < (self.num_heads if heads is None else heads.shape[1]):
                heads = head_score.topk(keep_heads, dim=1).indices.sort(dim=1).values
            kept_heads = all_heads if heads is None else heads
            token_masks[:, index] = torch.zeros_like(token_score).scatter_add(1, positions, mask.to(x.dtype)) > 0
            head_masks[:, index].scatter_(1, kept_heads, True)
            flops += layer_flops(
                mask.sum(1),
                torch.full_like(n_real, kept_heads.shape[1]),
                cfg.hidden_size,
                self.head_dim,
                cfg.intermediate_size,
            )

            attended, probs, magnitude = self._attention(layer, x, mask, heads)
            x = layer.output.LayerNorm(layer.output.dense(layer.intermediate(attended)) + attended)

            slots = positions.masked_fill(~mask, length)[..., None].expand(-1, -1, x.shape[-1])
            latest = latest.scatter(1, slots, x)
            if summed is not None and index >= self.num_layers - state_layers:
                summed = summed.scatter_add(1, slots, x)
            layer_means.append((latest[:, :length] * real).sum(1) / count)
            # attention received by each key, summed over heads and real queries (a batched matrix product)
            received = torch.einsum("bhqk,bq->bk", probs, mask.to(probs.dtype)).masked_fill(~mask, 0.0)
            token_score = token_score.scatter_add(1, positions, received)
            head_score = head_score.masked_fill(~head_masks[:, index], float("-inf")).scatter_add(
                1, kept_heads, magnitude
            )
            if output_attentions:
                attentions.append(_full_grid(probs, positions, mask, kept_heads, length, self.num_heads))
        return PrunedOutput(
            last_hidden_state=x,
            mask=mask,
            positions=positions,
            token_masks=token_masks,
            head_masks=head_masks,
            token_importance=token_score,
            head_importance=head_score,
            flops=flops,
            latest_states=latest[:, :length],
            layer_means=torch.stack(layer_means, 1),
            attentions=tuple(attentions) if output_attentions else None,
            kept_layer_mean=None
            if summed is None
            else summed.gather(1, positions.masked_fill(~mask, length)[..., None].expand(-1, -1, x.shape[-1]))
            / state_layers,
        )


class PrunedClassifier(nn.Module, HubModule):
    """A classification head on a cascade pruner's pooled states: the model SpAtten fine-tunes with pruning on.

    `forward` returns logits; gradients reach the encoder through every kept token and head (the top-k choices
    themselves are not differentiable, as in SpAtten). `head` is any module mapping (B, d) to (B, classes), e.g. a
    linear probe trained on frozen features, so that fine-tuning starts where the probe ended (LP-FT)."""

    def __init__(
        self,
        model: nn.Module,
        head: nn.Module,
        schedule: PruneSchedule | None = None,
        pooling: str = "mean_all",
        protected_ids: Sequence[int] = (),
    ):
        super().__init__()
        problem = pooling_problem(pooling)
        if problem:
            raise ValueError(problem)
        self.pruner = CascadePruner(model, schedule, protected_ids)
        self.head = head
        self.pooling = pooling

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.head(self.pruner(input_ids, attention_mask, token_type_ids).pooled(self.pooling))


def _prune_tokens(x, mask, positions, score, protected, n_real, ratio):
    """Keep each sample's ceil(ratio * n_real) highest-score tokens (protected ones always), in original order.

    Slots past a sample's kept count point at slot 0 and are masked out."""
    current = mask.sum(1)
    keep = torch.minimum(torch.maximum(torch.ceil(ratio * n_real.double()).long(), protected.sum(1)), current)
    ranked = score.masked_fill(protected, float("inf")).masked_fill(~mask, float("-inf"))
    width = int(keep.max())
    chosen = ranked.topk(width, dim=1).indices  # (B, width), best first
    new_mask = torch.arange(width, device=x.device)[None, :] < keep[:, None]
    order = positions.gather(1, chosen).masked_fill(~new_mask, torch.iinfo(torch.long).max)
    chosen = chosen.gather(1, order.argsort(dim=1)).masked_fill(~new_mask, 0)  # original token order
    x = x.gather(1, chosen[..., None].expand(-1, -1, x.shape[-1]))
    return x, new_mask, positions.gather(1, chosen), protected.gather(1, chosen) & new_mask


def _full_grid(probs, positions, mask, heads, length, num_heads) -> torch.Tensor:
    """Scatter (B, h, K, K) probabilities of kept tokens and heads onto the original (B, H, L, L) grid (zeros where
    pruned)."""
    batch, h, k, _ = probs.shape
    probs = probs * (mask[:, None, :, None] & mask[:, None, None, :])
    index = (
        torch.arange(batch, device=probs.device)[:, None, None, None].expand(batch, h, k, k),
        heads[:, :, None, None].expand(batch, h, k, k),
        positions[:, None, :, None].expand(batch, h, k, k),
        positions[:, None, None, :].expand(batch, h, k, k),
    )
    return probs.new_zeros(batch, num_heads, length, length).index_put_(index, probs, accumulate=True)


@torch.inference_mode()
def pruned_features(
    texts: Sequence[str],
    encoder: Encoder,
    schedule: PruneSchedule,
    *,
    pooling: str | Sequence[str] = "mean",
    max_length: int = 128,
    batch_size: int = 32,
    progress: bool = True,
    model: nn.Module | None = None,
) -> tuple[np.ndarray | dict[str, np.ndarray], np.ndarray]:
    """Pooled states (n, d) float32 of `texts` under `schedule`, and each text's FLOPs (n,) float64. With a list of
    poolings, a dict pooling -> features, all from the same pass. `model` replaces the encoder's own model (e.g. an
    int8 copy of it) under the encoder's tokenizer.

    Texts are batched in length order (less padding; results do not depend on the batch) and returned in input order.
    """
    names = [pooling] if isinstance(pooling, str) else list(pooling)
    for name in names:
        if pooling_problem(name):
            raise ValueError(pooling_problem(name))
    special = [i for i in encoder.tokenizer.all_special_ids if i != encoder.tokenizer.pad_token_id]
    pruner = CascadePruner(model if model is not None else encoder.model, schedule, protected_ids=special).eval()
    order = np.argsort(token_lengths(texts, encoder, max_length), kind="stable")
    features = {name: np.zeros((len(texts), encoder.hidden_size), np.float32) for name in names}
    flops = np.zeros(len(texts))
    bar = tqdm(total=len(texts), desc=f"pruned pass ({schedule.name or 'custom'})", disable=not progress)
    for start in range(0, len(texts), batch_size):
        index = order[start : start + batch_size]
        batch = encoder.tokenize([texts[i] for i in index], max_length)
        out = pruner(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        for name in names:
            features[name][index] = out.pooled(name).float().cpu().numpy()
        flops[index] = out.flops.cpu().numpy()
        bar.update(len(index))
    bar.close()
    return (features[names[0]] if isinstance(pooling, str) else features), flops


def token_lengths(texts: Sequence[str], encoder: Encoder, max_length: int = 128) -> np.ndarray:
    """Real token count (with special tokens, after truncation) of each text."""
    enc = encoder.tokenizer(list(texts), truncation=True, max_length=max_length)
    return np.array([len(ids) for ids in enc["input_ids"]], dtype=np.int64)


def flop_ratio(texts: Sequence[str], encoder: Encoder, schedule_flops: np.ndarray, max_length: int = 128) -> float:
    """Dense FLOPs / pruned FLOPs over the same texts (the theoretical speed-up, padding ignored)."""
    dense = dense_flops(torch.as_tensor(token_lengths(texts, encoder, max_length)), encoder.model.config)
    return float(dense.sum()) / max(float(np.sum(schedule_flops)), 1.0)


def keep_summary(schedule: PruneSchedule) -> str:
    """A short text of a schedule: per-layer token and head keep ratios."""
    tokens = "/".join(f"{r:.2f}" for r in schedule.token_keep)
    heads = "/".join(f"{r:.2f}" for r in schedule.head_keep)
    return f"tokens {tokens}; heads {heads}"


__all__ = [
    "POOLINGS",
    "CascadePruner",
    "PruneSchedule",
    "PrunedClassifier",
    "PrunedOutput",
    "dense_flops",
    "flop_ratio",
    "keep_summary",
    "layer_flops",
    "pool_layers",
    "pooling_problem",
    "pruned_features",
    "token_lengths",
]
