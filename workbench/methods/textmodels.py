"""Text classifiers trained from scratch on shared WordPiece ids, built by name (`text_model` in the registry).

Every model takes `(input_ids, attention_mask)` and returns logits, so one training / evaluation path
(`train_text_model`) serves the baselines (BiLSTM, TextCNN, plain transformer) and the multi-level models of
`workbench.methods.multilevel`: `workbench.registry.build("text_model", name, vocab_size, num_classes, **sizes)`.
Reviews are tokenized with the offline default tokenizer (MiniLM's uncased WordPiece) and the ids are cached on
disk per (tokenizer, max_length, texts), since tokenizing tens of thousands of reviews is not free.

On a pretrained encoder instead (`base="pretrained"` in the study): `head_tail_ids` keeps a review's first and last
tokens (the end of a review often holds its verdict), `finetune_on_ids` fine-tunes the encoder with mean pooling and a
linear head (`workbench.methods.finetune`), `encode_states` runs it once over a set of reviews and keeps every
token's final state (float16) with the encoder's own logits, and the models of `STATE_MODELS` (mean pooling + linear,
BiLSTM, plain transformer, multi-level variants) all train on those same cached states (`StateDataset` +
`StateCollator`) through `train_text_model`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from workbench.encoders import cache_dir
from workbench.methods.multilevel import (
    MultiLevelClassifier,
    MultiLevelConfig,
    MultiLevelStateClassifier,
    StateHeadConfig,
    contrastive_objective,
    count_parameters,
    measure_flops,
)
from workbench.methods.probe import decision_logits, sklearn_probe
from workbench.registry import build, register
from workbench.runtime import autocast
from workbench.saving import HubModule
from workbench.training import History, TrainConfig, classification_metrics, fit, predict


@dataclass
class TokenIds:
    """Right-padded ids (n, max_length) int64 and the attention mask (n, max_length) bool."""

    ids: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def dataset(self, labels: Sequence[int], index: Sequence[int] | None = None) -> TensorDataset:
        """A `TensorDataset(input_ids, attention_mask, labels)` of the rows in `index` (all by default)."""
        idx = np.arange(len(self)) if index is None else np.asarray(index)
        return TensorDataset(
            torch.from_numpy(self.ids[idx]),
            torch.from_numpy(self.mask[idx]),
            torch.as_tensor(np.asarray(labels)[idx], dtype=torch.long),
        )


def tokenize_texts(texts: Sequence[str], tokenizer, max_length: int, cache: bool = True) -> TokenIds:
    """WordPiece ids truncated to `max_length` (head of the review, with [CLS] ... [SEP]), cached on disk."""
    digest = hashlib.sha1(f"{tokenizer.name_or_path}|{tokenizer.vocab_size}|{max_length}".encode())
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    path = cache_dir() / "token-ids" / f"{digest.hexdigest()[:20]}.npz"
    if cache and path.is_file():
        with np.load(path) as z:
            ids = z["ids"].astype(np.int64)
    else:
        encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding="max_length")["input_ids"]
        ids = np.asarray(encoded, dtype=np.int64).reshape(len(texts), max_length)
        if cache:  # unique temporary file, then an atomic rename: parallel runs never see a half-written cache
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.stem}.", suffix=".partial")
            try:
                with os.fdopen(handle, "wb") as out:
                    np.savez(out, ids=ids.astype(np.int32))
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
    return TokenIds(ids=ids, mask=ids != tokenizer.pad_token_id)


class BiLSTMClassifier(nn.Module, HubModule):
    """Embedding -> bidirectional LSTM over the real tokens (packed) -> pooled -> linear.

    `pooling="max"` (default) takes the max over time of the outputs of both directions (InferSent-style), which
    on 3,000 IMDB reviews reached 0.80 dev accuracy where the final states (`pooling="last"`) stalled at 0.64: a
    from-scratch LSTM carries little of a 128-token review to its last step, and a weak baseline flatters the rest.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int = 2,
        embed_dim: int = 64,
        hidden: int = 64,
        dropout: float = 0.1,
        pooling: str = "max",
    ):
        super().__init__()
        if pooling not in ("max", "last"):
            raise ValueError(f"pooling must be 'max' or 'last', not {pooling!r}")
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * hidden, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        lengths = attention_mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.embedding(input_ids), lengths, batch_first=True, enforce_sorted=False)
        outputs, (h, _) = self.lstm(packed)
        if self.pooling == "last":
            pooled = torch.cat([h[-2], h[-1]], dim=-1)
        else:  # padded steps come back as -inf, so the max reads real tokens only
            outputs, _ = pad_packed_sequence(outputs, batch_first=True, padding_value=float("-inf"))
            pooled = outputs.amax(1)
        return self.classifier(self.dropout(pooled))


