"""Log-linear blend of two classifiers' class probabilities, the weight chosen on dev: how much one model knows that
another does not. Comet blends its teacher with the TF-IDF bar: if even the best dev-chosen blend stays at the bar,
the teacher adds nothing the bag of n-grams lacks, and no amount of mixing makes it a stronger teacher."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import f1_score

BLEND_WEIGHTS = tuple(float(w) for w in np.round(np.linspace(0.0, 1.0, 11), 2))  # the weight on the first model


def log_probabilities(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of (n, k) logits, in float64."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def blend(log_p_a: np.ndarray, log_p_b: np.ndarray, weight: float) -> np.ndarray:
    """`weight` · log p_a + (1 − `weight`) · log p_b: unnormalised log-probabilities whose argmax is the blend's
    prediction (0 is model b alone, 1 is model a alone)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"blend weight must be in [0, 1], got {weight}")
    return weight * np.asarray(log_p_a, np.float64) + (1.0 - weight) * np.asarray(log_p_b, np.float64)


def choose_weight(
    dev_sets: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    num_classes: int,
    weights: Sequence[float] = BLEND_WEIGHTS,
) -> tuple[float, dict[float, float]]:
    """The weight with the highest mean macro-F1 over the dev sets (`(log_p_a, log_p_b, labels)` each, e.g. one per
    language), the smallest on ties, and every weight's mean dev macro-F1."""
    if not dev_sets:
        raise ValueError("choose_weight needs at least one dev set")
    labels = list(range(num_classes))
    scores = {
        float(w): float(
            np.mean(
                [
                    f1_score(y, blend(a, b, w).argmax(1), labels=labels, average="macro", zero_division=0)
                    for a, b, y in dev_sets
                ]
            )
        )
        for w in weights
    }
    best = max(scores.values())
    return min(w for w, s in scores.items() if s == best), scores
