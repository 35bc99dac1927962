"""MAGE: embedding-space augmentation (LiDA extended) weighted by multi-head attention, for AfriSenti.

Pipeline per language and seed (`run_language`):

1. Sentence embeddings of cleaned tweets (`workbench.encoders.embed_texts`), standardised with statistics of the
   training split only.
2. Augmenters fitted on the *training* embeddings only (sklearn style: the constructor stores parameters, `fit`
   returns self, fitted attributes end in `_`; `fit` records a fingerprint of its data that the runner checks):
   `LinearNoise` (e + u, u ~ U[low, high] per dimension), `Autoencoder` (d→32→d reconstruction),
   `DenoisingAutoencoder` (trained to undo Gaussian corruption; samples reconstruct a freshly corrupted input),
   `VariationalAutoencoder` (d→256→d, clamped log-variance; every draw decodes a new z = μ + σ·ε).
3. How augmentation is used (our reading of the paper, which does not fix it):
   - without attention (LiDA): the training set is the originals plus one augmented copy per augmenter of each
     training example, each labelled like its source; dev and test use the original embeddings;
   - with attention (MAGE): every example is the *set* of its embedding types {original, augmentations}
     (K views). Head h scores view k with a learned context vector u_h: s_hk = u_hᵀ tanh(W_h v_k + b_h),
     α_h = softmax_k(s_h) (sums to 1 per head), head output o_h = Σ_k α_hk v_k; the head outputs are stacked
     (concatenated) and aggregated by summation (scaled by 1/H so that the scale does not depend on H), then
     classified. Training views are random draws; dev/test views are the augmenters' deterministic
     `transform` (no noise, VAE mean), i.e. fitted maps applied at inference like any fitted preprocessing.
     The augmenters are never *fitted* on dev or test rows.
4. Classifiers: multinomial logistic regression (one linear layer) and an LSTM (hidden 128) that reads the
   sentence vector as a one-step sequence (a sentence embedding has no time axis; over one step the LSTM is a
   gated non-linear layer). Both train with `workbench.training.fit` (class-weighted cross-entropy, AdamW,
   early stopping on dev weighted-F1, the AfriSenti ranking metric), end to end with the attention.
5. Baselines: no augmentation (same classifiers on the originals) and TF-IDF + logistic regression on the text.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import TensorDataset

from workbench.profiles import resolve_parameters
from workbench.runtime import set_seed, torch_threads
from workbench.training import TrainConfig, classification_metrics, fit, predict

AUGMENTERS = ("linear", "ae", "dae", "vae")
# Ablation configurations: which augmenters feed a run. "mage" is the paper's set {original, linear, AE, VAE}.
CONFIGS: dict[str, tuple[str, ...]] = {
    "none": (),
    "linear": ("linear",),
    "ae": ("ae",),
    "dae": ("dae",),
    "vae": ("vae",),
    "mage": ("linear", "ae", "vae"),
    "all": ("linear", "ae", "dae", "vae"),
}
CLASSIFIERS = ("logreg", "lstm")
METRICS = ("accuracy", "macro_f1", "weighted_f1", "precision", "recall")

# Published numbers (arXiv 2502.17987, via shared/REFERENCES.md): AfriBERTa embeddings, kin/swa/tso.
PAPER_REFERENCE = {
    "baseline accuracy": 0.568,
    "best gain, accuracy points (DAE)": 3.64,
    "best gain, accuracy points (VAE)": 2.51,
    "attention gain with VAE, points": 0.40,
    "attention gain with DAE, points": 1.21,
}

_COMMON = dict(
    pooling="mean",
    max_length=128,
    cleaning=dict(lowercase=True, punctuation=True, urls=True, mentions=True, emojis=True),
    configs=list(CONFIGS),
    classifiers=list(CLASSIFIERS),
    heads=4,
    head_sweep=[2, 4, 8],
    head_sweep_config="mage",
    noise_range=[-0.1, 0.1],
    noise_sweep=[[-0.05, 0.05], [-0.1, 0.1], [-0.25, 0.25], [-0.5, 0.5], [0.0, 0.2]],
    noise_sweep_classifiers=["logreg", "lstm"],
    ae_bottleneck=32,
    dae_noise_std=0.5,
    vae_latent=256,
    vae_beta=1.0,
    attention_dim=64,
    lstm_hidden=128,
    dropout=0.1,
    weight_decay=0.01,
    monitor="weighted_f1",
    tfidf_baseline=True,
    projection_points=150,
    projections=["pca", "tsne"],
    torch_threads=1,
)
MAGE_DEFAULTS: dict[str, dict[str, object]] = {
    "smoke": {
        **_COMMON,
        "encoder": "tiny",
        "languages": ["kin"],
        "seeds": [0, 1],
        "max_rows_per_split": 30,
        "head_sweep": [2, 4],
        "noise_sweep": [[-0.1, 0.1], [-0.5, 0.5]],
        "noise_sweep_classifiers": ["logreg"],
        "epochs": 2,
        "patience": 2,
        "batch_size": 16,
        "lr": 1e-3,
        "augmenter_epochs": 2,
        "augmenter_batch_size": 16,
        "augmenter_lr": 1e-3,
        "projection_points": 12,
        "projections": ["pca"],
    },
    "quick": {
        **_COMMON,
        "encoder": "minilm",
        "languages": ["kin", "swa", "tso"],
        "seeds": [0, 1, 2],
        "max_rows_per_split": None,
        "noise_sweep_classifiers": ["logreg"],
        "epochs": 15,
        "patience": 3,
        "batch_size": 256,
        "lr": 2e-3,
        "augmenter_epochs": 20,
        "augmenter_batch_size": 128,
        "augmenter_lr": 2e-3,
    },
    "paper": {
        **_COMMON,
        "encoder": "castorini/afriberta_large",
        "languages": ["kin", "swa", "tso"],
        "seeds": [0, 1, 2, 3, 4],
        "max_rows_per_split": None,
        "epochs": 100,
        "patience": 10,
        "batch_size": 32,
        "lr": 1e-3,
        "augmenter_epochs": 100,
        "augmenter_batch_size": 32,
        "augmenter_lr": 1e-3,
    },
}


def mage_parameters(profile: str, **overrides: object) -> dict[str, object]:
    """The profile's defaults with the non-None overrides on top. A list or dict knob given as a JSON string
    (as `papermill -p languages '["hau"]'` passes it) is decoded first."""
    defaults = MAGE_DEFAULTS.get(profile, {})
    decoded = {}
    for key, value in overrides.items():
        if isinstance(value, str) and isinstance(defaults.get(key), (list, dict)):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as err:
                raise ValueError(f"parameter {key}={value!r} is not valid JSON: {err}") from None
        decoded[key] = value
    params = resolve_parameters(MAGE_DEFAULTS, profile, **decoded)
    params["noise_range"] = [float(v) for v in params["noise_range"]]
    return params


# ----------------------------------------------------------------------------------------------------------------
# Fit-data guard


class LeakageError(RuntimeError):
    """An augmenter was fitted on something other than the training embeddings."""


def embedding_fingerprint(embeddings: np.ndarray) -> str:
    """A hash of an embedding matrix's shape and float32 values: what an augmenter records about its fit data."""
    array = np.ascontiguousarray(embeddings, dtype=np.float32)
    return hashlib.sha1(str(array.shape).encode() + array.tobytes()).hexdigest()


