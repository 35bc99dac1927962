"""MAGE: augmenters, VAE, attention weighting, leakage guard, runner, tweet cleaning, figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from workbench import augment
from workbench.augment import (
    MAGE_DEFAULTS,
    Autoencoder,
    DenoisingAutoencoder,
    EmbeddedSplits,
    LeakageError,
    LinearNoise,
    MageClassifier,
    VAENet,
    VariationalAutoencoder,
    ViewAttention,
    assert_fitted_on,
    build_views,
    fit_augmenters,
    gains_over_baseline,
    plan_experiments,
    run_language,
    vae_loss,
)
from workbench.preprocess import CleaningConfig, clean_tweet, clean_tweets
from workbench.profiles import resolve_parameters


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small models: one thread is much faster than two on a shared CPU (see augment.torch_threads)."""
    with augment.torch_threads(1):
        yield


FAST = dict(augmenter_epochs=2, augmenter_batch_size=32, augmenter_lr=1e-3)


def _blobs(n: int, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three separable Gaussian classes."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    centres = rng.normal(0, 3, (3, dim))
    return (centres[labels] + rng.normal(0, 1, (n, dim))).astype(np.float32), labels.astype(np.int64)


def _params(**over) -> dict:
    return resolve_parameters(MAGE_DEFAULTS, "smoke", **{**FAST, **over})


def _fitted(name: str, train: np.ndarray):
    return fit_augmenters([name], train, _params(), seed=0)[name]


# ---------------------------------------------------------------------------------------------------- VAE


def test_vae_shapes():
    net = VAENet(dim=24, latent=256)
    x = torch.randn(5, 24)
    recon, mean, logvar = net(x)
    assert recon.shape == (5, 24) and mean.shape == (5, 256) and logvar.shape == (5, 256)
    vae = VariationalAutoencoder(latent=8).fit(_blobs(40, 24)[0])
    assert vae.sample(np.zeros((3, 24), np.float32)).shape == (3, 24)
    assert vae.transform(np.zeros((3, 24), np.float32)).shape == (3, 24)


def test_reparameterisation_carries_gradients_to_mean_and_logvar():
    mean = torch.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    logvar = torch.tensor([[0.0, 1.0, -2.0]], requires_grad=True)
    generator = torch.Generator().manual_seed(0)
    z = VAENet.reparameterise(mean, logvar, generator)
    z.sum().backward()
    eps = torch.randn(1, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.detach(), mean.detach() + torch.exp(0.5 * logvar.detach()) * eps)
    torch.testing.assert_close(mean.grad, torch.ones(1, 3))  # dz/dμ = 1
    torch.testing.assert_close(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * eps)  # dz/dlogσ² = σε/2


def test_vae_training_gradients_reach_every_parameter():
    net = VAENet(dim=10, latent=4)
    x = torch.randn(8, 10)
    recon, mean, logvar = net(x)
    vae_loss(recon, x, mean, logvar).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("scale", [1e4, 1e8, -1e8])
def test_vae_no_nan_with_extreme_inputs(scale):
    torch.manual_seed(0)
    net = VAENet(dim=12, latent=6)
    x = torch.full((4, 12), scale)
    recon, mean, logvar = net(x)
    assert logvar.min() >= net.logvar_min and logvar.max() <= net.logvar_max
    assert not torch.isnan(recon).any()
    loss = vae_loss(recon, x, mean, logvar)
    assert not torch.isnan(loss)
    loss.backward()
    assert all(not torch.isnan(p.grad).any() for p in net.parameters())


def test_vae_samples_differ_between_draws_and_repeat_with_the_seed():
    train, _ = _blobs(60, 16)
    vae = _fitted("vae", train)
    a, b, a_again = vae.sample(train[:5], seed=1), vae.sample(train[:5], seed=2), vae.sample(train[:5], seed=1)
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, a_again)
    assert np.isfinite(a).all()


# ---------------------------------------------------------------------------------------------------- augmenters


def test_linear_noise_stays_within_its_range():
    x = np.zeros((50, 8), np.float32)
    out = LinearNoise(0.1, 0.3).fit(x).sample(x, seed=0)
    assert out.min() >= 0.1 and out.max() <= 0.3 and out.std() > 0
    np.testing.assert_allclose(LinearNoise(0.1, 0.3).fit(x).transform(x), 0.2, rtol=1e-6)
    with pytest.raises(ValueError, match="low <= high"):
        LinearNoise(0.5, 0.1).fit(x)