class TextCNNClassifier(nn.Module, HubModule):
    """Kim (2014) CNN: embedding -> parallel 1-D convolutions (widths 3, 4, 5) -> masked max over time -> linear."""

    def __init__(
        self,
        vocab_size: int,
        num_classes: int = 2,
        embed_dim: int = 64,
        filters: int = 64,
        widths: Sequence[int] = (3, 4, 5),
        dropout: float = 0.1,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, filters, w, padding=w // 2) for w in widths)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(filters * len(widths), num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embedding(input_ids).transpose(1, 2)  # (b, e, L)
        pad = ~attention_mask.bool()
        pooled = []
        for conv in self.convs:
            h = torch.relu(conv(x))[..., : input_ids.shape[1]]
            pooled.append(h.masked_fill(pad[:, None, :], float("-inf")).amax(-1).clamp(min=0))
        return self.classifier(self.dropout(torch.cat(pooled, dim=-1)))


def _transformer(vocab_size: int, num_classes: int, multi_level: bool, lightweight: bool, **sizes) -> nn.Module:
    config = MultiLevelConfig(
        vocab_size=vocab_size, num_classes=num_classes, multi_level=multi_level, lightweight=lightweight, **sizes
    )
    return MultiLevelClassifier(config)


@register("text_model", "bilstm")
def bilstm(vocab_size: int, num_classes: int = 2, d_model: int = 64, dropout: float = 0.1, **_) -> nn.Module:
    """BiLSTM baseline: embedding width and hidden size = `d_model` (the transformer's other knobs are ignored)."""
    return BiLSTMClassifier(vocab_size, num_classes, embed_dim=d_model, hidden=d_model, dropout=dropout)


@register("text_model", "textcnn")
def textcnn(vocab_size: int, num_classes: int = 2, d_model: int = 64, dropout: float = 0.1, **_) -> nn.Module:
    """TextCNN baseline: embedding width and filters per width = `d_model` (other knobs are ignored)."""
    return TextCNNClassifier(vocab_size, num_classes, embed_dim=d_model, filters=d_model, dropout=dropout)


@register("text_model", "transformer")
def transformer(vocab_size: int, num_classes: int = 2, **sizes) -> nn.Module:
    """Plain transformer: global attention only, full feed-forward (`MultiLevelConfig` knobs pass through)."""
    return _transformer(vocab_size, num_classes, multi_level=False, lightweight=False, **sizes)


@register("text_model", "multilevel")
def multilevel(vocab_size: int, num_classes: int = 2, **sizes) -> nn.Module:
    """Global + local attention fused by a gate, full feed-forward."""
    return _transformer(vocab_size, num_classes, multi_level=True, lightweight=False, **sizes)


@register("text_model", "multilevel_lightweight")
def multilevel_lightweight(vocab_size: int, num_classes: int = 2, **sizes) -> nn.Module:
    """Global + local attention and the lightweight (bottleneck) feed-forward: the proposed model."""
    return _transformer(vocab_size, num_classes, multi_level=True, lightweight=True, **sizes)


# ------------------------------------------------------------------------------ models on pretrained token states
class MeanPoolLinear(nn.Module, HubModule):
    """Baseline on token states: mean over the real tokens, dropout, linear (the fine-tuned encoder's own head,
    retrained here on other reviews' states)."""

    def __init__(self, input_size: int, num_classes: int = 2, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(input_size, num_classes)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.classifier(self.dropout(pooled))


class StateBiLSTM(nn.Module, HubModule):
    """Baseline on token states: linear projection (hidden -> d), a bidirectional LSTM over the real tokens (packed),
    max over time of its outputs, dropout, linear (as the from-scratch `BiLSTMClassifier`, on states not ids)."""

    def __init__(self, input_size: int, num_classes: int = 2, hidden: int = 64, dropout: float = 0.1):
        super().__init__()
        self.projection = nn.Linear(input_size, hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * hidden, num_classes)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.projection(states), lengths, batch_first=True, enforce_sorted=False)
        outputs, _ = self.lstm(packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, padding_value=float("-inf"))
        return self.classifier(self.dropout(outputs.amax(1)))


def _state_transformer(multi_level: bool, lightweight: bool):
    def make(input_size: int, num_classes: int = 2, **sizes) -> nn.Module:
        config = StateHeadConfig(
            input_size=input_size, num_classes=num_classes, multi_level=multi_level, lightweight=lightweight, **sizes
        )
        return MultiLevelStateClassifier(config)

    return make


STATE_MODELS = {
    "mean_linear": lambda input_size, num_classes=2, dropout=0.1, **_: MeanPoolLinear(input_size, num_classes, dropout),
    "bilstm": lambda input_size, num_classes=2, d_model=64, dropout=0.1, **_: StateBiLSTM(
        input_size, num_classes, d_model, dropout
    ),
    "transformer": _state_transformer(multi_level=False, lightweight=False),
    "multilevel": _state_transformer(multi_level=True, lightweight=False),
    "multilevel_lightweight": _state_transformer(multi_level=True, lightweight=True),
}


def build_state_model(name: str, input_size: int, num_classes: int = 2, **sizes) -> nn.Module:
    """A model over token states by name (`STATE_MODELS`): `mean_linear` and `bilstm` read `d_model` and `dropout`
    only; the transformers take every `StateHeadConfig` size (`d_model`, `num_layers`, `num_heads`, `d_ff`, ...)."""
    if name not in STATE_MODELS:
        raise ValueError(f"unknown state model {name!r}; known: {', '.join(STATE_MODELS)}")
    return STATE_MODELS[name](input_size, num_classes, **sizes)


def head_tail_ids(texts: Sequence[str], tokenizer, max_length: int, head_tokens: int | None = None) -> list[list[int]]:
    """Token ids with [CLS] ... [SEP], at most `max_length`: a longer text keeps its first `head_tokens` tokens and
    its last `max_length - 2 - head_tokens` (Sun et al. 2019, "head + tail"); `head_tokens=None` keeps the head only."""
    body = max_length - 2
    if body < 1:
        raise ValueError(f"max_length={max_length} leaves no room for text between [CLS] and [SEP]")
    head = body if head_tokens is None else min(int(head_tokens), body)
    tail = body - head
    encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    out = []
    for ids in encoded:
        kept = ids if len(ids) <= body else ids[:head] + (ids[len(ids) - tail :] if tail else [])
        out.append([cls, *kept, sep])
    return out


def id_items(ids: Sequence[Sequence[int]], labels: Sequence[int]) -> list[dict[str, torch.Tensor]]:
    """`workbench.methods.finetune.token_items` from ids already cut (e.g. by `head_tail_ids`)."""
    if len(ids) != len(labels):
        raise ValueError(f"{len(ids)} texts but {len(labels)} labels")
    return [
        {"input_ids": torch.tensor(list(x), dtype=torch.long), "labels": torch.tensor(int(y), dtype=torch.long)}
        for x, y in zip(ids, labels)
    ]


def finetune_on_ids(
    encoder: str,
    train_ids: Sequence[Sequence[int]],
    train_labels: Sequence[int],
    dev_ids: Sequence[Sequence[int]] | None,
    dev_labels: Sequence[int] | None,
    num_classes: int,
    config: TrainConfig,
    dropout: float = 0.1,
):
    """`workbench.methods.finetune.finetune_classifier` on token ids cut beforehand (head + tail): the encoder with
    mean pooling and a linear head, fine-tuned end to end in length-grouped, dynamically padded batches under
    `workbench.training.fit`. `config.epochs=0` leaves the encoder as loaded (frozen states; the head is untrained).
    Returns `(model, tokenizer, history)`."""
    from workbench.methods.finetune import LengthGroupedBatchSampler, PadCollator, load_classifier

    model, tokenizer = load_classifier(encoder, num_classes, seed=config.seed, dropout=dropout)
    if config.epochs == 0:
        return model.eval(), tokenizer, History()
    train = id_items(train_ids, train_labels)
    dev = id_items(dev_ids, dev_labels) if dev_ids is not None else None
    sampler = LengthGroupedBatchSampler.for_items(train, config.batch_size, seed=config.seed)
    collate = PadCollator(tokenizer.pad_token_id or 0)
    history = fit(
        model, train, dev, config, collate_fn=collate, batch_sampler=sampler, num_classes=num_classes,
        desc="fine-tuning the encoder",
    )  # fmt: skip
    return model, tokenizer, history


@dataclass
class TokenStatesCache:
    """Final-layer token states of a set of reviews, computed once: `states` (n, max_length, hidden) float16, zero
    after each review's `lengths`; the encoder's own `logits` (n, classes); `seconds` the pass took."""

    states: np.ndarray
    lengths: np.ndarray
    logits: np.ndarray
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, index: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(states float32, mask bool) of the rows in `index`, cut to the longest of them."""
        index = np.asarray(index)
        longest = max(int(self.lengths[index].max()), 1)
        states = torch.from_numpy(self.states[index, :longest].astype(np.float32))
        mask = torch.arange(longest)[None, :] < torch.from_numpy(self.lengths[index].astype(np.int64))[:, None]
        return states, mask


@torch.no_grad()
def encode_states(
    model: nn.Module,
    ids: Sequence[Sequence[int]],
    max_length: int,
    pad_id: int = 0,
    batch_size: int = 64,
    progress: bool = False,
    desc: str = "encoding",
    precision: str | None = None,
) -> TokenStatesCache:
    """One pass of a `finetune.EncoderClassifier` over `ids` (length-sorted batches, dynamic padding, eval mode):
    every token's final state (float16) and the classifier's logits, in the caller's order. `precision` 'bf16' (or
    'auto' on an AMX CPU, `runtime.autocast`) runs the pass under bf16 autocast."""
    from workbench.methods.finetune import PadCollator

    start = time.perf_counter()
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    hidden = model.encoder.config.hidden_size
    lengths = np.array([len(x) for x in ids], dtype=np.int32)
    if lengths.size and lengths.max() > max_length:
        raise ValueError(f"a sequence of {lengths.max()} tokens is longer than max_length={max_length}")
    states = np.zeros((len(ids), max_length, hidden), dtype=np.float16)
    logits = np.zeros((len(ids), model.head.out_features), dtype=np.float32)
    order = np.argsort(lengths, kind="stable")
    collate = PadCollator(pad_id)
    for begin in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress, leave=False):
        rows = order[begin : begin + batch_size]
        batch = collate([{"input_ids": torch.as_tensor(ids[i]), "labels": torch.tensor(0)} for i in rows])
        input_ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        with autocast(precision):
            out = model.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()
        weights = mask.unsqueeze(-1).to(out.dtype)
        pooled = (out * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        logits[rows] = model.head(pooled).float().cpu().numpy()
        out = (out * weights).to(torch.float16).cpu().numpy()
        for j, i in enumerate(rows):
            states[i, : lengths[i]] = out[j, : lengths[i]]
    model.train(was_training)
    return TokenStatesCache(states, lengths, logits, time.perf_counter() - start)


class StateDataset(torch.utils.data.Dataset):
    """Rows of a `TokenStatesCache` with their labels. Items are `(cache, row, label)`, and `collate_states` turns a
    batch of them into `(states, mask, labels)` cut to its longest review: every model reads the same cached states
    (nothing is re-encoded), and one `collate_fn` serves the train, dev and test sets of a run."""

    def __init__(self, cache: TokenStatesCache, labels: Sequence[int]):
        if len(labels) != len(cache):
            raise ValueError(f"{len(cache)} cached rows but {len(labels)} labels")
        self.cache, self.labels = cache, np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[TokenStatesCache, int, torch.Tensor]:
        return self.cache, int(i), torch.tensor(self.labels[i])


def collate_states(items) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`collate_fn` of `StateDataset` items (all from one cache): `(states float32, mask bool, labels)`."""
    cache = items[0][0]
    if any(item[0] is not cache for item in items):
        raise ValueError("a batch mixes rows of different state caches")
    states, mask = cache.batch([row for _, row, _ in items])
    return states, mask, torch.stack([label for *_, label in items])