def assert_fitted_on(augmenters: Mapping[str, EmbeddingAugmenter], train_embeddings: np.ndarray) -> None:
    """Raise `LeakageError` unless every augmenter was fitted on exactly `train_embeddings`."""
    expected = embedding_fingerprint(train_embeddings)
    for name, augmenter in augmenters.items():
        seen = getattr(augmenter, "fit_fingerprint_", None)
        if seen != expected:
            raise LeakageError(
                f"augmenter {name!r} was fitted on other data ({getattr(augmenter, 'n_fit_rows_', '?')} rows) than "
                f"the {len(train_embeddings)} training embeddings: evaluation rows must never reach an augmenter"
            )


# ----------------------------------------------------------------------------------------------------------------
# Augmenters


def _as_float_array(embeddings: np.ndarray) -> np.ndarray:
    array = np.asarray(embeddings, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-d array of embeddings (rows, dims), got shape {array.shape}")
    return array


class EmbeddingAugmenter:
    """Base class: `fit(train)` returns self; `sample(x, seed)` draws augmented copies; `transform(x)` is the
    deterministic map used at inference (no random draw)."""

    def _record_fit(self, embeddings: np.ndarray) -> np.ndarray:
        array = _as_float_array(embeddings)
        self.n_features_in_ = array.shape[1]
        self.n_fit_rows_ = array.shape[0]
        self.fit_fingerprint_ = embedding_fingerprint(array)
        return array

    def _checked(self, embeddings: np.ndarray) -> np.ndarray:
        if not hasattr(self, "fit_fingerprint_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(train_embeddings) first")
        array = _as_float_array(embeddings)
        if array.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} dimensions, got {array.shape[1]}")
        return array

    def fit(self, embeddings: np.ndarray) -> EmbeddingAugmenter:
        raise NotImplementedError

    def sample(self, embeddings: np.ndarray, seed: int = 0) -> np.ndarray:
        raise NotImplementedError

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class LinearNoise(EmbeddingAugmenter):
    """LiDA's linear augmentation: e + u with u ~ U[low, high] drawn per dimension and per draw."""

    def __init__(self, low: float = -0.1, high: float = 0.1):
        self.low, self.high = low, high

    def fit(self, embeddings: np.ndarray) -> LinearNoise:
        if self.low > self.high:
            raise ValueError(f"noise range must have low <= high, got [{self.low}, {self.high}]")
        self._record_fit(embeddings)
        return self

    def sample(self, embeddings: np.ndarray, seed: int = 0) -> np.ndarray:
        array = self._checked(embeddings)
        noise = np.random.default_rng(seed).uniform(self.low, self.high, size=array.shape)
        return (array + noise).astype(np.float32)

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        return (self._checked(embeddings) + (self.low + self.high) / 2).astype(np.float32)