def test_autoencoders_reconstruct_and_dae_samples_vary():
    train, _ = _blobs(90, 16)
    params = _params(augmenter_epochs=15, augmenter_lr=1e-2)
    ae = augment.make_augmenter("ae", params, seed=0).fit(train)
    dae = augment.make_augmenter("dae", params, seed=0).fit(train)
    assert isinstance(ae, Autoencoder) and isinstance(dae, DenoisingAutoencoder) and dae.noise_std > 0
    assert ae.net_.encoder[0].out_features == 32  # d → 32 → d
    baseline_error = ((train - train.mean(0)) ** 2).sum(1).mean()
    assert ((ae.transform(train) - train) ** 2).sum(1).mean() < baseline_error  # learned something
    np.testing.assert_array_equal(ae.sample(train[:4], seed=1), ae.sample(train[:4], seed=2))  # deterministic
    assert not np.allclose(dae.sample(train[:4], seed=1), dae.sample(train[:4], seed=2))


@pytest.mark.parametrize("name", augment.AUGMENTERS)
def test_every_augmenter_follows_the_sklearn_contract(name):
    train, _ = _blobs(30, 12)
    augmenter = augment.make_augmenter(name, _params(), seed=0)
    assert not [a for a in vars(augmenter) if a.endswith("_")]  # constructor stores parameters only
    with pytest.raises(RuntimeError, match="not fitted"):
        augmenter.transform(train)
    assert augmenter.fit(train) is augmenter
    assert augmenter.n_features_in_ == 12 and augmenter.n_fit_rows_ == 30
    assert augmenter.sample(train, seed=0).shape == train.shape
    with pytest.raises(ValueError, match="12 dimensions"):
        augmenter.transform(np.zeros((2, 5), np.float32))


# ---------------------------------------------------------------------------------------------------- attention


@pytest.mark.parametrize("heads", [1, 2, 4, 8])
def test_attention_weights_sum_to_one_per_head(heads):
    torch.manual_seed(0)
    attention = ViewAttention(dim=16, num_heads=heads, attention_dim=8)
    views = torch.randn(6, 5, 16) * 10
    outputs, weights = attention(views)
    assert outputs.shape == (6, heads, 16) and weights.shape == (6, heads, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(6, heads))
    assert (weights >= 0).all()
    # each head output is the weighted mean of the views
    torch.testing.assert_close(outputs[0, 0], (weights[0, 0, :, None] * views[0]).sum(0))


def test_heads_have_distinct_learned_context_vectors():
    attention = ViewAttention(dim=8, num_heads=4, attention_dim=8)
    assert attention.context.requires_grad and attention.context.shape == (4, 8)
    _, weights = attention(torch.randn(3, 4, 8))
    assert not torch.allclose(weights[:, 0], weights[:, 1])


@pytest.mark.parametrize("classifier", ["logreg", "lstm"])
@pytest.mark.parametrize("heads", [0, 2])
def test_classifier_forward_backward(classifier, heads):
    model = MageClassifier(dim=16, classifier=classifier, heads=heads, lstm_hidden=8)
    views = torch.randn(4, 3 if heads else 1, 16)
    logits = model(views)
    assert logits.shape == (4, 3)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    if heads:
        torch.testing.assert_close(model.attention_weights(views).sum(-1), torch.ones(4, heads))
    else:
        with pytest.raises(ValueError, match="one view"):
            model(torch.randn(4, 2, 16))


def test_build_views_puts_the_original_first():
    train, _ = _blobs(20, 8)
    augmenters = [_fitted("linear", train), _fitted("ae", train)]
    views = build_views(train, augmenters, sample=True, seed=0)
    assert views.shape == (20, 3, 8)
    np.testing.assert_array_equal(views[:, 0], train)


# ---------------------------------------------------------------------------------------------------- leakage


