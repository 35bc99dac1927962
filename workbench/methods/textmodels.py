"""Text classifiers trained from scratch on shared WordPiece ids, built by name (`text_model` in the registry).

Every model takes `(input_ids, attention_mask)` and returns logits, so one training / evaluation path
(`train_text_model`) serves the baselines (BiLSTM, TextCNN, plain transformer) and the multi-level models of
`workbench.methods.multilevel`: `workbench.registry.build("text_model", name, vocab_size, num_classes, **sizes)`.
Reviews are tokenized with the offline default tokenizer (MiniLM's uncased WordPiece) and the ids are cached on
disk per (tokenizer, max_length, texts), since tokenizing tens of thousands of reviews is not free.
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
    contrastive_objective,
    count_parameters,
    measure_flops,
)
from workbench.methods.probe import decision_logits, sklearn_probe
from workbench.registry import build, register
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
) -> TextRun:
    """Build `architecture` (a `text_model` registry name, or an already built model), fit it on `train` (early
    stopping on `dev`), then measure it on the whole `test` set.

    Costs come from the same run: parameters, forward FLOPs per review at the training length, mean seconds per
    training epoch, and inference throughput (reviews/s) over the test set.
    """
    torch.manual_seed(config.seed)  # same initial weights for the same seed
    if isinstance(architecture, nn.Module):
        model = architecture
    else:
        model = build("text_model", architecture, vocab_size, **(model_kwargs or {}))
    is_transformer = isinstance(model, MultiLevelClassifier)
    if contrastive_weight and not is_transformer:
        raise ValueError(f"the contrastive loss needs a model with pooled features; {architecture!r} has none")
    # transformers: CE (+ weight * SupCon) through one code path; baselines: fit's default cross-entropy
    loss_fn = contrastive_objective(contrastive_weight, temperature) if is_transformer else None
    history = fit(model, train, dev, config, loss_fn=loss_fn)
    start = time.perf_counter()
    logits = predict(model, test, batch_size=config.eval_batch_size)
    seconds = time.perf_counter() - start
    labels = test.tensors[-1].numpy()
    ids, mask = test.tensors[0][:1], test.tensors[1][:1]
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
) -> list[dict[str, object]]:
    """The fine-tuned BERT rows: a pretrained encoder fine-tuned end to end with a [CLS] head (AdamW lr 2e-5, up to
    3 epochs, early stopping on dev accuracy), one row per seed. Hub encoders need internet. `progress` shows bars
    over the seeds and each fine-tuning's epochs (minutes each on a CPU). A `keep` dict receives the first seed's
    `model`, its `tokenizer` and the test `inputs` (ids, mask) it was scored on."""
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
        config = TrainConfig(epochs=3, lr=2e-5, batch_size=batch_size, seed=seed, monitor="accuracy", progress=progress)
        run = train_text_model("BERT (fine-tuned)", model, train, dev, test, config, vocab_size=tokenizer.vocab_size)
        rows.append({"model": "BERT", "architecture": encoder_name, "seed": seed, **run.metrics, **run.cost})
        if keep is not None and not keep:
            keep.update(model=run.model, tokenizer=tokenizer, inputs=tuple(test.tensors[:2]), seed=seed)
    return rows