class AutoencoderNet(nn.Module):
    """d → bottleneck (GELU) → d."""

    def __init__(self, dim: int, bottleneck: int = 32):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, bottleneck), nn.GELU())
        self.decoder = nn.Linear(bottleneck, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class VAENet(nn.Module):
    """d → (μ, log σ²) in `latent` dims → d. The log-variance is clamped to [logvar_min, logvar_max], so that
    exp() can neither overflow (NaN/inf gradients) nor collapse σ to exactly 0, whatever the input scale."""

    def __init__(self, dim: int, latent: int = 256, logvar_min: float = -10.0, logvar_max: float = 10.0):
        super().__init__()
        self.mean = nn.Linear(dim, latent)
        self.logvar = nn.Linear(dim, latent)
        self.decoder = nn.Sequential(nn.GELU(), nn.Linear(latent, dim))
        self.logvar_min, self.logvar_max = logvar_min, logvar_max

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean(x), self.logvar(x).clamp(self.logvar_min, self.logvar_max)

    @staticmethod
    def reparameterise(
        mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """z = μ + σ·ε, ε ~ N(0, I): a sample that gradients flow through to μ and log σ²."""
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * logvar) * eps

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reconstruction of a sampled z, μ, log σ²)."""
        mean, logvar = self.encode(x)
        return self.decoder(self.reparameterise(mean, logvar, generator)), mean, logvar


def vae_loss(
    recon: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, beta: float = 1.0
) -> torch.Tensor:
    """Mean over the batch of squared reconstruction error (summed over dims) + β·KL(q(z|x) ‖ N(0, I))."""
    reconstruction = (recon - x).pow(2).sum(-1)
    kl = -0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(-1)
    return (reconstruction + beta * kl).mean()


@dataclass
class NetTraining:
    """How an autoencoder-type augmenter trains (AdamW through `workbench.training.fit`, no early stopping)."""

    epochs: int = 25
    lr: float = 2e-3
    batch_size: int = 128
    seed: int = 0

    def config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            seed=self.seed,
            weighted_loss=False,
            progress=False,
            device="cpu",
        )


class Autoencoder(EmbeddingAugmenter):
    """d→`bottleneck`→d autoencoder trained to reconstruct the training embeddings (with `noise_std` > 0 its
    inputs are corrupted by Gaussian noise: a denoising autoencoder). The augmented copy of e is AE(e)."""

    def __init__(self, bottleneck: int = 32, noise_std: float = 0.0, training: NetTraining | None = None):
        self.bottleneck, self.noise_std, self.training = bottleneck, noise_std, training or NetTraining()

    def fit(self, embeddings: np.ndarray) -> Autoencoder:
        array = self._record_fit(embeddings)
        set_seed(self.training.seed)  # initial weights depend on the seed only, not on what ran before
        self.net_ = AutoencoderNet(array.shape[1], self.bottleneck)
        noise_std = self.noise_std

        def reconstruction_loss(model: nn.Module, batch) -> torch.Tensor:
            x, target = batch
            if noise_std > 0:
                x = x + noise_std * torch.randn_like(x)
            return (model(x) - target).pow(2).sum(-1).mean()

        data = torch.from_numpy(array)
        history = fit(self.net_, TensorDataset(data, data), None, self.training.config(), loss_fn=reconstruction_loss)
        self.train_loss_ = history.epochs[-1]["train_loss"] if history.epochs else float("nan")
        return self

    @torch.no_grad()
    def _run(self, array: np.ndarray) -> np.ndarray:
        self.net_.eval()
        return self.net_(torch.from_numpy(array)).numpy().astype(np.float32)

    def sample(self, embeddings: np.ndarray, seed: int = 0) -> np.ndarray:
        array = self._checked(embeddings)
        if self.noise_std > 0:
            array = array + np.random.default_rng(seed).normal(0, self.noise_std, array.shape).astype(np.float32)
        return self._run(array)

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        return self._run(self._checked(embeddings))


class DenoisingAutoencoder(Autoencoder):
    """An `Autoencoder` trained on Gaussian-corrupted inputs; each sample reconstructs a freshly corrupted input."""

    def __init__(self, bottleneck: int = 32, noise_std: float = 0.5, training: NetTraining | None = None):
        super().__init__(bottleneck=bottleneck, noise_std=noise_std, training=training)


class VariationalAutoencoder(EmbeddingAugmenter):
    """d→`latent`→d VAE (reconstruction + β·KL); every `sample` decodes a fresh z, `transform` decodes μ."""

    def __init__(self, latent: int = 256, beta: float = 1.0, training: NetTraining | None = None):
        self.latent, self.beta, self.training = latent, beta, training or NetTraining()

    def fit(self, embeddings: np.ndarray) -> VariationalAutoencoder:
        array = self._record_fit(embeddings)
        set_seed(self.training.seed)
        self.net_ = VAENet(array.shape[1], self.latent)
        beta = self.beta

        def loss(model: nn.Module, batch) -> torch.Tensor:
            x, _ = batch
            recon, mean, logvar = model(x)
            return vae_loss(recon, x, mean, logvar, beta)

        data = torch.from_numpy(array)
        history = fit(self.net_, TensorDataset(data, data), None, self.training.config(), loss_fn=loss)
        self.train_loss_ = history.epochs[-1]["train_loss"] if history.epochs else float("nan")
        return self

    @torch.no_grad()
    def sample(self, embeddings: np.ndarray, seed: int = 0) -> np.ndarray:
        array = self._checked(embeddings)
        self.net_.eval()
        generator = torch.Generator().manual_seed(seed)
        recon, _, _ = self.net_(torch.from_numpy(array), generator)
        return recon.numpy().astype(np.float32)

    @torch.no_grad()
    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        array = self._checked(embeddings)
        self.net_.eval()
        mean, _ = self.net_.encode(torch.from_numpy(array))
        return self.net_.decoder(mean).numpy().astype(np.float32)


def make_augmenter(name: str, params: Mapping[str, object], seed: int) -> EmbeddingAugmenter:
    """An unfitted augmenter by name (`linear`, `ae`, `dae`, `vae`) with the run's parameters."""
    training = NetTraining(
        epochs=int(params["augmenter_epochs"]),
        lr=float(params["augmenter_lr"]),
        batch_size=int(params["augmenter_batch_size"]),
        seed=seed,
    )
    if name == "linear":
        low, high = params["noise_range"]
        return LinearNoise(float(low), float(high))
    if name == "ae":
        return Autoencoder(int(params["ae_bottleneck"]), training=training)
    if name == "dae":
        return DenoisingAutoencoder(int(params["ae_bottleneck"]), float(params["dae_noise_std"]), training=training)
    if name == "vae":
        return VariationalAutoencoder(int(params["vae_latent"]), float(params["vae_beta"]), training=training)
    raise ValueError(f"unknown augmenter {name!r}; expected one of {AUGMENTERS}")