def test_guard_rejects_an_augmenter_fitted_on_train_plus_test():
    train, _ = _blobs(40, 8, seed=0)
    test, _ = _blobs(10, 8, seed=1)
    leaky = {"vae": VariationalAutoencoder(latent=4).fit(np.concatenate([train, test]))}
    with pytest.raises(LeakageError, match="never reach"):
        assert_fitted_on(leaky, train)
    assert_fitted_on({"ok": LinearNoise().fit(train)}, train)  # the honest case passes


def _splits(n_train=45, n_eval=15, dim=12) -> EmbeddedSplits:
    x, y = _blobs(n_train + 2 * n_eval, dim, seed=3)
    a, b = n_train, n_train + n_eval
    return EmbeddedSplits(
        "xx",
        x[:a],
        y[:a],
        x[a:b],
        y[a:b],
        x[b:],
        y[b:],
        [f"w{i} t{i % 3}" for i in range(a)],
        [f"w t{i % 3}" for i in range(n_eval)],
    )


def test_runner_fits_augmenters_on_training_rows_only(monkeypatch):
    """Record every array any augmenter is fitted on: each must be exactly the standardised training split and
    share no row with the (standardised) dev or test embeddings."""
    seen: list[np.ndarray] = []
    for cls in (LinearNoise, Autoencoder, VariationalAutoencoder):
        original_fit = cls.fit

        def spy(self, embeddings, _fit=original_fit):
            seen.append(np.array(embeddings, copy=True))
            return _fit(self, embeddings)

        monkeypatch.setattr(cls, "fit", spy)
    splits = _splits()
    params = _params(configs=["none", "all"], head_sweep=[2], noise_sweep=[[-0.5, 0.5]], classifiers=["logreg"])
    run_language(splits, params, seeds=[0], progress=False)
    mean, std = splits.train.mean(0), splits.train.std(0)
    train = (splits.train - mean) / std
    evaluation = np.concatenate([(splits.dev - mean) / std, (splits.test - mean) / std])
    assert len(seen) == 5  # linear, ae, dae, vae, and the swept linear noise
    for fitted_on in seen:
        np.testing.assert_allclose(fitted_on, train, rtol=1e-5, atol=1e-5)
        distances = np.abs(fitted_on[:, None, :] - evaluation[None]).max(-1)
        assert distances.min() > 1e-3


def test_runner_fails_if_evaluation_rows_reach_an_augmenter(monkeypatch):
    """Mutation check: a runner that fitted augmenters on train + test must be stopped by the guard."""
    splits = _splits()
    real_make = augment.make_augmenter

    class LeakyLinear(LinearNoise):
        def fit(self, embeddings):
            return super().fit(np.concatenate([embeddings, embeddings[:3] + 1]))

    def leaky_make(name, params, seed):
        return LeakyLinear() if name == "linear" else real_make(name, params, seed)

    monkeypatch.setattr(augment, "make_augmenter", leaky_make)
    params = _params(configs=["linear"], head_sweep=[], noise_sweep=[], classifiers=["logreg"])
    with pytest.raises(LeakageError):
        run_language(splits, params, seeds=[0], progress=False)


# ---------------------------------------------------------------------------------------------------- runner


def test_plan_covers_ablations_heads_and_noise():
    plan = plan_experiments(resolve_parameters(MAGE_DEFAULTS, "quick"))
    ablation = [e for e in plan if e.study == "ablation"]
    assert {(e.config, e.attention) for e in ablation} >= {
        (c, a) for c in ("linear", "ae", "dae", "vae", "all") for a in (False, True)
    } | {("none", False)}
    assert {e.heads for e in plan if e.study == "heads"} == {2, 8}
    assert {e.noise_range for e in plan if e.study == "noise"} >= {(-0.05, 0.05), (-0.5, 0.5)}
    assert {e.classifier for e in plan} == {"logreg", "lstm"}