class EncoderClassifier(nn.Module, HubModule):
    """A pretrained encoder (e.g. BERT) with a linear head on the [CLS] state, for full fine-tuning."""

    def __init__(self, encoder_model: nn.Module, num_classes: int = 2, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder_model
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder_model.config.hidden_size, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask.long()).last_hidden_state
        return self.classifier(self.dropout(states[:, 0]))


@dataclass
class TextRun:
    """One trained model: its test metrics, costs, learning curve and test logits."""

    name: str
    model: nn.Module
    metrics: dict[str, float]
    cost: dict[str, float]
    history: History
    test_logits: np.ndarray


def recurrent_flops(model: nn.Module, length: int) -> int:
    """FLOPs of the model's LSTMs over `length` steps (the flop counter does not see them): per step and direction,
    4 gates x (input + hidden) x hidden multiply-adds."""
    total = 0
    for lstm in (m for m in model.modules() if isinstance(m, nn.LSTM)):
        directions = 2 if lstm.bidirectional else 1
        inputs = lstm.input_size
        for _ in range(lstm.num_layers):
            total += directions * length * 2 * 4 * (inputs + lstm.hidden_size) * lstm.hidden_size
            inputs = lstm.hidden_size * directions
    return total


def train_text_model(
    name: str,
    architecture: str | nn.Module,
    train: TensorDataset,
    dev: TensorDataset,
    test: TensorDataset,
    config: TrainConfig,
    *,
    vocab_size: int,
    contrastive_weight: float = 0.0,
    temperature: float = 0.1,
    model_kwargs: dict | None = None,
    collate_fn=None,
    flops_inputs: tuple[torch.Tensor, ...] | None = None,
) -> TextRun:
    """Build `architecture` (a `text_model` registry name, or an already built model), fit it on `train` (early
    stopping on `dev`), then measure it on the whole `test` set.

    Costs come from the same run: parameters, forward FLOPs per review at the training length, mean seconds per
    training epoch, and inference throughput (reviews/s) over the test set. Datasets of token states
    (`StateDataset`) pass their `collate_fn` and the `flops_inputs` of one full-length review.
    """
    torch.manual_seed(config.seed)  # same initial weights for the same seed
    if isinstance(architecture, nn.Module):
        model = architecture
    else:
        model = build("text_model", architecture, vocab_size, **(model_kwargs or {}))
    has_features = hasattr(model, "features")
    if contrastive_weight and not has_features:
        raise ValueError(f"the contrastive loss needs a model with pooled features; {architecture!r} has none")
    # transformers: CE (+ weight * SupCon) through one code path; baselines: fit's default cross-entropy
    loss_fn = contrastive_objective(contrastive_weight, temperature) if has_features else None
    history = fit(model, train, dev, config, loss_fn=loss_fn, collate_fn=collate_fn)
    start = time.perf_counter()
    logits = predict(model, test, batch_size=config.eval_batch_size, collate_fn=collate_fn)
    seconds = time.perf_counter() - start
    labels = test.labels if isinstance(test, StateDataset) else test.tensors[-1].numpy()
    ids, mask = flops_inputs if flops_inputs is not None else (test.tensors[0][:1], test.tensors[1][:1])
    cost = {
        "params": count_parameters(model),
        "params_non_embedding": count_parameters(model, exclude_embeddings=True),
        "gflops_per_review": (measure_flops(model, ids, mask) + recurrent_flops(model, ids.shape[1])) / 1e9,
        "train_seconds_per_epoch": float(np.mean([e["seconds"] for e in history.epochs])),
        "epochs_run": len(history.epochs),
        "best_epoch": history.best_epoch,
        "inference_reviews_per_second": len(labels) / seconds,
    }
    metrics = classification_metrics(labels, logits.argmax(-1), labels=list(range(logits.shape[1])))
    return TextRun(name=name, model=model, metrics=metrics, cost=cost, history=history, test_logits=logits)