def fit_augmenters(
    names: Sequence[str], train_embeddings: np.ndarray, params: Mapping[str, object], seed: int
) -> dict[str, EmbeddingAugmenter]:
    """Fit each named augmenter on the training embeddings (and nothing else), then check that it was."""
    augmenters = {name: make_augmenter(name, params, seed).fit(train_embeddings) for name in names}
    assert_fitted_on(augmenters, train_embeddings)
    return augmenters


def build_views(
    embeddings: np.ndarray, augmenters: Sequence[EmbeddingAugmenter], *, sample: bool, seed: int = 0
) -> np.ndarray:
    """(n, 1 + len(augmenters), d): each row's original embedding followed by its augmentations (random draws
    when `sample`, else the deterministic transforms)."""
    views = [np.asarray(embeddings, np.float32)]
    for i, augmenter in enumerate(augmenters):
        views.append(augmenter.sample(embeddings, seed=seed * 1000 + i) if sample else augmenter.transform(embeddings))
    return np.stack(views, axis=1)


# ----------------------------------------------------------------------------------------------------------------
# Attention weighting and classifiers


class ViewAttention(nn.Module):
    """Multi-head attention over a set of K embeddings of one example, one learned context vector per head.

    s_hk = u_hᵀ tanh(W_h v_k + b_h), α_h = softmax_k(s_h), o_h = Σ_k α_hk v_k. Returns the head outputs
    (n, H, d) and the weights (n, H, K), which sum to 1 over k for every head."""

    def __init__(self, dim: int, num_heads: int = 4, attention_dim: int = 64):
        super().__init__()
        self.num_heads, self.attention_dim = num_heads, attention_dim
        self.project = nn.Linear(dim, num_heads * attention_dim)
        self.context = nn.Parameter(torch.randn(num_heads, attention_dim) / attention_dim**0.5)

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, k, _ = views.shape
        keys = torch.tanh(self.project(views)).view(n, k, self.num_heads, self.attention_dim)
        scores = torch.einsum("nkha,ha->nhk", keys, self.context)
        weights = scores.softmax(dim=-1)
        return torch.einsum("nhk,nkd->nhd", weights, views), weights


