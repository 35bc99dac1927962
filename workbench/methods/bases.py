"""Sentence representations ("bases") of short texts for the AfriSenti studies, and choosing one on dev.

A base maps each text to a dense vector; MAGE augments and classifies those vectors. Candidates (`BASES`):

- `frozen`: mean-pooled states of a frozen pretrained encoder (the caller computes them: `workbench.encoders`);
- `svd`: the TF-IDF features of the text baseline (`workbench.methods.tfidf.TfidfText`) reduced by truncated SVD
  (`TfidfSvd`), both fitted on the training texts only. With L2-regularised logistic regression an SVD that keeps
  the full rank of the training matrix loses nothing against TF-IDF + LR: the optimal weights lie in the span of the
  training rows, and the SVD is an orthonormal basis of that span (`components=None`, computed exactly through the
  training rows' Gram matrix). Fewer components trade accuracy for smaller vectors;
- `finetuned`: the encoder fine-tuned end to end on the training split (`workbench.methods.finetune`), its
  mean-pooled final states as the vector (`finetune.classifier_logits(..., output='pooled')`);
- `a+b`: the concatenation of bases, each block standardised with training statistics (`concatenate`).

`probe_metrics` scores a base the way the TF-IDF bar is scored (class-balanced logistic regression); `select_base`
picks the candidate with the best dev score: test rows never take part in the choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.decomposition import TruncatedSVD

from workbench.methods.probe import sklearn_probe
from workbench.methods.tfidf import TfidfText
from workbench.training import classification_metrics

ATOMIC_BASES = ("frozen", "svd", "finetuned")
BASES = ("frozen", "svd", "svd+frozen", "finetuned", "svd+finetuned")


def base_parts(name: str) -> list[str]:
    """The atomic bases of a (possibly concatenated) base name: `svd+frozen` -> [svd, frozen]; unknown parts raise."""
    parts = [part.strip() for part in str(name).split("+")]
    unknown = [part for part in parts if part not in ATOMIC_BASES]
    if unknown or not parts:
        raise ValueError(f"unknown base {name!r}: parts must be among {', '.join(ATOMIC_BASES)}, joined by '+'")
    return parts


class TfidfSvd:
    """TF-IDF (word 1–2 + char 2–5 grams) reduced to a dense vector by truncated SVD, fitted on training texts only.

    `components=None` keeps the full rank r of the training matrix X (n × F): the eigenvectors U of the Gram matrix
    X Xᵀ = U Λ Uᵀ give the right singular vectors V = Xᵀ U Λ^{-1/2}, and a text x maps to x V = (x Xᵀ) U Λ^{-1/2}
    (exact, and never forms the dense F × r matrix V). A number of components uses scikit-learn's randomized
    `TruncatedSVD` (seeded). Either way `transform` is x ↦ x V with orthonormal V, so inner products within the span
    of the training rows are kept. Fitted attributes: `featurizer_`, `n_components_`, `n_fit_rows_`."""

    def __init__(self, components: int | None = 256, seed: int = 0, rank_tolerance: float = 1e-10):
        self.components, self.seed, self.rank_tolerance = components, seed, rank_tolerance

    def fit(self, texts: Sequence[str]) -> TfidfSvd:
        self.featurizer_ = TfidfText().fit(texts)
        matrix = self.featurizer_.transform(texts)
        self.n_fit_rows_ = matrix.shape[0]
        full = self.components is None or int(self.components) >= min(matrix.shape) - 1
        if full:
            gram = (matrix @ matrix.T).toarray().astype(np.float64)
            values, vectors = np.linalg.eigh(gram)
            keep = values > self.rank_tolerance * max(float(values.max()), 1e-300)
            order = np.argsort(values[keep])[::-1]
            self.train_matrix_ = matrix
            self.projection_ = vectors[:, keep][:, order] / np.sqrt(values[keep][order])
            self.svd_ = None
            self.n_components_ = int(keep.sum())
        else:
            self.svd_ = TruncatedSVD(int(self.components), algorithm="randomized", random_state=self.seed)
            self.svd_.fit(matrix)
            self.n_components_ = int(self.components)
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        return self.transform_matrix(self.featurizer_.transform(texts))

    def transform_matrix(self, matrix: csr_matrix) -> np.ndarray:
        """The dense vectors of already featurized rows (`featurizer_.transform`)."""
        if self.svd_ is not None:
            return self.svd_.transform(matrix).astype(np.float32)
        kernel = (matrix @ self.train_matrix_.T).toarray()
        return (kernel @ self.projection_).astype(np.float32)

    def fit_transform(self, texts: Sequence[str]) -> np.ndarray:
        return self.fit(texts).transform(texts)


def svd_vectors(
    train_texts: Sequence[str], other_texts: Mapping[str, Sequence[str]], components: int | None, seed: int = 0
) -> dict[str, np.ndarray]:
    """`TfidfSvd` fitted on `train_texts`: the vectors of `train` and of every split in `other_texts`."""
    svd = TfidfSvd(components, seed).fit(train_texts)
    return {"train": svd.transform(train_texts), **{split: svd.transform(t) for split, t in other_texts.items()}}


def concatenate(blocks: Sequence[Mapping[str, np.ndarray]], train: str = "train") -> dict[str, np.ndarray]:
    """The concatenation of several bases' vectors per split, each block standardised per dimension with its
    training rows' mean and std (so that no block dominates through its scale)."""
    out: dict[str, list[np.ndarray]] = {}
    for block in blocks:
        mean = block[train].mean(0)
        std = block[train].std(0)
        std = np.where(std > 0, std, 1.0)
        for split, vectors in block.items():
            out.setdefault(split, []).append((vectors - mean) / std)
    return {split: np.hstack(parts).astype(np.float32) for split, parts in out.items()}


