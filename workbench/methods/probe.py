"""Linear probes: a small head trained on fixed features, the cheapest honest use of a pretrained encoder on a CPU.

Two forms, one for each need: `train_probe` trains an `EmbeddingClassifier` with the training core (early stopping
on a seeded dev split of the training rows; optional standardisation inside the model), and `sklearn_probe` fits a
scikit-learn linear model (logistic regression or ridge, optionally after standardisation) for sparse or
closed-form baselines.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import TensorDataset

from workbench.data.sampling import split_indices
from workbench.saving import HubModule
from workbench.training import History, TrainConfig, fit


class EmbeddingClassifier(nn.Module, HubModule):
    """Optional standardisation (fixed mean / std buffers), dropout, an optional hidden layer (GELU), and a linear
    layer over a fixed-size embedding."""

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        hidden_dim: int | None = None,
        dropout: float = 0.1,
        standardise: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        super().__init__()
        mean, std = standardise if standardise is not None else (np.zeros(input_dim), np.ones(input_dim))
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean), dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(np.asarray(std), dtype=torch.float32))
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout else []
        if hidden_dim:
            layers += [nn.Linear(input_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(hidden_dim or input_dim, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features - self.mean) / self.std)


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
    standardise: bool = False,
) -> tuple[EmbeddingClassifier, History]:
    """Train an EmbeddingClassifier with early stopping on a seeded, stratified dev split of the training rows.

    The evaluation set is never touched here: the dev split comes out of `features` / `labels` only. With
    `standardise`, the training features' mean and std (+1e-6) are folded into the model.
    """
    features, labels = np.asarray(features, dtype=np.float32), np.asarray(labels)
    train_idx, dev_idx = split_indices(len(labels), labels, config.seed, test_size=dev_fraction, sort=False)
    train_idx, dev_idx = np.asarray(train_idx), np.asarray(dev_idx)
    scale = (features.mean(0), features.std(0) + 1e-6) if standardise else None
    torch.manual_seed(config.seed)
    model = EmbeddingClassifier(features.shape[1], num_classes, hidden_dim, dropout, scale)
    history = fit(
        model,
        tensor_dataset(features[train_idx], labels[train_idx]),
        tensor_dataset(features[dev_idx], labels[dev_idx]),
        config,
        num_classes=num_classes,
    )
    return model, history


def sklearn_probe(
    features,
    labels: np.ndarray,
    kind: str = "logreg",
    strength: float = 1.0,
    standardise: bool = True,
    class_weight: str | None = None,
    max_iter: int = 2000,
) -> Pipeline:
    """A fitted scikit-learn linear classifier: `logreg` (lbfgs, C=`strength`, deterministic) or `ridge`
    (alpha=`strength`), after a StandardScaler when `standardise` (dense features only)."""
    if kind == "logreg":
        model = LogisticRegression(C=strength, max_iter=max_iter, class_weight=class_weight)
    elif kind == "ridge":
        model = RidgeClassifier(alpha=strength, class_weight=class_weight)
    else:
        raise ValueError(f"unknown probe kind {kind!r}; expected 'logreg' or 'ridge'")
    steps = [StandardScaler(), model] if standardise else [model]
    return make_pipeline(*steps).fit(features, np.asarray(labels))


def decision_logits(probe: Pipeline, features) -> np.ndarray:
    """(n, classes) decision scores of a fitted probe; a binary probe's single score becomes (−s/2, s/2)."""
    scores = probe.decision_function(features)
    return np.stack([-scores, scores], axis=1) / 2 if scores.ndim == 1 else scores