class MageClassifier(nn.Module):
    """Views (n, K, d) → logits. With `heads` > 0 the views are attention-weighted and the head outputs summed;
    with `heads` = 0 the model reads the first view only (K must be 1). Then logistic regression or LSTM."""

    def __init__(
        self,
        dim: int,
        num_classes: int = 3,
        classifier: str = "lstm",
        heads: int = 0,
        attention_dim: int = 64,
        lstm_hidden: int = 128,
        dropout: float = 0.1,
    ):
        super().__init__()
        if classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {CLASSIFIERS}, not {classifier!r}")
        self.classifier, self.heads = classifier, heads
        self.attention = ViewAttention(dim, heads, attention_dim) if heads else None
        if classifier == "lstm":
            self.lstm = nn.LSTM(dim, lstm_hidden, batch_first=True)
            self.dropout = nn.Dropout(dropout)
            self.output = nn.Linear(lstm_hidden, num_classes)
        else:
            self.output = nn.Linear(dim, num_classes)

    def pool(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The sentence vector the classifier reads (n, d), and the attention weights (n, H, K) if any."""
        if self.attention is None:
            if views.shape[1] != 1:
                raise ValueError(f"without attention the model reads one view per row, got {views.shape[1]}")
            return views[:, 0], None
        head_outputs, weights = self.attention(views)
        return head_outputs.sum(dim=1) / self.heads, weights

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        pooled, _ = self.pool(views)
        if self.classifier == "lstm":
            _, (hidden, _) = self.lstm(pooled.unsqueeze(1))
            return self.output(self.dropout(hidden[-1]))
        return self.output(pooled)

    @torch.no_grad()
    def attention_weights(self, views: torch.Tensor) -> torch.Tensor:
        """(n, H, K) attention weights for a batch of views (eval mode)."""
        if self.attention is None:
            raise ValueError("this model has no attention")
        self.eval()
        return self.attention(views)[1]


# ----------------------------------------------------------------------------------------------------------------
# Experiments


@dataclass(frozen=True)
class Experiment:
    """One classifier run: which augmenters, which classifier, with or without attention (heads), which noise."""

    study: str
    config: str
    classifier: str
    heads: int = 0
    noise_range: tuple[float, float] | None = None

    @property
    def attention(self) -> bool:
        return self.heads > 0

    @property
    def augmenters(self) -> tuple[str, ...]:
        return CONFIGS[self.config]


def plan_experiments(params: Mapping[str, object]) -> list[Experiment]:
    """Ablation (every config × classifier, with and without attention), heads sweep, linear-noise sweep."""
    heads = int(params["heads"])
    noise = tuple(float(v) for v in params["noise_range"])
    plan = []
    for config in params["configs"]:
        if config not in CONFIGS:
            raise ValueError(f"unknown config {config!r}; expected some of {list(CONFIGS)}")
        for classifier in params["classifiers"]:
            plan.append(Experiment("ablation", config, classifier, 0, noise))
            if CONFIGS[config]:
                plan.append(Experiment("ablation", config, classifier, heads, noise))
    for h in params["head_sweep"]:
        if int(h) != heads:
            plan += [Experiment("heads", params["head_sweep_config"], c, int(h), noise) for c in params["classifiers"]]
    for low, high in params["noise_sweep"]:
        if (float(low), float(high)) != noise:
            rng = (float(low), float(high))
            plan += [Experiment("noise", "linear", c, 0, rng) for c in params["noise_sweep_classifiers"]]
    return plan


@dataclass
class EmbeddedSplits:
    """One language's embeddings and labels per split, plus the cleaned texts (for the TF-IDF baseline)."""

    language: str
    train: np.ndarray
    train_labels: np.ndarray
    dev: np.ndarray
    dev_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    train_texts: list[str] = field(default_factory=list)
    test_texts: list[str] = field(default_factory=list)
    label_names: list[str] = field(default_factory=lambda: ["negative", "neutral", "positive"])


@dataclass
class LanguageRun:
    """Metric rows of every experiment and seed, plus what the figures need from the first seed."""

    rows: list[dict[str, object]]
    projection: dict[str, np.ndarray]  # view name -> (m, d) standardised embeddings of a train subsample
    projection_labels: np.ndarray
    attention: dict[str, np.ndarray]  # classifier -> (n_test, H, K) weights of the head-sweep config
    attention_views: list[str]


def _train_and_score(
    experiment: Experiment,
    data: dict[str, np.ndarray],
    augmenters: Sequence[EmbeddingAugmenter],
    params: Mapping[str, object],
    seed: int,
) -> tuple[dict[str, object], MageClassifier, np.ndarray]:
    """Build the training set for one experiment, train, and score on test; returns (row, model, test views)."""
    train, labels = data["train"], data["train_labels"]
    if experiment.attention:
        train_views = build_views(train, augmenters, sample=True, seed=seed)
        dev_views = build_views(data["dev"], augmenters, sample=False)
        test_views = build_views(data["test"], augmenters, sample=False)
        train_labels = labels
    else:  # LiDA: originals plus one labelled copy per augmenter
        copies = [train] + [a.sample(train, seed=seed * 1000 + i) for i, a in enumerate(augmenters)]
        train_views = np.concatenate(copies)[:, None, :]
        train_labels = np.tile(labels, len(copies))
        dev_views, test_views = data["dev"][:, None, :], data["test"][:, None, :]
    set_seed(seed)
    model = MageClassifier(
        train.shape[1],
        num_classes=3,
        classifier=experiment.classifier,
        heads=experiment.heads,
        attention_dim=int(params["attention_dim"]),
        lstm_hidden=int(params["lstm_hidden"]),
        dropout=float(params["dropout"]),
    )
    config = TrainConfig(
        epochs=int(params["epochs"]),
        lr=float(params["lr"]),
        batch_size=int(params["batch_size"]),
        weight_decay=float(params["weight_decay"]),
        patience=int(params["patience"]),
        seed=seed,
        monitor=str(params["monitor"]),
        progress=False,
        device="cpu",
    )

    def dataset(views: np.ndarray, y: np.ndarray) -> TensorDataset:
        return TensorDataset(torch.from_numpy(np.array(views, np.float32)), torch.from_numpy(np.array(y, np.int64)))

    start = time.perf_counter()
    history = fit(
        model, dataset(train_views, train_labels), dataset(dev_views, data["dev_labels"]), config, num_classes=3
    )
    logits = predict(model, dataset(test_views, data["test_labels"]))
    row = {
        "study": experiment.study,
        "config": experiment.config,
        "classifier": experiment.classifier,
        "attention": experiment.attention,
        "heads": experiment.heads,
        "noise_low": experiment.noise_range[0] if "linear" in experiment.augmenters else None,
        "noise_high": experiment.noise_range[1] if "linear" in experiment.augmenters else None,
        **classification_metrics(data["test_labels"], logits.argmax(-1), labels=[0, 1, 2]),
        "train_rows": len(train_views),
        "views": train_views.shape[1] if experiment.attention else 1,
        "best_epoch": history.best_epoch,
        "fit_seconds": time.perf_counter() - start,
    }
    return row, model, test_views


def tfidf_baseline(train_texts: Sequence[str], train_labels, test_texts: Sequence[str], test_labels) -> dict:
    """TF-IDF (word 1–2-grams and character 2–5-grams) + class-balanced logistic regression: the text baseline."""
    from scipy.sparse import hstack

    words = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)
    train_features = hstack([words.fit_transform(train_texts), chars.fit_transform(train_texts)]).tocsr()
    test_features = hstack([words.transform(test_texts), chars.transform(test_texts)]).tocsr()
    model = LogisticRegression(max_iter=2000, class_weight="balanced", C=1.0)
    model.fit(train_features, np.asarray(train_labels))
    return classification_metrics(test_labels, model.predict(test_features), labels=[0, 1, 2])