def finetuned_vectors(
    encoder: str,
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    dev_texts: Sequence[str],
    dev_labels: Sequence[int],
    other_texts: Mapping[str, Sequence[str]],
    config,
    num_classes: int = 3,
    max_length: int = 128,
) -> tuple[dict[str, np.ndarray], object]:
    """Fine-tune `encoder` end to end on the training split (early stopping on dev), then the mean-pooled states of
    the fine-tuned encoder for `train`, `dev` and every split in `other_texts`. Returns (vectors, training history)."""
    from workbench.methods.finetune import classifier_logits, finetune_classifier

    model, tokenizer, history = finetune_classifier(
        encoder, train_texts, train_labels, dev_texts, dev_labels, num_classes, config, max_length=max_length
    )
    texts = {"train": train_texts, "dev": dev_texts, **other_texts}
    vectors = {split: classifier_logits(model, tokenizer, t, max_length, output="pooled") for split, t in texts.items()}
    return vectors, history


def probe_metrics(
    vectors: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    splits: Sequence[str] = ("dev", "test"),
    label_ids: Sequence[int] = (0, 1, 2),
    strength: float = 1.0,
) -> dict[str, dict[str, float]]:
    """A base scored like the TF-IDF bar: class-balanced logistic regression (C=`strength`, no rescaling: the vectors
    are used as given) fitted on `vectors['train']`, its metrics on each split in `splits`."""
    probe = sklearn_probe(
        vectors["train"], labels["train"], kind="logreg", strength=strength, standardise=False, class_weight="balanced"
    )
    return {
        split: classification_metrics(labels[split], probe.predict(vectors[split]), labels=list(label_ids))
        for split in splits
    }


def select_base(dev_scores: Mapping[str, float]) -> str:
    """The candidate with the highest dev score (ties: the first listed). Only dev scores go in: the test split
    never takes part in choosing a base."""
    if not dev_scores:
        raise ValueError("no candidate bases to choose from")
    names = list(dev_scores)
    return max(names, key=lambda name: (float(dev_scores[name]), -names.index(name)))
