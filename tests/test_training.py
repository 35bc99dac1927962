"""The training core: class weights, metrics, determinism, early stopping, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.methods.probe import EmbeddingClassifier, tensor_dataset, train_probe
from workbench.training import (
    TrainConfig,
    class_weights,
    classification_metrics,
    evaluate,
    fit,
    load_checkpoint,
    save_checkpoint,
)


def _blobs(n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 8)).astype(np.float32) + np.eye(3, 8, dtype=np.float32)[y] * 3
    return x, y


def test_class_weights_are_inverse_frequency():
    weights = class_weights([0, 0, 0, 1], 3)
    assert torch.allclose(weights, torch.tensor([4 / 6, 4 / 2, 0.0]))


def test_classification_metrics_known_values():
    m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1])
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert m["recall"] == pytest.approx(0.75)


def test_fit_learns_and_is_deterministic():
    x, y = _blobs()
    config = TrainConfig(epochs=5, lr=1e-2, batch_size=16, seed=3, progress=False)
    scores = []
    for _ in range(2):
        torch.manual_seed(0)
        model = EmbeddingClassifier(8, 3)
        history = fit(model, tensor_dataset(x, y), tensor_dataset(x, y), config)
        scores.append((evaluate(model, tensor_dataset(x, y)), [e["train_loss"] for e in history.epochs]))
    assert scores[0] == scores[1]
    assert scores[0][0]["accuracy"] > 0.9
    assert scores[0][1][-1] < scores[0][1][0]


def test_early_stopping_restores_the_best_epoch():
    x, y = _blobs(120)
    config = TrainConfig(epochs=40, lr=5e-2, batch_size=16, patience=2, seed=0, progress=False)
    model, history = train_probe(x, y, 3, config)
    assert len(history.epochs) < 40
    best = history.epochs[history.best_epoch]["dev_macro_f1"]
    assert best == max(e["dev_macro_f1"] for e in history.epochs) == history.best_score


def test_checkpoint_round_trip(tmp_path):
    model = EmbeddingClassifier(8, 3, hidden_dim=4)
    save_checkpoint(model, tmp_path / "ckpt", {"input_dim": 8, "num_classes": 3, "hidden_dim": 4})
    assert (tmp_path / "ckpt" / "model.safetensors").is_file() and (tmp_path / "ckpt" / "config.json").is_file()
    clone = load_checkpoint(EmbeddingClassifier(8, 3, hidden_dim=4), tmp_path / "ckpt")
    x = torch.randn(5, 8)
    model.eval()
    assert torch.equal(model(x), clone(x))


class _TinyFineTune(torch.nn.Module):
    """Encoder + linear head on [CLS], fed by dict batches as a fine-tuning run would be."""

    def __init__(self, encoder_model, num_classes: int):
        super().__init__()
        self.encoder = encoder_model
        self.head = torch.nn.Linear(encoder_model.config.hidden_size, num_classes)

    def forward(self, input_ids, attention_mask):
        return self.head(self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0])


def test_fine_tuning_with_dict_batches_updates_the_encoder_and_lowers_the_loss(tmp_path):
    from transformers import AutoModel

    from workbench.encoders import load_encoder

    encoder = load_encoder("tiny")
    texts = ["great food and lovely staff", "awful, cold and rude"] * 8
    labels = torch.tensor([1, 0] * 8)
    batch = encoder.tokenize(texts)
    items = [
        {"input_ids": batch["input_ids"][i], "attention_mask": batch["attention_mask"][i], "labels": labels[i]}
        for i in range(16)
    ]
    model = _TinyFineTune(encoder.model, 2)
    before = encoder.model.embeddings.word_embeddings.weight.detach().clone()
    history = fit(model, items, None, TrainConfig(epochs=8, lr=5e-3, batch_size=8, progress=False))
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]
    assert not torch.equal(before, encoder.model.embeddings.word_embeddings.weight)
    save_checkpoint(encoder.model, tmp_path / "enc")
    assert (tmp_path / "enc" / "model.safetensors").is_file()
    reloaded = AutoModel.from_pretrained(tmp_path / "enc").eval()
    encoder.model.eval()
    with torch.no_grad():
        a = encoder.model(**batch).last_hidden_state
        b = reloaded(**batch).last_hidden_state
    assert torch.allclose(a, b, atol=1e-6)


def test_monitoring_the_dev_loss_keeps_the_epoch_with_the_lowest_mean_loss():
    from torch import nn

    from workbench.training import mean_loss

    x, y = _blobs(90)
    data = tensor_dataset(x, y)
    config = TrainConfig(epochs=6, lr=5e-2, batch_size=16, patience=10, seed=0, monitor="loss", progress=False)
    torch.manual_seed(0)
    model = EmbeddingClassifier(8, 3)
    history = fit(model, data, data, config)
    losses = [e["dev_loss"] for e in history.epochs]
    assert history.best_epoch == int(np.argmin(losses)) and history.best_score == -min(losses)
    # the restored weights are those of the best epoch: their dev loss is the recorded minimum
    criterion = nn.CrossEntropyLoss(weight=class_weights(y, 3))
    restored = mean_loss(model, data, lambda m, b: criterion(m(b[0]), b[1]))
    assert restored == pytest.approx(min(losses), rel=1e-5)