def _tfidf_row(splits: EmbeddedSplits) -> dict[str, object]:
    start = time.perf_counter()
    metrics = tfidf_baseline(splits.train_texts, splits.train_labels, splits.test_texts, splits.test_labels)
    return {
        "study": "baseline",
        "config": "tfidf",
        "classifier": "tfidf_logreg",
        "attention": False,
        "heads": 0,
        "noise_low": None,
        "noise_high": None,
        **metrics,
        "train_rows": len(splits.train_texts),
        "views": 1,
        "best_epoch": -1,
        "fit_seconds": time.perf_counter() - start,
    }


def _stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of about `size` rows with every label represented (for projections)."""
    rng = np.random.default_rng(seed)
    if len(labels) <= size:
        return np.arange(len(labels))
    picks = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        share = max(1, round(size * len(members) / len(labels)))
        picks.append(rng.choice(members, min(share, len(members)), replace=False))
    return np.sort(np.concatenate(picks))


def run_language(
    splits: EmbeddedSplits, params: Mapping[str, object], seeds: Sequence[int], progress: bool = True
) -> LanguageRun:
    """Every planned experiment for one language and every seed; augmenters are fitted once per seed, on the
    standardised training embeddings only."""
    with torch_threads(params.get("torch_threads")):
        return _run_language(splits, params, seeds, progress)


def _run_language(
    splits: EmbeddedSplits, params: Mapping[str, object], seeds: Sequence[int], progress: bool
) -> LanguageRun:
    from tqdm.auto import tqdm

    plan = plan_experiments(params)
    needed = sorted({name for e in plan for name in e.augmenters}, key=AUGMENTERS.index)
    rows: list[dict[str, object]] = []
    projection: dict[str, np.ndarray] = {}
    attention: dict[str, np.ndarray] = {}
    head_config_views = ["original", *CONFIGS[str(params["head_sweep_config"])]]
    projection_labels = np.zeros(0, np.int64)
    bar = tqdm(total=len(seeds) * (len(plan) + 1), desc=f"MAGE {splits.language}", disable=not progress)
    for seed in seeds:
        scaler = StandardScaler().fit(splits.train)
        data = {
            "train": scaler.transform(splits.train).astype(np.float32),
            "dev": scaler.transform(splits.dev).astype(np.float32),
            "test": scaler.transform(splits.test).astype(np.float32),
            "train_labels": np.asarray(splits.train_labels, np.int64),
            "dev_labels": np.asarray(splits.dev_labels, np.int64),
            "test_labels": np.asarray(splits.test_labels, np.int64),
        }
        augmenters = fit_augmenters(needed, data["train"], params, seed)
        base = {"language": splits.language, "seed": seed}
        for experiment in plan:
            chosen = []
            for name in experiment.augmenters:
                if name == "linear" and experiment.noise_range != tuple(params["noise_range"]):
                    chosen.append(LinearNoise(*experiment.noise_range).fit(data["train"]))
                    assert_fitted_on({"linear": chosen[-1]}, data["train"])
                else:
                    chosen.append(augmenters[name])
            row, model, test_views = _train_and_score(experiment, data, chosen, params, seed)
            rows.append({**base, **row})
            if (
                seed == seeds[0]
                and experiment.study == "ablation"
                and experiment.attention
                and experiment.config == params["head_sweep_config"]
            ):
                weights = model.attention_weights(torch.from_numpy(test_views))
                attention[experiment.classifier] = weights.numpy()
            bar.update()
        if params.get("tfidf_baseline", True) and splits.train_texts and seed == seeds[0]:
            rows.append({**base, **_tfidf_row(splits)})  # deterministic: one run stands for every seed
        bar.update()
        if seed == seeds[0]:
            subset = _stratified_subset(data["train_labels"], int(params["projection_points"]), seed)
            originals = data["train"][subset]
            projection = {"original": originals}
            for i, name in enumerate(needed):
                projection[name] = augmenters[name].sample(originals, seed=10_000 + i)
            projection_labels = data["train_labels"][subset]
    bar.close()
    return LanguageRun(rows, projection, projection_labels, attention, head_config_views)


# ----------------------------------------------------------------------------------------------------------------
# Data preparation (cleaning, de-duplication, embedding)


def prepare_language(
    language: str, params: Mapping[str, object], encoder=None, seed: int = 0
) -> tuple[EmbeddedSplits, list[dict[str, object]]]:
    """Load a language's official splits, clean the tweets, drop training rows whose cleaned text is in dev or
    test, optionally subsample (smoke), embed, and describe the data for results.json."""
    from workbench.data import load_afrisenti, remove_overlap
    from workbench.encoders import embed_texts
    from workbench.preprocess import clean_tweets
    from workbench.results import describe_data

    frames = {}
    for split in ("train", "dev", "test"):
        frame = load_afrisenti(language, split)
        if frame.empty:
            raise ValueError(f"AfriSenti {language!r} has no {split} rows (orm and tir have no training data)")
        limit = params.get("max_rows_per_split")
        if limit:
            frame = _subsample_frame(frame, int(limit), seed)
        cleaned = frame.copy()
        cleaned.attrs = dict(frame.attrs)
        cleaned["raw_text"] = frame["text"]
        cleaned["text"] = clean_tweets(frame["text"], dict(params["cleaning"]))
        frames[split] = cleaned
    frames["train"], removed = remove_overlap(frames["train"], frames["dev"], frames["test"])
    embed = {
        split: embed_texts(
            list(f["text"]),
            encoder if encoder is not None else str(params["encoder"]),
            pooling=str(params["pooling"]),
            max_length=int(params["max_length"]),
            progress=False,
        )
        for split, f in frames.items()
    }
    splits = EmbeddedSplits(
        language=language,
        train=embed["train"],
        train_labels=frames["train"]["label"].to_numpy(np.int64),
        dev=embed["dev"],
        dev_labels=frames["dev"]["label"].to_numpy(np.int64),
        test=embed["test"],
        test_labels=frames["test"]["label"].to_numpy(np.int64),
        train_texts=list(frames["train"]["text"]),
        test_texts=list(frames["test"]["text"]),
        label_names=list(frames["train"].attrs.get("label_names", ["negative", "neutral", "positive"])),
    )
    described = [
        describe_data(
            f"afrisenti/{language}/{split}",
            frame,
            empty_after_cleaning=int((frame["text"] == "").sum()),
            **({"removed_overlap_with_dev_test": removed} if split == "train" else {}),
        )
        for split, frame in frames.items()
    ]
    return splits, described


def _subsample_frame(frame: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """A seeded stratified subset of at most `limit` rows (smoke runs), keeping every label present."""
    if len(frame) <= limit:
        return frame
    index = _stratified_subset(frame["label"].to_numpy(), limit, seed)
    out = frame.iloc[index].reset_index(drop=True)
    out.attrs = {**frame.attrs, "subsampled_from": len(frame)}
    return out


# ----------------------------------------------------------------------------------------------------------------
# Summaries


def summarise(rows: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Mean and std over seeds for every (language, study, config, classifier, attention, heads, noise) group."""
    keys = ["language", "study", "config", "classifier", "attention", "heads", "noise_low", "noise_high"]
    grouped = rows.groupby(keys, dropna=False, sort=False)[list(metrics)]
    mean, std = grouped.mean(), grouped.std(ddof=1).fillna(0.0)
    out = mean.add_suffix("_mean").join(std.add_suffix("_std"))
    out["seeds"] = grouped.size()
    return out.reset_index()