def frozen_encoder_baseline(
    encoder,
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    test_texts: Sequence[str],
    test_labels: Sequence[int],
    max_length: int,
    timings=None,
) -> dict[str, object]:
    """The frozen BERT row: an encoder's mean-pooled embeddings (cached) feed a standardised logistic regression
    (`workbench.methods.probe.sklearn_probe`, lbfgs, C=1: convex and deterministic).

    Returns one metric row with the same cost columns as `train_text_model`: encoding throughput is measured on
    the first 256 test texts with the cache off, and a "training epoch" is encoding the training texts plus the
    probe fit. `timings` (a `workbench.results.Timings`) receives the encode and fit steps when given.
    """
    from contextlib import nullcontext

    from workbench.encoders import embed_texts

    def step(name: str):
        return timings(name) if timings is not None else nullcontext()

    sample = list(test_texts[:256])
    start = time.perf_counter()
    embed_texts(sample, encoder, max_length=max_length, cache=False, progress=False)
    encode_rate = len(sample) / (time.perf_counter() - start)
    with step("BERT encode (cached after the first run)"):
        train_features = embed_texts(list(train_texts), encoder, max_length=max_length)
        test_features = embed_texts(list(test_texts), encoder, max_length=max_length)
    with step("BERT probe fit"):
        start = time.perf_counter()
        probe = sklearn_probe(train_features, np.asarray(train_labels), kind="logreg", standardise=True)
        logits = decision_logits(probe, test_features)
        probe_seconds = time.perf_counter() - start
    metrics = classification_metrics(np.asarray(test_labels), logits.argmax(1), labels=[0, 1])
    return {
        "model": "BERT",
        "architecture": f"{encoder.name} frozen + logistic regression",
        "seed": None,
        **metrics,
        "params": sum(p.numel() for p in encoder.model.parameters()) + train_features.shape[1] + 1,
        "params_non_embedding": sum(p.numel() for n, p in encoder.model.named_parameters() if "embeddings" not in n),
        "train_seconds_per_epoch": len(train_texts) / encode_rate + probe_seconds,
        "inference_reviews_per_second": encode_rate,
        "bert_train_size": len(train_texts),
        "bert_max_length": max_length,
        "test_size": len(test_texts),
    }


