"""Frozen-feature classifiers: a small head trained on fixed sentence embeddings with the training core.

The cheapest honest use of a pretrained encoder on a CPU: encode once (cached), then train only the head.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import TensorDataset

from workbench.training import History, TrainConfig, fit


class EmbeddingClassifier(nn.Module):
    """Dropout, an optional hidden layer (GELU), and a linear layer over a fixed-size embedding."""

    def __init__(self, input_dim: int, num_classes: int, hidden_dim: int | None = None, dropout: float = 0.1):
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden_dim:
            layers += [nn.Linear(input_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(hidden_dim or input_dim, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def tensor_dataset(features: np.ndarray, labels: np.ndarray) -> TensorDataset:
    """(float32 features, int64 labels) as a TensorDataset."""
    return TensorDataset(
        torch.tensor(np.asarray(features), dtype=torch.float32), torch.tensor(np.asarray(labels), dtype=torch.long)
    )


def train_probe(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    config: TrainConfig,
    hidden_dim: int | None = None,
    dropout: float = 0.1,
    dev_fraction: float = 0.1,
) -> tuple[EmbeddingClassifier, History]:
    """Train an EmbeddingClassifier with early stopping on a seeded, stratified dev split of the training rows.

    The evaluation set is never touched here: the dev split comes out of `features` / `labels` only.
    """
    labels = np.asarray(labels)
    stratify = labels if np.bincount(labels).min() >= 2 else None
    train_idx, dev_idx = train_test_split(
        np.arange(len(labels)), test_size=dev_fraction, random_state=config.seed, stratify=stratify
    )
    torch.manual_seed(config.seed)
    model = EmbeddingClassifier(features.shape[1], num_classes, hidden_dim, dropout)
    history = fit(
        model,
        tensor_dataset(features[train_idx], labels[train_idx]),
        tensor_dataset(features[dev_idx], labels[dev_idx]),
        config,
        num_classes=num_classes,
    )
    return model, history