def gains_over_baseline(rows: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Each ablation configuration against the no-augmentation baseline of the same classifier and language, in
    points of `metric`. `beyond_spread` is True only when the gain is larger than the two seed stds added."""
    summary = summarise(rows[rows["study"] == "ablation"], [metric])
    base = summary[summary["config"] == "none"].set_index(["language", "classifier"])
    out = summary[summary["config"] != "none"].copy()
    key = list(zip(out["language"], out["classifier"]))
    out["baseline_mean"] = [base.loc[k, f"{metric}_mean"] for k in key]
    out["baseline_std"] = [base.loc[k, f"{metric}_std"] for k in key]
    out["gain_points"] = 100 * (out[f"{metric}_mean"] - out["baseline_mean"])
    out["spread_points"] = 100 * (out[f"{metric}_std"] + out["baseline_std"])
    out["beyond_spread"] = out["gain_points"] > out["spread_points"]
    columns = ["language", "classifier", "config", "attention", "heads", f"{metric}_mean", f"{metric}_std"]
    return out[columns + ["baseline_mean", "baseline_std", "gain_points", "spread_points", "beyond_spread"]]


def attention_effect(rows: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """For every augmented configuration: with attention minus without, in points, and whether that difference
    is larger than the two seed stds added."""
    summary = summarise(rows[rows["study"] == "ablation"], [metric])
    keys = ["language", "classifier", "config"]
    plain = summary[~summary["attention"]].set_index(keys)
    attended = summary[summary["attention"]].set_index(keys)
    joined = attended.join(plain, lsuffix="_attention", rsuffix="_plain", how="inner")
    out = pd.DataFrame(
        {
            "with_attention": joined[f"{metric}_mean_attention"],
            "without_attention": joined[f"{metric}_mean_plain"],
            "effect_points": 100 * (joined[f"{metric}_mean_attention"] - joined[f"{metric}_mean_plain"]),
            "spread_points": 100 * (joined[f"{metric}_std_attention"] + joined[f"{metric}_std_plain"]),
        }
    )
    out["beyond_spread"] = out["effect_points"].abs() > out["spread_points"]
    return out.reset_index()


def paper_comparison(rows: pd.DataFrame) -> pd.DataFrame:
    """The paper's headline numbers beside ours (mean over languages and classifiers of the seed means)."""
    gains = gains_over_baseline(rows)
    effect = attention_effect(rows)
    plain = gains[~gains["attention"]]
    base = summarise(rows[(rows["study"] == "ablation") & (rows["config"] == "none")], ["accuracy"])
    ours = {
        "baseline accuracy": base["accuracy_mean"].mean(),
        "best gain, accuracy points (DAE)": plain[plain["config"] == "dae"]["gain_points"].max(),
        "best gain, accuracy points (VAE)": plain[plain["config"] == "vae"]["gain_points"].max(),
        "attention gain with VAE, points": effect[effect["config"] == "vae"]["effect_points"].mean(),
        "attention gain with DAE, points": effect[effect["config"] == "dae"]["effect_points"].mean(),
    }
    return pd.DataFrame({"paper (AfriBERTa)": PAPER_REFERENCE, "ours": ours})


def mage_headline(rows: pd.DataFrame) -> dict[str, object]:
    """The numbers a report index shows: mean baseline accuracy, the best augmented gain (points) and whether it
    is beyond the seed spread, and the TF-IDF baseline's accuracy."""
    gains = gains_over_baseline(rows)
    best = gains.sort_values("gain_points", ascending=False).iloc[0]
    base = rows[(rows["study"] == "ablation") & (rows["config"] == "none")]
    tfidf = rows[rows["config"] == "tfidf"]
    return {
        "baseline_accuracy": float(base["accuracy"].mean()),
        "baseline_weighted_f1": float(base["weighted_f1"].mean()),
        "best_gain_points": float(best["gain_points"]),
        "best_gain_setting": f"{best['language']}/{best['classifier']}/{best['config']}"
        + (f"+attention({best['heads']})" if best["attention"] else ""),
        "best_gain_beyond_spread": bool(best["beyond_spread"]),
        "gains_beyond_spread": int(gains["beyond_spread"].sum()),
        "settings_compared": len(gains),
        "tfidf_accuracy": float(tfidf["accuracy"].mean()) if len(tfidf) else None,
    }