def test_run_language_rows_are_complete_and_repeatable():
    splits = _splits()
    params = _params(configs=["none", "mage"], head_sweep=[2], noise_sweep=[], classifiers=["logreg", "lstm"])
    first = run_language(splits, params, seeds=[0, 1], progress=False)
    again = run_language(splits, params, seeds=[0, 1], progress=False)
    frame = pd.DataFrame(first.rows)
    required = {"language", "config", "classifier", "attention", "heads", "seed", *augment.METRICS}
    assert required <= set(frame.columns)
    assert frame[list(augment.METRICS)].notna().all().all()
    assert set(frame["config"]) == {"none", "mage", "tfidf"}
    assert len(frame) == 2 * (2 + 2 * 2 + 2) + 1  # seeds × (none, mage ± attention, mage 2 heads) + tfidf once
    pd.testing.assert_frame_equal(
        frame.drop(columns="fit_seconds"), pd.DataFrame(again.rows).drop(columns="fit_seconds")
    )
    weights = first.attention["lstm"]
    assert weights.shape == (15, params["heads"], 4)  # test rows, heads, {original, linear, ae, vae}
    np.testing.assert_allclose(weights.sum(-1), 1, rtol=1e-5)
    assert set(first.projection) == {"original", "linear", "ae", "vae"}
    gains = gains_over_baseline(frame)
    assert {"gain_points", "spread_points", "beyond_spread"} <= set(gains.columns)


def test_classifiers_learn_separable_data():
    splits = _splits(n_train=90, n_eval=30)
    params = _params(configs=["none"], head_sweep=[], noise_sweep=[], epochs=15, lr=1e-2)
    frame = pd.DataFrame(run_language(splits, params, seeds=[0], progress=False).rows)
    assert frame[frame["config"] != "tfidf"]["accuracy"].min() > 0.8


def test_profiles_resolve_and_reject_unknown_knobs():
    quick = resolve_parameters(MAGE_DEFAULTS, "quick", languages=["hau"])
    assert quick["languages"] == ["hau"] and quick["encoder"] == "minilm" and len(quick["seeds"]) >= 3
    assert resolve_parameters(MAGE_DEFAULTS, "paper")["encoder"] == "castorini/afriberta_large"
    with pytest.raises(ValueError, match="unknown parameter"):
        resolve_parameters(MAGE_DEFAULTS, "quick", not_a_knob=1)


# ---------------------------------------------------------------------------------------------------- cleaning


def test_clean_tweet_steps():
    text = "@user Ni BYIZA cyane!!! 😂😂 URL https://t.co/x #Rwanda n'abandi 👍🏽"
    assert clean_tweet(text) == "ni byiza cyane rwanda n abandi"
    kept = clean_tweet(
        text, CleaningConfig(lowercase=False, punctuation=False, urls=False, mentions=False, emojis=False)
    )
    assert kept == text
    assert "@user" in clean_tweet(text, CleaningConfig(mentions=False, punctuation=False))
    assert "😂" in clean_tweet(text, CleaningConfig(emojis=False))
    assert "https" in clean_tweet(text, CleaningConfig(urls=False))
    assert "BYIZA" in clean_tweet(text, CleaningConfig(lowercase=False))


def test_clean_tweet_keeps_non_latin_letters():
    assert clean_tweet("ጥሩ ነው። 🙏") == "ጥሩ ነው"
    assert clean_tweet("مرحبا، بكم") == "مرحبا بكم"
    assert clean_tweets(
        ["😂", "Ok."], {"lowercase": True, "punctuation": True, "urls": True, "mentions": True, "emojis": True}
    ) == ["", "ok"]


# ---------------------------------------------------------------------------------------------------- figures


def test_projection_and_attention_figures():
    from workbench.viz.embeddings import (
        attention_weights_figure,
        attention_weights_frame,
        embedding_projection_figure,
        project_views,
    )

    x, y = _blobs(12, 8)
    views = {"original": x, "linear": x + 0.1, "vae": x * 0.5}
    coords = project_views(views, "pca")
    assert len(coords) == 36 and set(coords["view"]) == set(views)
    assert len(project_views(views, "tsne")) == 36
    fig = embedding_projection_figure(views, y, ["negative", "neutral", "positive"], method="pca")
    assert len(fig.data) == 9  # 3 labels × 3 views
    weights = np.random.default_rng(0).dirichlet(np.ones(3), size=(5, 2))
    frame = attention_weights_frame(weights, ["original", "linear", "vae"])
    np.testing.assert_allclose(frame.sum(axis=1), 1)
    assert attention_weights_figure(weights, ["original", "linear", "vae"], "w").data[0].z.shape == (2, 3)
    with pytest.raises(ValueError, match="expected weights"):
        attention_weights_frame(weights, ["a", "b"])
