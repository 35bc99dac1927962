"""The text baseline every AfriSenti study is measured against: TF-IDF of word 1–2-grams and character 2–5-grams
with class-balanced logistic regression, fitted on the training texts only.

It is the bar a learned representation has to clear (issue 14): on AfriSenti it beats a frozen English sentence
encoder by 10+ points, so MAGE's base and Comet's teacher are both judged against it in the same run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline

from workbench.methods.probe import sklearn_probe
from workbench.training import classification_metrics


class TfidfText:
    """The TF-IDF featurizer of the baseline as a fitted object: word 1–2-grams and character 2–5-grams (sublinear
    term frequency, each block L2-normalised), `fit` on training texts only, `transform` any texts to a sparse
    matrix. `tfidf_features` is `fit(train).transform(...)`."""

    def __init__(self) -> None:
        self.words = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True)
        self.chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)

    def fit(self, texts: Sequence[str]) -> TfidfText:
        self.words.fit(texts)
        self.chars.fit(texts)
        return self

    def transform(self, texts: Sequence[str]) -> csr_matrix:
        return hstack([self.words.transform(texts), self.chars.transform(texts)]).tocsr()


def tfidf_features(train_texts: Sequence[str], test_texts: Sequence[str]) -> tuple[csr_matrix, csr_matrix]:
    """Sparse TF-IDF features of word 1–2-grams and character 2–5-grams, fitted on the training texts only."""
    featurizer = TfidfText().fit(train_texts)
    return featurizer.transform(train_texts), featurizer.transform(test_texts)


def tfidf_model(train_texts: Sequence[str], train_labels: Sequence[int]) -> tuple[TfidfText, Pipeline]:
    """The fitted baseline: its featurizer and its class-balanced logistic regression."""
    featurizer = TfidfText().fit(train_texts)
    probe = sklearn_probe(
        featurizer.transform(train_texts), train_labels, kind="logreg", standardise=False, class_weight="balanced"
    )
    return featurizer, probe


def tfidf_predict(train_texts: Sequence[str], train_labels: Sequence[int], test_texts: Sequence[str]) -> np.ndarray:
    """Predicted labels of TF-IDF + class-balanced logistic regression for `test_texts`."""
    featurizer, probe = tfidf_model(train_texts, train_labels)
    return np.asarray(probe.predict(featurizer.transform(test_texts)))


def tfidf_log_probabilities(
    featurizer: TfidfText, probe: Pipeline, texts: Sequence[str], num_classes: int = 3, floor: float = 1e-12
) -> np.ndarray:
    """(n, num_classes) log-probabilities of the fitted baseline; a class absent from its training rows gets
    log(`floor`)."""
    out = np.full((len(texts), num_classes), np.log(floor))
    out[:, np.asarray(probe.classes_, int)] = np.log(
        np.clip(probe.predict_proba(featurizer.transform(texts)), floor, 1)
    )
    return out


def tfidf_baseline(
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    test_texts: Sequence[str],
    test_labels: Sequence[int],
    labels: Sequence[int] = (0, 1, 2),
) -> dict[str, float]:
    """TF-IDF + class-balanced logistic regression: its test metrics (accuracy, macro-F1, ...)."""
    predictions = tfidf_predict(train_texts, train_labels, test_texts)
    return classification_metrics(test_labels, predictions, labels=list(labels))
