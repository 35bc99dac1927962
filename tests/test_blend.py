"""The log-linear blend of two classifiers and its dev-chosen weight (workbench.methods.blend)."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from workbench.methods.blend import BLEND_WEIGHTS, blend, choose_weight, log_probabilities


def _one_hot_log(labels, k=3, confidence=0.9):
    p = np.full((len(labels), k), (1 - confidence) / (k - 1))
    p[np.arange(len(labels)), labels] = confidence
    return np.log(p)


def test_log_probabilities_are_a_log_softmax():
    logits = np.array([[2.0, 0.0, -1.0], [1000.0, 999.0, 0.0]])  # the second row would overflow a naive softmax
    out = log_probabilities(logits)
    np.testing.assert_allclose(np.exp(out).sum(1), 1.0)
    np.testing.assert_allclose(out[0], logits[0] - np.log(np.exp(logits[0]).sum()))


def test_blend_ends_are_each_model_alone_and_bad_weights_fail():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    np.testing.assert_allclose(blend(a, b, 1.0), a)
    np.testing.assert_allclose(blend(a, b, 0.0), b)
    np.testing.assert_allclose(blend(a, b, 0.25), 0.25 * a + 0.75 * b)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        blend(a, b, 1.5)


def test_choose_weight_follows_the_model_that_knows_the_labels():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    knows, guesses = _one_hot_log(y), _one_hot_log(rng.integers(0, 3, 300))
    weight, scores = choose_weight([(knows, guesses, y)], 3)
    assert set(scores) == set(BLEND_WEIGHTS) and weight > 0.5 and scores[weight] == 1.0
    assert weight == min(w for w, s in scores.items() if s == 1.0)  # the smallest of the tied weights
    weight, _ = choose_weight([(guesses, knows, y)], 3)
    assert weight < 0.5
    manual = f1_score(y, blend(knows, guesses, 0.3).argmax(1), average="macro")
    assert scores[0.3] == pytest.approx(manual)


def test_choose_weight_averages_over_dev_sets_and_needs_one():
    rng = np.random.default_rng(2)
    y1, y2 = rng.integers(0, 3, 100), rng.integers(0, 3, 100)
    sets = [(_one_hot_log(y1), _one_hot_log(rng.integers(0, 3, 100)), y1), (_one_hot_log(y2), _one_hot_log(y2), y2)]
    _, scores = choose_weight(sets, 3)
    first, _ = choose_weight(sets[:1], 3)
    assert scores[first] == pytest.approx(
        np.mean([f1_score(y, blend(a, b, first).argmax(1), average="macro") for a, b, y in sets])
    )
    with pytest.raises(ValueError, match="at least one"):
        choose_weight([], 3)


def test_tfidf_log_probabilities_cover_every_class_and_match_the_baselines_predictions():
    from workbench.methods.tfidf import tfidf_log_probabilities, tfidf_model, tfidf_predict

    train = ["good great fine", "bad awful poor", "good fine nice", "awful bad sad"] * 3
    labels = [0, 2, 0, 2] * 3  # class 1 never seen in training
    test = ["great nice", "poor sad", "fine awful"]
    featurizer, probe = tfidf_model(train, labels)
    out = tfidf_log_probabilities(featurizer, probe, test, num_classes=3)
    assert out.shape == (3, 3) and (out[:, 1] == np.log(1e-12)).all()
    np.testing.assert_allclose(np.exp(out[:, [0, 2]]).sum(1), 1.0, atol=1e-9)
    assert (np.array([0, 2])[out[:, [0, 2]].argmax(1)] == tfidf_predict(train, labels, test)).all()
