"""MAGE: embedding-space augmentation (LiDA extended) weighted by multi-head attention over embedding types.

Augmenters follow scikit-learn: the constructor stores parameters, `fit(train_embeddings)` returns self, fitted
attributes end in `_`, and `fit` records a fingerprint of its data so that `assert_fitted_on` can prove that no
evaluation row reached an augmenter. They are registered as kind `augmenter`:

- `linear` (`LinearNoise`): e + u, u ~ U[low, high] per dimension;
- `ae` (`Autoencoder`): d→bottleneck→d reconstruction; the augmented copy of e is AE(e);
- `dae` (`DenoisingAutoencoder`): trained to undo Gaussian corruption; each sample reconstructs a freshly
  corrupted input;
- `vae` (`VariationalAutoencoder`): d→latent→d with a clamped log-variance; every draw decodes a new z = μ + σ·ε.

How augmentation is used (our reading of the paper, which does not fix it):

- without attention (LiDA): the training set is the originals plus one augmented copy per augmenter of each training
  example, labelled like its source; dev and test use the original embeddings (`training_views`, `evaluation_views`);
- with attention (MAGE): every example is the *set* of its K embedding types {original, augmentations}
  (`build_views`). Head h scores view k with a learned context vector u_h: s_hk = u_hᵀ tanh(W_h v_k + b_h),
  α_h = softmax_k(s_h), o_h = Σ_k α_hk v_k; the head outputs are aggregated (`HEAD_AGGREGATIONS`: `mean`, Σ_h o_h / H;
  `sum`, Σ_h o_h; `concat`, [o_1; …; o_H], i.e. the heads' weighted views concatenated, then summed over the views:
  the paper's wording, an H·d vector) and classified (`ViewAttention`, `MageClassifier`). Training views are random
  draws; dev/test views are the augmenters' deterministic `transform` (no noise, VAE mean): fitted maps applied at
  inference like any fitted preprocessing.

Weighting arms (`WEIGHTINGS`), so that the attention comparison does not mix weighting with data volume: `none`
(LiDA copies, one view per row), `learned` (the attention above) and `uniform` (the same K-view sets, every view
weighted 1/K: what attention adds over plain averaging). With `copies` > 1 the set arms train on that many random
view sets per example (1 + augmenters of them: as many rows as the LiDA arm).

Every network trains with `workbench.training.fit` under a `TrainConfig` given by the caller.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from workbench.registry import register
from workbench.runtime import set_seed
from workbench.saving import HubModule
from workbench.training import History, TrainConfig, class_weights, fit, predict

CLASSIFIERS = ("logreg", "lstm")
WEIGHTINGS = ("none", "learned", "uniform")
HEAD_AGGREGATIONS = ("mean", "sum", "concat")

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


def fit_augmenters(
    augmenters: Mapping[str, EmbeddingAugmenter], train_embeddings: np.ndarray
) -> dict[str, EmbeddingAugmenter]:
    """Fit each (unfitted) augmenter on the training embeddings, and nothing else, then check that it was."""
    fitted = {name: augmenter.fit(train_embeddings) for name, augmenter in augmenters.items()}
    assert_fitted_on(fitted, train_embeddings)
    return fitted


# ----------------------------------------------------------------------------------------------------------------
# Augmenters


def _as_float_array(embeddings: np.ndarray) -> np.ndarray:
    array = np.asarray(embeddings, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-d array of embeddings (rows, dims), got shape {array.shape}")
    return array


def _default_training() -> TrainConfig:
    return TrainConfig(epochs=25, lr=2e-3, batch_size=128, weighted_loss=False, progress=False)


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


@register("augmenter", "linear")
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
        """z = μ + σ·ε, ε ~ N(0, I): a sample that gradients flow through to μ and log σ². A seeded `generator`
        draws ε on its own device (the CPU), so that draws repeat whatever device the network is on."""
        if generator is None:
            eps = torch.randn(mean.shape, device=mean.device, dtype=mean.dtype)
        else:
            eps = torch.randn(mean.shape, generator=generator, device=generator.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * logvar) * eps.to(mean.device)

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


def _device_of(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


@register("augmenter", "ae")
class Autoencoder(EmbeddingAugmenter):
    """d→`bottleneck`→d autoencoder trained to reconstruct the training embeddings (with `noise_std` > 0 its
    inputs are corrupted by Gaussian noise: a denoising autoencoder). The augmented copy of e is AE(e).

    `training` says how it trains (epochs, lr, batch size, seed, device; no dev set, so no early stopping)."""

    def __init__(self, bottleneck: int = 32, noise_std: float = 0.0, training: TrainConfig | None = None):
        self.bottleneck, self.noise_std, self.training = bottleneck, noise_std, training or _default_training()

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
        history = fit(self.net_, TensorDataset(data, data), None, self.training, loss_fn=reconstruction_loss)
        self.train_loss_ = history.epochs[-1]["train_loss"] if history.epochs else float("nan")
        return self

    @torch.no_grad()
    def _run(self, array: np.ndarray) -> np.ndarray:
        self.net_.eval()
        return self.net_(torch.from_numpy(array).to(_device_of(self.net_))).cpu().numpy().astype(np.float32)

    def sample(self, embeddings: np.ndarray, seed: int = 0) -> np.ndarray:
        array = self._checked(embeddings)
        if self.noise_std > 0:
            array = array + np.random.default_rng(seed).normal(0, self.noise_std, array.shape).astype(np.float32)
        return self._run(array)

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        return self._run(self._checked(embeddings))


@register("augmenter", "dae")
class DenoisingAutoencoder(Autoencoder):
    """An `Autoencoder` trained on Gaussian-corrupted inputs; each sample reconstructs a freshly corrupted input."""

    def __init__(self, bottleneck: int = 32, noise_std: float = 0.5, training: TrainConfig | None = None):
        super().__init__(bottleneck=bottleneck, noise_std=noise_std, training=training)


@register("augmenter", "vae")
class VariationalAutoencoder(EmbeddingAugmenter):
    """d→`latent`→d VAE (reconstruction + β·KL); every `sample` decodes a fresh z, `transform` decodes μ."""

    def __init__(self, latent: int = 256, beta: float = 1.0, training: TrainConfig | None = None):
        self.latent, self.beta, self.training = latent, beta, training or _default_training()

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
        history = fit(self.net_, TensorDataset(data, data), None, self.training, loss_fn=loss)
        self.train_loss_ = history.epochs[-1]["train_loss"] if history.epochs else float("nan")
        return self

    @torch.no_grad()
    def sample(self, embeddings: np.ndarray, seed: int = 0) -> np.ndarray:
        array = self._checked(embeddings)
        self.net_.eval()
        generator = torch.Generator().manual_seed(seed)
        recon, _, _ = self.net_(torch.from_numpy(array).to(_device_of(self.net_)), generator)
        return recon.cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        array = self._checked(embeddings)
        self.net_.eval()
        mean, _ = self.net_.encode(torch.from_numpy(array).to(_device_of(self.net_)))
        return self.net_.decoder(mean).cpu().numpy().astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Views: what the classifier reads


def build_views(
    embeddings: np.ndarray, augmenters: Sequence[EmbeddingAugmenter], *, sample: bool, seed: int = 0
) -> np.ndarray:
    """(n, 1 + len(augmenters), d): each row's original embedding followed by its augmentations (random draws
    when `sample`, else the deterministic transforms)."""
    views = [np.asarray(embeddings, np.float32)]
    for i, augmenter in enumerate(augmenters):
        views.append(augmenter.sample(embeddings, seed=seed * 1000 + i) if sample else augmenter.transform(embeddings))
    return np.stack(views, axis=1)


def training_views(
    embeddings: np.ndarray,
    labels: np.ndarray,
    augmenters: Sequence[EmbeddingAugmenter],
    *,
    attention: bool,
    seed: int,
    copies: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """The training set (views (n', K, d), labels (n',)) of one run. With attention (learned or uniform weights):
    `copies` rows per example, each holding its original and one fresh random draw per augmenter (K = 1 +
    augmenters; the first copy is the draw of `copies=1`). Without (LiDA): the originals plus one labelled copy per
    augmenter, each a row of its own (K = 1)."""
    if attention:
        if copies < 1:
            raise ValueError(f"copies must be at least 1, not {copies}")
        sets = [build_views(embeddings, augmenters, sample=True, seed=seed + j * 1_000_003) for j in range(copies)]
        return np.concatenate(sets), np.tile(np.asarray(labels), copies)
    copies = [embeddings] + [a.sample(embeddings, seed=seed * 1000 + i) for i, a in enumerate(augmenters)]
    return np.concatenate(copies)[:, None, :], np.tile(labels, len(copies))


def evaluation_views(
    embeddings: np.ndarray, augmenters: Sequence[EmbeddingAugmenter], *, attention: bool
) -> np.ndarray:
    """Dev / test views: with attention the original and every augmenter's deterministic `transform`; without,
    the original alone."""
    if attention:
        return build_views(embeddings, augmenters, sample=False)
    return np.asarray(embeddings, np.float32)[:, None, :]


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


class MageClassifier(nn.Module, HubModule):
    """Views (n, K, d) → logits. `weighting` (default: `learned` when `heads` > 0, else `none`): `learned` weights
    the views with `heads` attention heads and aggregates the head outputs by `head_aggregation` (`mean`, `sum`, or
    `concat`: the classifier then reads H·d features); `uniform` averages the K views (weights 1/K); `none` reads
    the first view only (K must be 1). Then logistic regression (one linear layer) or an LSTM (the sentence vector
    as a one-step sequence: a sentence embedding has no time axis, so over one step the LSTM is a gated non-linear
    layer)."""

    def __init__(
        self,
        dim: int,
        num_classes: int = 3,
        classifier: str = "lstm",
        heads: int = 0,
        attention_dim: int = 64,
        lstm_hidden: int = 128,
        dropout: float = 0.1,
        weighting: str | None = None,
        head_aggregation: str = "mean",
    ):
        super().__init__()
        if classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {CLASSIFIERS}, not {classifier!r}")
        weighting = weighting or ("learned" if heads else "none")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, not {weighting!r}")
        if head_aggregation not in HEAD_AGGREGATIONS:
            raise ValueError(f"head_aggregation must be one of {HEAD_AGGREGATIONS}, not {head_aggregation!r}")
        if (weighting == "learned") != (heads > 0):
            raise ValueError(f"learned weighting needs heads > 0 and other weightings none, got {weighting!r}, {heads}")
        self.classifier, self.heads, self.weighting = classifier, heads, weighting
        self.head_aggregation = head_aggregation
        self.attention = ViewAttention(dim, heads, attention_dim) if heads else None
        features = dim * heads if heads and head_aggregation == "concat" else dim
        if classifier == "lstm":
            self.lstm = nn.LSTM(features, lstm_hidden, batch_first=True)
            self.dropout = nn.Dropout(dropout)
            self.output = nn.Linear(lstm_hidden, num_classes)
        else:
            self.output = nn.Linear(features, num_classes)

    def pool(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The sentence vector the classifier reads (n, d; n, H·d with `concat`), and the attention weights
        (n, H, K) if any."""
        if self.weighting == "uniform":
            return views.mean(dim=1), None
        if self.attention is None:
            if views.shape[1] != 1:
                raise ValueError(f"without attention the model reads one view per row, got {views.shape[1]}")
            return views[:, 0], None
        head_outputs, weights = self.attention(views)
        if self.head_aggregation == "concat":
            return head_outputs.flatten(1), weights
        if self.head_aggregation == "sum":
            return head_outputs.sum(dim=1), weights
        return head_outputs.sum(dim=1) / self.heads, weights

    def features(self, views: torch.Tensor) -> torch.Tensor:
        """What the output layer reads (before the LSTM's dropout): the pooled sentence vector (logreg) or the LSTM's
        hidden state after its one step (lstm)."""
        pooled, _ = self.pool(views)
        if self.classifier == "lstm":
            _, (hidden, _) = self.lstm(pooled.unsqueeze(1))
            return hidden[-1]
        return pooled

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        features = self.features(views)
        return self.output(self.dropout(features) if self.classifier == "lstm" else features)

    @torch.no_grad()
    def attention_weights(self, views: torch.Tensor) -> torch.Tensor:
        """(n, H, K) attention weights for a batch of views (eval mode)."""
        if self.attention is None:
            raise ValueError("this model has no attention")
        self.eval()
        return self.attention(views.to(_device_of(self)))[1].cpu()