def fine_tuned_encoder_baseline(
    encoder_name: str,
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    dev_texts: Sequence[str],
    dev_labels: Sequence[int],
    test_texts: Sequence[str],
    test_labels: Sequence[int],
    seeds: Sequence[int],
    max_length: int,
    batch_size: int,
    progress: bool = False,
    keep: dict[str, object] | None = None,
    precision: str | None = None,
) -> list[dict[str, object]]:
    """The fine-tuned BERT rows: a pretrained encoder fine-tuned end to end with a [CLS] head (AdamW lr 2e-5, up to
    3 epochs, early stopping on dev accuracy), one row per seed. Hub encoders need internet. `progress` shows bars
    over the seeds and each fine-tuning's epochs (minutes each on a CPU). A `keep` dict receives the first seed's
    `model`, its `tokenizer` and the test `inputs` (ids, mask) it was scored on. `precision`: `TrainConfig.precision`."""
    from workbench.encoders import load_encoder
    from workbench.runtime import set_seed

    tokenizer = load_encoder(encoder_name).tokenizer
    train = tokenize_texts(list(train_texts), tokenizer, max_length).dataset(train_labels)
    dev = tokenize_texts(list(dev_texts), tokenizer, max_length).dataset(dev_labels)
    test = tokenize_texts(list(test_texts), tokenizer, max_length).dataset(test_labels)
    rows = []
    for seed in tqdm(seeds, desc="BERT fine-tuning (seeds)", disable=not progress):
        set_seed(seed)
        model = EncoderClassifier(load_encoder(encoder_name).model.train())
        config = TrainConfig(
            epochs=3, lr=2e-5, batch_size=batch_size, seed=seed, monitor="accuracy", progress=progress,
            precision=precision,
        )  # fmt: skip
        run = train_text_model("BERT (fine-tuned)", model, train, dev, test, config, vocab_size=tokenizer.vocab_size)
        rows.append({"model": "BERT", "architecture": encoder_name, "seed": seed, **run.metrics, **run.cost})
        if keep is not None and not keep:
            keep.update(model=run.model, tokenizer=tokenizer, inputs=tuple(test.tensors[:2]), seed=seed)
    return rows