def views_dataset(views: np.ndarray, labels: np.ndarray) -> TensorDataset:
    """(float32 views, int64 labels) as a TensorDataset."""
    return TensorDataset(torch.from_numpy(np.array(views, np.float32)), torch.from_numpy(np.array(labels, np.int64)))


def train_classifier(
    model: MageClassifier,
    train: tuple[np.ndarray, np.ndarray],
    dev: tuple[np.ndarray, np.ndarray],
    config: TrainConfig,
    num_classes: int = 3,
) -> History:
    """Train `model` end to end (attention included) on (views, labels) with class-weighted cross-entropy and early
    stopping on `dev` by `config.monitor`; the best epoch's weights are kept."""
    return fit(model, views_dataset(*train), views_dataset(*dev), config, num_classes=num_classes)


def fit_full_batch(
    model: MageClassifier,
    train: tuple[np.ndarray, np.ndarray],
    l2: float,
    num_classes: int = 3,
    max_iter: int = 500,
) -> History:
    """Refit the output layer of a MageClassifier on all (views, labels) at once with L-BFGS to convergence:
    class-balanced cross-entropy (mean over rows, scikit-learn's `balanced` weights) + `l2`/2 times the squared norm
    of the output weights (bias free), on the features the output layer reads (`MageClassifier.features`: the pooled
    sentence vectors, or the LSTM's hidden states; the attention and the LSTM, if any, stay as trained). The problem
    is convex: for a logreg without attention this is scikit-learn's `LogisticRegression(C, class_weight='balanced')`
    with `l2 = 1 / (C * rows)` and reaches the same optimum, so the no-augmentation baseline on a full-rank TF-IDF SVD
    predicts exactly as TF-IDF + logistic regression does; for the LSTM it is that logistic regression on the hidden
    states Adam trained (in place of the early-stopped output layer). No dev set, no early stopping: the penalty
    regularises. Fitted in float64, stored in float32; eval mode."""
    model.eval()
    with torch.no_grad():
        features = model.features(torch.as_tensor(np.asarray(train[0]), dtype=torch.float32)).double()
    y = torch.as_tensor(np.asarray(train[1]), dtype=torch.long)
    weight = class_weights(train[1], num_classes).double()
    output = model.output.double()
    optimiser = torch.optim.LBFGS(
        output.parameters(), lr=1.0, max_iter=max_iter, tolerance_grad=1e-7, tolerance_change=1e-10,
        history_size=20, line_search_fn="strong_wolfe",
    )  # fmt: skip
    losses: list[float] = []

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(output(features), y, weight=weight) + 0.5 * l2 * (output.weight**2).sum()
        loss.backward()
        losses.append(float(loss.detach()))
        return loss

    optimiser.step(closure)
    output.float()
    history = History()
    history.epochs.append({"epoch": 0, "train_loss": losses[-1], "evaluations": len(losses)})
    history.best_epoch = 0
    return history


def predict_logits(model: MageClassifier, views: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(n, classes) logits for a stack of views (eval mode)."""
    return predict(model, views_dataset(views, np.zeros(len(views), np.int64)), batch_size)
