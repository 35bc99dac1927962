"""MAGE: augmenters (registry, VAE), attention weighting, leakage guard, the study (profiles, plan, runs, notes,
tables), tweet cleaning, figures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.methods.mage import (
    Autoencoder,
    DenoisingAutoencoder,
    LeakageError,
    LinearNoise,
    MageClassifier,
    VAENet,
    VariationalAutoencoder,
    ViewAttention,
    assert_fitted_on,
    build_views,
    evaluation_views,
    fit_augmenters,
    training_views,
    vae_loss,
)
from workbench.preprocess import CleaningConfig, clean_tweet, clean_tweets
from workbench.profiles import ParameterError
from workbench.registry import UnknownNameError, build, names
from workbench.studies import mage as study
from workbench.studies.mage import EmbeddedSplits, gains_over_baseline, plan_experiments, run_language

FAST = dict(augmenter_epochs=2, augmenter_batch_size=32, augmenter_lr=1e-3)


def _blobs(n: int, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three separable Gaussian classes."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    centres = rng.normal(0, 3, (3, dim))
    return (centres[labels] + rng.normal(0, 1, (n, dim))).astype(np.float32), labels.astype(np.int64)


def _params(**over) -> dict:
    return study.PROFILES.resolve("smoke", **{**FAST, **over})


def _fitted(name: str, train: np.ndarray, **over):
    return fit_augmenters(study.make_augmenters([name], _params(**over), seed=0), train)[name]


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


def test_augmenters_are_registered_by_name():
    assert names("augmenter")[:4] == ("linear", "ae", "dae", "vae")
    assert isinstance(build("augmenter", "linear", low=0.0, high=0.2), LinearNoise)
    dae = build("augmenter", "dae", bottleneck=8, noise_std=0.3)
    assert isinstance(dae, DenoisingAutoencoder) and (dae.bottleneck, dae.noise_std) == (8, 0.3)
    with pytest.raises(UnknownNameError, match="linear, ae, dae, vae"):
        build("augmenter", "gan")


def test_study_builds_augmenters_from_the_parameters():
    params = _params(ae_bottleneck=7, dae_noise_std=0.2, vae_latent=9, vae_beta=0.5, noise_range=[-0.3, 0.1])
    made = study.make_augmenters(["linear", "ae", "dae", "vae"], params, seed=5)
    assert (made["linear"].low, made["linear"].high) == (-0.3, 0.1)
    assert made["ae"].bottleneck == 7 and made["ae"].noise_std == 0
    assert (made["dae"].bottleneck, made["dae"].noise_std) == (7, 0.2)
    assert (made["vae"].latent, made["vae"].beta) == (9, 0.5)
    training = made["vae"].training
    assert (training.epochs, training.batch_size, training.lr, training.seed) == (2, 32, 1e-3, 5)


def test_train_config_reads_each_stage_from_its_own_knobs():
    params = _params(epochs=7, lr=0.01, batch_size=8, patience=4, monitor="macro_f1", weight_decay=0.05)
    classifier = study.train_config(params, 3, stage="classifier")
    assert (classifier.epochs, classifier.lr, classifier.batch_size, classifier.patience) == (7, 0.01, 8, 4)
    assert classifier.monitor == "macro_f1" and classifier.weighted_loss and classifier.seed == 3
    assert classifier.weight_decay == 0.05
    augmenter = study.train_config(params, 3, stage="augmenter")
    assert (augmenter.epochs, augmenter.lr, augmenter.batch_size) == (2, 1e-3, 32)
    assert not augmenter.weighted_loss and augmenter.weight_decay == 0.05
    with pytest.raises(ValueError, match="stage"):
        study.train_config(params, 0, stage="probe")


def test_linear_noise_stays_within_its_range():
    x = np.zeros((50, 8), np.float32)
    out = LinearNoise(0.1, 0.3).fit(x).sample(x, seed=0)
    assert out.min() >= 0.1 and out.max() <= 0.3 and out.std() > 0
    np.testing.assert_allclose(LinearNoise(0.1, 0.3).fit(x).transform(x), 0.2, rtol=1e-6)
    with pytest.raises(ValueError, match="low <= high"):
        LinearNoise(0.5, 0.1).fit(x)


def test_autoencoders_reconstruct_and_dae_samples_vary():
    train, _ = _blobs(90, 16)
    ae = _fitted("ae", train, augmenter_epochs=15, augmenter_lr=1e-2)
    dae = _fitted("dae", train, augmenter_epochs=15, augmenter_lr=1e-2)
    assert isinstance(ae, Autoencoder) and isinstance(dae, DenoisingAutoencoder) and dae.noise_std > 0
    assert ae.net_.encoder[0].out_features == 32  # d → 32 → d
    baseline_error = ((train - train.mean(0)) ** 2).sum(1).mean()
    assert ((ae.transform(train) - train) ** 2).sum(1).mean() < baseline_error  # learned something
    np.testing.assert_array_equal(ae.sample(train[:4], seed=1), ae.sample(train[:4], seed=2))  # deterministic
    assert not np.allclose(dae.sample(train[:4], seed=1), dae.sample(train[:4], seed=2))


@pytest.mark.parametrize("name", ["linear", "ae", "dae", "vae"])
def test_every_augmenter_follows_the_sklearn_contract(name):
    train, _ = _blobs(30, 12)
    augmenter = study.make_augmenters([name], _params(), seed=0)[name]
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
@pytest.mark.parametrize("heads, aggregation", [(0, "mean"), (2, "mean"), (2, "sum"), (2, "concat")])
def test_classifier_forward_backward(classifier, heads, aggregation):
    model = MageClassifier(dim=16, classifier=classifier, heads=heads, lstm_hidden=8, head_aggregation=aggregation)
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


def test_head_aggregations_and_uniform_weights_pool_the_views_as_documented():
    torch.manual_seed(0)
    views = torch.randn(5, 3, 16)
    pooled = {}
    for aggregation in ("mean", "sum", "concat"):
        torch.manual_seed(1)  # the same attention weights for every aggregation
        model = MageClassifier(dim=16, classifier="logreg", heads=4, head_aggregation=aggregation)
        pooled[aggregation], weights = model.pool(views)
        assert weights.shape == (5, 4, 3)
    head_outputs = pooled["concat"].view(5, 4, 16)  # [o_1; ...; o_H]: the heads' weighted views, concatenated
    assert pooled["concat"].shape == (5, 64) and model.output.in_features == 64
    torch.testing.assert_close(pooled["sum"], head_outputs.sum(1))
    torch.testing.assert_close(pooled["mean"], head_outputs.sum(1) / 4)
    uniform = MageClassifier(dim=16, classifier="lstm", weighting="uniform", lstm_hidden=8)
    mean, no_weights = uniform.pool(views)
    torch.testing.assert_close(mean, views.mean(1))  # every view weighted 1/K
    assert no_weights is None and uniform.attention is None and uniform(views).shape == (5, 3)
    with pytest.raises(ValueError, match="has no attention"):
        uniform.attention_weights(views)
    with pytest.raises(ValueError, match="learned weighting needs heads"):
        MageClassifier(dim=16, weighting="uniform", heads=2)
    with pytest.raises(ValueError, match="head_aggregation must be one of"):
        MageClassifier(dim=16, heads=2, head_aggregation="max")


def test_build_views_puts_the_original_first():
    train, _ = _blobs(20, 8)
    augmenters = [_fitted("linear", train), _fitted("ae", train)]
    views = build_views(train, augmenters, sample=True, seed=0)
    assert views.shape == (20, 3, 8)
    np.testing.assert_array_equal(views[:, 0], train)


def test_training_views_lida_copies_versus_attention_sets():
    train, labels = _blobs(12, 6)
    augmenters = [_fitted("linear", train), _fitted("vae", train)]
    lida, lida_labels = training_views(train, labels, augmenters, attention=False, seed=1)
    assert lida.shape == (36, 1, 6)  # originals + one labelled copy per augmenter
    np.testing.assert_array_equal(lida_labels, np.tile(labels, 3))
    np.testing.assert_array_equal(lida[:12, 0], train)
    sets, set_labels = training_views(train, labels, augmenters, attention=True, seed=1)
    assert sets.shape == (12, 3, 6)
    np.testing.assert_array_equal(set_labels, labels)
    np.testing.assert_array_equal(sets[:, 1], lida[12:24, 0])  # the same draws, arranged as one set per example
    assert evaluation_views(train, augmenters, attention=False).shape == (12, 1, 6)
    test_views = evaluation_views(train, augmenters, attention=True)
    np.testing.assert_allclose(test_views[:, 1], train, rtol=1e-6)  # linear transform: mean of U[-0.1, 0.1] = 0
    # with copies, the set arms see as many labelled rows as the LiDA arm: fresh draws, the first one unchanged
    copied, copied_labels = training_views(train, labels, augmenters, attention=True, seed=1, copies=3)
    assert copied.shape == (36, 3, 6) and len(copied) == len(lida)
    np.testing.assert_array_equal(copied_labels, np.tile(labels, 3))
    np.testing.assert_array_equal(copied[:12], sets)
    np.testing.assert_array_equal(copied[12:24, 0], train)  # every copy holds the original view first
    assert not np.allclose(copied[12:24, 1], sets[:, 1])  # and new augmentation draws
    with pytest.raises(ValueError, match="copies"):
        training_views(train, labels, augmenters, attention=True, seed=1, copies=0)


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
    params = _params(
        configs=["none", "all"], head_sweep=[2], noise_sweep=[[-0.5, 0.5]], classifiers=["logreg"], seeds=[0]
    )
    run_language(splits, params, progress=False)
    mean, std = splits.train.mean(0), splits.train.std(0)
    train = (splits.train - mean) / std
    evaluation = np.concatenate([(splits.dev - mean) / std, (splits.test - mean) / std])
    assert len(seen) == 5  # linear, ae, dae, vae, and the swept linear noise
    for fitted_on in seen:
        np.testing.assert_allclose(fitted_on, train, rtol=1e-5, atol=1e-5)
        distances = np.abs(fitted_on[:, None, :] - evaluation[None]).max(-1)
        assert distances.min() > 1e-3


def test_runner_fails_if_evaluation_rows_reach_an_augmenter(monkeypatch):
    """Mutation check: a run whose augmenters were fitted on train + other rows must be stopped by the guard."""
    real_make = study.make_augmenters

    class LeakyLinear(LinearNoise):
        def fit(self, embeddings):
            return super().fit(np.concatenate([embeddings, embeddings[:3] + 1]))

    def leaky_make(augmenters, params, seed):
        made = real_make(augmenters, params, seed)
        return {name: LeakyLinear() if name == "linear" else a for name, a in made.items()}

    monkeypatch.setattr(study, "make_augmenters", leaky_make)
    params = _params(configs=["linear"], head_sweep=[], noise_sweep=[], classifiers=["logreg"], seeds=[0])
    with pytest.raises(LeakageError):
        run_language(_splits(), params, progress=False)


# ---------------------------------------------------------------------------------------------------- runner


def test_plan_covers_ablations_heads_and_noise():
    plan = plan_experiments(study.PROFILES.resolve("quick"))
    ablation = [e for e in plan if e.study == "ablation"]
    assert {(e.config, e.weighting) for e in ablation} == {
        (c, w) for c in ("linear", "ae", "dae", "vae", "mage", "all") for w in ("none", "learned", "uniform")
    } | {("none", "none")}
    assert {e.heads for e in ablation if e.weighting == "uniform"} == {0}  # same view sets, no attention
    assert {e.heads for e in ablation if e.weighting == "learned"} == {4}
    lida_only = plan_experiments(study.PROFILES.resolve("quick", weightings=["none", "learned"]))
    assert "uniform" not in {e.weighting for e in lida_only}
    with pytest.raises(ParameterError, match="'random' is not allowed"):
        study.PROFILES.resolve("quick", weightings=["random"])
    assert {e.heads for e in plan if e.study == "heads"} == {2, 8}
    assert {e.noise_range for e in plan if e.study == "noise"} >= {(-0.05, 0.05), (-0.5, 0.5)}
    assert (-0.1, 0.1) not in {e.noise_range for e in plan if e.study == "noise"}  # already in the ablation
    assert {e.classifier for e in plan} == {"logreg", "lstm"}


def test_run_language_rows_are_complete_and_the_same_in_two_worker_processes():
    """A run's rows, attention weights and saved models do not depend on `workers`: each experiment seeds itself."""
    splits = _splits()
    params = _params(
        configs=["none", "mage"],
        head_sweep=[2],
        noise_sweep=[[-0.5, 0.5]],
        classifiers=["logreg", "lstm"],
        seeds=[0, 1],
        workers=1,
    )
    first = run_language(splits, params, progress=False)
    again = run_language(splits, {**params, "workers": 2}, progress=False)
    frame = pd.DataFrame(first.rows)
    required = {"language", "config", "classifier", "attention", "heads", "seed", *study.METRICS}
    assert required <= set(frame.columns)
    assert frame[list(study.METRICS)].notna().all().all()
    trained = frame[frame["config"] != "tfidf"]  # Adam rows: the dev accuracy of the epoch each kept
    assert trained["dev_accuracy"].between(0, 1).all()
    assert set(frame["config"]) == {"none", "mage", "linear", "tfidf"}  # linear: the noise sweep
    # seeds × ((none, mage × {none, learned, uniform}, mage 2 heads) × classifiers + logreg noise sweep) + tfidf once
    assert len(frame) == 2 * (2 + 2 * 3 + 2 + 1) + 1
    mage = frame[(frame["config"] == "mage") & (frame["study"] == "ablation")].set_index(["seed", "classifier"])
    lida, learned, uniform = (mage[mage["attention"] == w] for w in ("none", "learned", "uniform"))
    assert (lida["train_rows"] == 4 * 45).all() and (lida["views"] == 1).all() and (lida["train_copies"] == 4).all()
    assert (uniform["views"] == 4).all() and (uniform["train_rows"] == 45).all() and (uniform["heads"] == 0).all()
    assert (learned["views"] == 4).all() and (learned["head_aggregation"] == "mean").all()
    assert uniform["head_aggregation"].isna().all()
    pd.testing.assert_frame_equal(
        frame.drop(columns="fit_seconds"), pd.DataFrame(again.rows).drop(columns="fit_seconds")
    )
    for classifier, weights in first.attention.items():
        np.testing.assert_array_equal(weights, again.attention[classifier])
    assert set(first.models) == set(again.models)
    weights = first.attention["lstm"]
    assert weights.shape == (15, params["heads"], 4)  # test rows, heads, {original, linear, ae, vae}
    np.testing.assert_allclose(weights.sum(-1), 1, rtol=1e-5)
    assert set(first.projection) == {"original", "linear", "ae", "vae"}
    assert len(first.projection_labels) == len(first.projection["original"]) == params["projection_points"]
    gains = gains_over_baseline(frame)
    assert {"gain_points", "spread_points", "verdict"} <= set(gains.columns)


def test_attention_copies_match_the_lida_arms_rows_and_concat_reads_every_head():
    params = _params(
        configs=["mage"],
        head_sweep=[],
        noise_sweep=[],
        classifiers=["logreg"],
        seeds=[0],
        attention_copies=True,
        head_aggregation="concat",
        tfidf_baseline=False,
    )
    frame = pd.DataFrame(run_language(_splits(), params, progress=False).rows).set_index("attention")
    assert frame.loc["none", "train_rows"] == frame.loc["learned", "train_rows"] == frame.loc["uniform", "train_rows"]
    assert frame.loc["uniform", "train_copies"] == 4 and frame.loc["uniform", "views"] == 4
    assert frame.loc["learned", "head_aggregation"] == "concat"


def test_classifiers_learn_separable_data():
    splits = _splits(n_train=90, n_eval=30)
    params = _params(configs=["none"], head_sweep=[], noise_sweep=[], epochs=15, lr=1e-2, seeds=[0])
    frame = pd.DataFrame(run_language(splits, params, progress=False).rows)
    assert frame[frame["config"] != "tfidf"]["accuracy"].min() > 0.8


def test_tfidf_baseline_reads_the_label_words():
    train = [f"{w} filler{i % 4}" for i, w in enumerate(["bad", "so so", "good"] * 10)]
    test = ["good filler1", "bad filler2", "so so filler3"]
    metrics = study.tfidf_baseline(train, [0, 1, 2] * 10, test, [2, 0, 1])
    assert metrics["accuracy"] == 1.0 and metrics["weighted_f1"] == 1.0


# ---------------------------------------------------------------------------------------------------- profiles, notes


def test_profiles_resolve_decode_and_reject_bad_knobs():
    quick = study.PROFILES.resolve("quick", languages='["hau"]')  # a string from `-p` is YAML
    assert quick["languages"] == ["hau"] and quick["encoder"] == "minilm" and len(quick["seeds"]) >= 3
    assert study.PROFILES.resolve("paper")["encoder"] == "castorini/afriberta_large"
    assert study.PROFILES.resolve("smoke")["max_rows_per_split"] == 30
    assert study.PROFILES.resolve("quick")["max_rows_per_split"] is None
    with pytest.raises(ParameterError, match="did you mean 'heads'"):
        study.PROFILES.resolve("quick", head=2)
    with pytest.raises(ParameterError, match="'gan' is not allowed"):
        study.PROFILES.resolve("quick", configs=["none", "gan"])
    with pytest.raises(ParameterError, match="'xyz' is not allowed"):
        study.PROFILES.resolve("quick", languages=["xyz"])
    with pytest.raises(ParameterError, match="below the minimum"):
        study.PROFILES.resolve("quick", heads=0)
    with pytest.raises(ParameterError, match="unknown switch 'hashtags'"):
        study.cleaning_config(study.PROFILES.resolve("quick", cleaning={"hashtags": True}))


def test_notes_follow_the_parameters():
    quick, paper = study.PROFILES.resolve("quick"), study.PROFILES.resolve("paper")
    quick_notes, paper_notes = " ".join(study.notes(quick)), " ".join(study.notes(paper))
    assert quick_notes != paper_notes
    assert "Profile quick:" in quick_notes and "Profile paper:" in paper_notes
    assert "frozen encoder 'minilm'" in quick_notes and "frozen encoder 'castorini/afriberta_large'" in paper_notes
    assert "head outputs summed and scaled 1/4" in quick_notes and "(paper profile: concat)" in quick_notes
    assert "head outputs concatenated" in paper_notes and "scaled 1/4" not in paper_notes
    assert "autoencoders train 20 epoch(s), batch 128" in quick_notes
    assert "autoencoders train 100 epoch(s), batch 32" in paper_notes
    assert "uniform = the same view sets" in quick_notes and "LiDA arm on n x (1 + A) rows" in quick_notes
    copies = study.notes(study.PROFILES.resolve("quick", attention_copies=True))
    assert "as many rows as the LiDA arm" in " ".join(copies)
    no_uniform = " ".join(study.notes(study.PROFILES.resolve("quick", weightings=["none", "learned"])))
    assert "uniform =" not in no_uniform and "learned =" in no_uniform
    smaller = " ".join(study.notes(study.PROFILES.resolve("quick", ae_bottleneck=16, vae_latent=64, pooling="cls")))
    assert "d->16->d" in smaller and "VAE d->64->d" in smaller and "cls pooling" in smaller
    assert "PCA, TSNE of at most 150" in quick_notes
    assert "PCA of at most 12" in " ".join(study.notes(study.PROFILES.resolve("smoke")))
    assert "encoder 'minilm' instead of 'castorini/afriberta_large'" in quick_notes
    assert "epochs 15 (paper profile: 100)" in quick_notes
    assert "Differences from the paper" not in paper_notes and "instead of" not in paper_notes
    assert "3 head(s)" in " ".join(study.notes(study.PROFILES.resolve("paper", heads=3)))
    assert "TF-IDF" in quick_notes
    no_tfidf = " ".join(study.notes(study.PROFILES.resolve("quick", tfidf_baseline=False)))
    assert "TF-IDF + LR" not in no_tfidf and "Bar:" not in no_tfidf
    assert "best dev accuracy" in quick_notes and "full rank of the training matrix" in quick_notes
    assert "Ablation bases frozen" in quick_notes and "Bar:" in quick_notes
    assert "Base: frozen for every language" in paper_notes and "Ablation bases" not in paper_notes
    assert "one global scale" in quick_notes and "one global scale" not in paper_notes
    fixed = " ".join(study.notes(study.PROFILES.resolve("quick", base="svd", svd_components=64)))
    assert "Base: svd for every language" in fixed and "truncated SVD to 64 dimensions" in fixed
    assert "LiDA" not in " ".join(study.notes(study.PROFILES.resolve("quick", configs=["none"])))
    assert "no seed spread" in " ".join(study.notes(study.PROFILES.resolve("quick", seeds=[0])))
    smoke_notes = " ".join(study.notes(study.PROFILES.resolve("smoke")))
    assert "randomly initialised" in smoke_notes and "capped at 30" in smoke_notes
    assert "randomly initialised" not in quick_notes and "capped" not in quick_notes
    assert "tweet cleaning: urls" in " ".join(
        study.notes(
            study.PROFILES.resolve(
                "quick", cleaning={"lowercase": False, "punctuation": False, "mentions": False, "emojis": False}
            )
        )
    )


def test_dry_run_caps_the_paper_profile_and_says_so(monkeypatch):
    paper = study.PROFILES.resolve("paper")
    assert "dry_run" not in paper and "DRY RUN" not in " ".join(study.notes(paper))
    monkeypatch.setenv("WORKBENCH_DRY_RUN", "1")
    dry = study.PROFILES.resolve("paper")
    assert dry["dry_run"] is True and dry["encoder"] == "castorini/afriberta_large"  # the paper's architecture
    assert dry["seeds"] == [0] and dry["epochs"] == 1 and dry["max_rows_per_split"] == 16
    assert dry["languages"] == paper["languages"] and dry["vae_latent"] == paper["vae_latent"]
    assert study.PROFILES.resolve("paper", seeds=[3, 4])["seeds"] == [3, 4]  # an explicit override still wins
    notes = " ".join(study.notes(dry))
    assert "DRY RUN" in notes and "random weights" in notes and "mean nothing" in notes
    # differences are told against the paper profile's own values, not the capped ones
    assert "epochs 1 (paper profile: 100)" in notes and "seeds [0] (paper profile: [0, 1, 2, 3, 4])" in notes
    assert "capped at 16" in notes


def test_a_dry_run_headline_claims_no_gain():
    rows = _rows()
    assert study.headline(rows)["best_gain_beyond_spread"] is True
    dry = study.headline(rows, dry_run=True)
    assert dry["dry_run"] is True and dry["best_gain_beyond_spread"] is None and dry["gains_beyond_spread"] is None
    assert "dry_run" not in study.headline(rows)


# ---------------------------------------------------------------------------------------------------- summaries


def _rows() -> pd.DataFrame:
    """Two seeds: `linear` with attention gains 20 points over `none` (spread 2 × 7.07) and 5 over uniform weights,
    `ae` gains nothing."""
    out = []
    for seed, (none, linear, linear_attention, ae) in enumerate([(0.5, 0.6, 0.7, 0.5), (0.6, 0.7, 0.8, 0.6)]):
        for config, attention, accuracy in [
            ("none", "none", none),
            ("linear", "none", linear),
            ("linear", "learned", linear_attention),
            ("linear", "uniform", linear_attention - 0.05),
            ("ae", "none", ae),
            ("ae", "learned", ae),
        ]:
            out.append(
                {
                    "language": "kin",
                    "seed": seed,
                    "study": "ablation",
                    "config": config,
                    "classifier": "logreg",
                    "attention": attention,
                    "heads": 4 if attention == "learned" else 0,
                    "noise_low": None,
                    "noise_high": None,
                    "accuracy": accuracy,
                    "weighted_f1": accuracy,
                }
            )
    out.append({**out[0], "study": "baseline", "config": "tfidf", "classifier": "tfidf_logreg", "accuracy": 0.4})
    return pd.DataFrame(out)


def test_gains_attention_effect_and_headline_judge_by_the_seed_spread():
    rows = _rows()
    gains = gains_over_baseline(rows).set_index(["config", "attention"])
    assert gains.loc[("linear", "learned"), "gain_points"] == pytest.approx(20.0)
    assert gains.loc[("linear", "learned"), "spread_points"] == pytest.approx(2 * 100 * np.std([0.7, 0.8], ddof=1))
    assert gains.loc[("linear", "learned"), "verdict"] == "better"
    assert gains.loc[("linear", "none"), "verdict"] == "within spread"  # 10 points < 14.1
    assert gains.loc[("linear", "uniform"), "gain_points"] == pytest.approx(15.0)
    assert gains.loc[("ae", "none"), "gain_points"] == pytest.approx(0.0)
    effect = study.attention_effect(rows).set_index("config")
    assert effect.loc["linear", "effect_points"] == pytest.approx(10.0)
    assert effect.loc["linear", "with_attention"] == pytest.approx(75.0)
    over_uniform = study.attention_effect(rows, versus="uniform").set_index("config")
    assert over_uniform.loc["linear", "effect_points"] == pytest.approx(5.0)
    assert over_uniform.loc["linear", "uniform_weights"] == pytest.approx(70.0)
    assert "ae" not in over_uniform.index  # no uniform arm ran for ae
    headline = study.headline(rows)
    assert headline["best_gain_setting"] == "kin/logreg/linear+attention(4)"
    assert headline["best_gain_points"] == pytest.approx(20.0) and headline["best_gain_beyond_spread"]
    assert headline["gains_beyond_spread"] == 2 and headline["settings_compared"] == 5
    assert headline["baseline_accuracy"] == pytest.approx(0.55) and headline["tfidf_accuracy"] == pytest.approx(0.4)


def test_results_written_before_the_uniform_arm_read_as_weighting_arms():
    legacy = _rows()
    legacy = legacy[legacy["attention"] != "uniform"].assign(attention=lambda f: f["attention"] != "none")
    assert legacy["attention"].dtype == bool
    assert set(study.with_weighting(legacy)["attention"]) == {"none", "learned"}
    gains = gains_over_baseline(legacy).set_index(["config", "attention"])
    assert gains.loc[("linear", "learned"), "gain_points"] == pytest.approx(20.0)
    assert study.attention_effect(legacy).set_index("config").loc["linear", "effect_points"] == pytest.approx(10.0)


def test_paper_numbers_are_the_references_only():
    """REFERENCES.md gives the MAGE paper's baseline, its best gain (+3.64, not attributed to one augmenter), the
    attention gains with VAE (+0.4) and DAE (+1.21), and two data sizes; nothing else is the paper's."""
    assert study.PAPER == {
        "baseline accuracy": 0.568,
        "best gain, accuracy points": 3.64,
        "attention gain with VAE, points": 0.40,
        "attention gain with DAE, points": 1.21,
        "kin tweets (train+dev+test)": 5155,
        "tso tweets (train+dev+test)": 1258,
    }


def test_paper_comparison_puts_every_paper_number_beside_ours():
    result = study.MageResult(
        study="mage",
        params=study.PROFILES.resolve("smoke"),
        metrics=_rows(),
        data=[{"name": f"afrisenti/kin/{s}", "rows_in_file": n} for s, n in [("train", 10), ("dev", 5), ("test", 5)]],
    )
    table = study.paper_comparison(result)
    assert list(table.index) == list(study.PAPER)
    assert table.loc["kin tweets (train+dev+test)", "ours"] == 20
    assert np.isnan(table.loc["tso tweets (train+dev+test)", "ours"])
    assert table.loc["best gain, accuracy points", "ours"] == pytest.approx(20.0)
    assert table.loc["baseline accuracy", "ours"] == pytest.approx(0.55)


def test_load_and_run_on_fixture_data(fixture_data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    params = _params(
        max_rows_per_split=24, configs=["none", "mage"], head_sweep=[], noise_sweep=[], seeds=[0], projection_points=6
    )
    data = study.load(params)
    described = {d["name"]: d for d in data.descriptions}
    assert described["afrisenti/kin/train"]["rows_in_file"] == 42
    assert described["afrisenti/kin/test"]["rows"] == 24
    assert described["afrisenti/kin/test"]["dropped"]["subsampled away"] == 16
    splits = data.splits["kin"]
    assert len(splits.test) == 24 and splits.train.shape[1] == splits.test.shape[1]
    assert not any("@user" in t or "URL" in t for t in splits.train_texts)  # cleaned
    result = study.run(params, data=data, progress=False)
    assert set(result.metrics["config"]) == {"none", "mage", "tfidf", "frozen", "svd", "svd+frozen"}
    main = result.metrics[result.metrics["study"] == "ablation"]
    assert set(main["base"]) == {"svd+frozen"}  # the smoke profile's base
    ablation = result.metrics[result.metrics["study"] == "base_ablation"]
    assert set(ablation["base"]) == {"frozen"} and set(ablation["config"]) == {"none", "mage"}
    assert set(study.tables(result)) == {
        "bases",
        "base_bar",
        "base_ablation",
        "data",
        "ablation",
        "gains",
        "attention_effect",
        "attention_vs_uniform",
        "heads",
        "noise",
        "paper",
    }
    assert set(result.metrics["attention"]) == {"none", "learned", "uniform"}
    assert result.notes == [*study.notes(params), study.bar_verdict(result.metrics, params)]
    assert result.notes[-1].startswith("TF-IDF bar") and result.headline["settings_compared"] == 6
    saved = json.loads(result.save(tmp_path).read_text())
    assert saved["study"] == "mage" and saved["profile"] == "smoke" and len(saved["metrics"]) == len(result.metrics)


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


# ---------------------------------------------------------------------------------------------------- bases


def _fixture_texts(fixture_data_dir, monkeypatch, language="kin"):
    from workbench.data import load_afrisenti

    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    train, test = load_afrisenti(language, "train"), load_afrisenti(language, "test")
    return list(train["text"]), train["label"].to_numpy(), list(test["text"]), test["label"].to_numpy()


def test_svd_base_is_dense_of_the_right_shape_and_fitted_on_train_only(fixture_data_dir, monkeypatch):
    from workbench.methods.bases import TfidfSvd

    train, _, test, _ = _fixture_texts(fixture_data_dir, monkeypatch)
    svd = TfidfSvd(components=8, seed=0).fit(train)
    vectors = svd.transform(test)
    assert isinstance(vectors, np.ndarray) and vectors.shape == (len(test), 8) and vectors.dtype == np.float32
    assert svd.n_fit_rows_ == len(train)
    vocabulary = set(svd.featurizer_.words.vocabulary_)
    unseen = {w for t in test for w in t.lower().split()} - {w for t in train for w in t.lower().split()}
    assert not (unseen & vocabulary)  # test-only words never reach the featurizer
    again = TfidfSvd(components=8, seed=0).fit(train).transform(test)  # the test texts play no part in the fit
    np.testing.assert_allclose(again, vectors, atol=1e-5)
    full = TfidfSvd(components=None).fit(train)
    assert full.transform(test).shape == (len(test), full.n_components_) and full.n_components_ <= len(train)


def test_full_rank_svd_with_logistic_regression_predicts_like_tfidf_lr(fixture_data_dir, monkeypatch):
    from workbench.methods.bases import TfidfSvd
    from workbench.methods.probe import sklearn_probe
    from workbench.methods.tfidf import tfidf_features, tfidf_predict

    train, labels, test, _ = _fixture_texts(fixture_data_dir, monkeypatch)
    svd = TfidfSvd(components=None).fit(train)
    train_vectors, test_vectors = svd.transform(train), svd.transform(test)
    tfidf_train, _ = tfidf_features(train, test)
    # an orthonormal basis of the training rows' span: inner products between training rows are kept
    np.testing.assert_allclose(train_vectors @ train_vectors.T, (tfidf_train @ tfidf_train.T).toarray(), atol=1e-4)
    probe = sklearn_probe(train_vectors, labels, standardise=False, class_weight="balanced")
    np.testing.assert_array_equal(probe.predict(test_vectors), tfidf_predict(train, labels, test))


def test_base_choice_reads_dev_only():
    """Dev favours the frozen vectors, test favours the SVD of the text: best_dev takes frozen, and the candidate
    table shows the SVD winning on test."""
    rng = np.random.default_rng(0)
    words = {0: "alpha", 1: "beta", 2: "gamma"}
    n = 60
    labels = {s: np.arange(n) % 3 for s in ("train", "dev", "test")}

    def texts(split: str, informative: bool) -> list[str]:
        noise = [f"w{rng.integers(0, 40)} w{rng.integers(0, 40)}" for _ in range(n)]
        return [f"{words[y]} {x}" if informative else x for y, x in zip(labels[split], noise)]

    def frozen(split: str, informative: bool) -> np.ndarray:
        centres = np.eye(3, 6) * 4
        signal = centres[labels[split]] if informative else centres[rng.integers(0, 3, n)]
        return (signal + rng.normal(0, 1, (n, 6))).astype(np.float32)

    splits = EmbeddedSplits(
        language="xyz",
        train=frozen("train", True),
        train_labels=labels["train"],
        dev=frozen("dev", True),
        dev_labels=labels["dev"],
        test=frozen("test", False),
        test_labels=labels["test"],
        train_texts=texts("train", True),
        dev_texts=texts("dev", False),
        test_texts=texts("test", True),
    )
    params = _params(base="best_dev", base_candidates=["svd", "frozen"], ablation_bases=[], svd_components=None)
    bases = study.build_bases(splits, params)
    table = study.candidate_table(pd.DataFrame(bases.rows)).set_index("base")
    assert bases.chosen == "frozen"
    assert table.loc["frozen", "dev_accuracy"] > table.loc["svd", "dev_accuracy"]
    assert table.loc["svd", "test_accuracy"] > table.loc["frozen", "test_accuracy"]  # test would have chosen svd
    assert bool(table.loc["frozen", "chosen"]) and not bool(table.loc["svd", "chosen"])
    assert study.select_base({"a": 0.5, "b": 0.7, "c": 0.7}) == "b"


def _bar_rows(baselines: dict[str, tuple[float, ...]], tfidf: dict[str, float]) -> pd.DataFrame:
    """Metric rows of no-augmentation logreg baselines (one accuracy per seed) and one TF-IDF row per language."""
    common = {"attention": "none", "heads": 0}
    baseline = [
        {"language": lang, "seed": seed, "study": "ablation", "config": "none", "classifier": "logreg", "base": "svd"}
        | common
        | {"accuracy": acc, "weighted_f1": acc}
        for lang, accs in baselines.items()
        for seed, acc in enumerate(accs)
    ]
    bar = [
        {"language": lang, "seed": 0, "study": "baseline", "config": "tfidf", "classifier": "tfidf_logreg"}
        | common
        | {"accuracy": acc, "weighted_f1": acc}
        for lang, acc in tfidf.items()
    ]
    return pd.DataFrame(baseline + bar)


def test_base_bar_compares_the_baseline_with_tfidf_per_language():
    rows = _bar_rows({"kin": (0.60, 0.62), "tso": (0.50, 0.52)}, {"kin": 0.60, "tso": 0.55})
    bar = study.base_bar(rows).set_index("language")
    assert bar.loc["kin", "meets_tfidf"] and not bar.loc["tso", "meets_tfidf"]
    assert bar.loc["kin", "margin_points"] == pytest.approx(1.0)
    head = study.headline(rows)
    assert head["kin_base_meets_tfidf"] is True and head["tso_base_meets_tfidf"] is False
    assert head["tso_baseline_accuracy"] == pytest.approx(0.51) and head["tso_tfidf_accuracy"] == 0.55
    assert head["tfidf_accuracy"] == pytest.approx(0.575)
    verdict = study.bar_verdict(rows, {"optimizer": "lbfgs"})
    assert "kin/logreg 0.610 vs 0.600 (+1.0)" in verdict and "tso/logreg 0.510 vs 0.550 (-4.0)" in verdict
    assert "NOT met on tso/logreg by 4.0 (seed std 1.4; 95% interval" in verdict and "logreg_c chosen on dev" in verdict
    assert "longer Adam schedule" not in verdict and "base='svd'" not in verdict  # lbfgs logreg on the svd base
    assert "What might close it: a longer Adam schedule" in study.bar_verdict(rows, {"optimizer": "adam"})
    met = study.bar_verdict(rows[rows["language"] == "kin"], {"optimizer": "lbfgs"})
    assert met.endswith("Bar met by every classifier on every language.")
    assert study.bar_verdict(rows[rows["study"] != "baseline"], {}).startswith("No TF-IDF rows")


def test_base_bar_gives_the_margins_interval_over_seeds_and_its_reading():
    rows = _bar_rows(
        {"kin": (0.59, 0.60, 0.61), "swa": (0.55, 0.60, 0.65), "tso": (0.70,)}, {"kin": 0.65, "swa": 0.60, "tso": 0.6}
    )
    bar = study.base_bar(rows).set_index("language")
    half = 4.302653 * 1.0 / np.sqrt(3)  # t(2) quantile x std of the margins (-6, -5, -4 points) / sqrt(3)
    assert bar.loc["kin", ["margin_low", "margin_high"]].tolist() == pytest.approx([-5 - half, -5 + half])
    assert bar.loc["kin", "versus_tfidf"] == "below" and not bar.loc["kin", "meets_tfidf"]
    assert bar.loc["swa", "versus_tfidf"] == "inconclusive" and bar.loc["swa", "meets_tfidf"]  # mean at the bar
    assert pd.isna(bar.loc["tso", "margin_low"]) and pd.isna(bar.loc["tso", "versus_tfidf"])  # one seed: no interval
    verdict = study.bar_verdict(rows, {"optimizer": "lbfgs"})
    assert (
        f"kin/logreg by 5.0 (seed std 1.0; 95% interval {-5 - half:+.1f} to {-5 + half:+.1f} over the seeds: below)"
        in verdict
    )
    above = study.base_bar(_bar_rows({"kin": (0.70, 0.71, 0.72)}, {"kin": 0.65}))
    assert above["versus_tfidf"].tolist() == ["above"]


@pytest.mark.slow  # a papermill run (about 20 s idle); the smoke notebook test covers kin in the default run
def test_notebook_runs_unchanged_on_another_language(fixture_data_dir, tmp_path, monkeypatch):
    from pathlib import Path

    from workbench.runner import run_notebook

    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "01_mage.ipynb"
    parameters = dict(
        languages=["hau"],
        base="best_dev",
        configs=["none", "mage"],
        head_sweep=[4],
        noise_sweep=[[-0.1, 0.1]],
        seeds=[0],
        epochs=1,
        augmenter_epochs=1,
        projections=["pca"],
    )
    outcome = run_notebook(notebook, profile="smoke", parameters=parameters, reports=tmp_path, progress=False)
    assert outcome.status == "ok", outcome.error
    results = json.loads((Path(outcome.run_dir) / "results.json").read_text())
    metrics = pd.DataFrame(results["metrics"])
    assert set(metrics["language"]) == {"hau"}
    assert {"frozen", "svd", "svd+frozen", "tfidf"} <= set(metrics.loc[metrics["study"] == "bases", "config"])
    assert "hau_base_meets_tfidf" in results["headline"] and "hau_base" in results["headline"]


def test_global_scaling_keeps_the_geometry_and_dimension_scaling_standardises():
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, (50, 4)) * np.array([10.0, 1.0, 0.1, 0.01]) + 3
    scaled = study.make_scaler("global").fit(train).transform(train)
    np.testing.assert_allclose(scaled.mean(0), 0, atol=1e-9)
    assert np.sqrt((scaled**2).mean()) == pytest.approx(1.0)
    ratios = scaled.std(0) / train.std(0)
    np.testing.assert_allclose(ratios, ratios[0])  # one scale for every dimension
    np.testing.assert_allclose(study.make_scaler("dimension").fit(train).transform(train).std(0), 1.0)
    with pytest.raises(ValueError, match="scaling must be one of"):
        study.make_scaler("rank")


@pytest.mark.parametrize("scaling", ["global", "dimension"])
def test_lbfgs_logreg_is_sklearn_logistic_regression_in_the_bases_own_units(scaling):
    """`fit_full_batch` on a no-attention logreg with `logreg_l2(C, n, scale)` predicts as scikit-learn's
    class-balanced LogisticRegression(C) on the unscaled vectors (global scaling) or on the scaled ones."""
    from sklearn.linear_model import LogisticRegression

    from workbench.methods.mage import fit_full_batch, predict_logits

    rng = np.random.default_rng(0)
    labels = np.array([0] * 30 + [1] * 20 + [2] * 10)
    train = rng.normal(0, 0.05, (60, 12)) + 0.04 * np.eye(3)[labels] @ rng.normal(0, 1, (3, 12))
    test = rng.normal(0, 0.05, (200, 12))
    scaler = study.make_scaler(scaling).fit(train)
    scale = study.common_scale(scaler)
    assert (scale != 1.0) == (scaling == "global")
    views = scaler.transform(train)[:, None, :].astype(np.float32)
    model = MageClassifier(12, num_classes=3, classifier="logreg", weighting="none")
    fit_full_batch(model, (views, labels), study.logreg_l2(0.5, len(labels), scale))
    reference = LogisticRegression(C=0.5, class_weight="balanced", max_iter=5000, tol=1e-10)
    if scaling == "global":  # the same optimum as LR on the vectors as they were
        reference.fit(train - scaler.mean_, labels)
        expected = reference.decision_function(test - scaler.mean_)
    else:
        reference.fit(scaler.transform(train), labels)
        expected = reference.decision_function(scaler.transform(test))
    got = predict_logits(model, scaler.transform(test)[:, None, :].astype(np.float32))
    np.testing.assert_array_equal(got.argmax(-1), expected.argmax(-1))
    np.testing.assert_allclose(got - got.mean(1, keepdims=True), expected - expected.mean(1, keepdims=True), atol=2e-3)


def test_lbfgs_refit_of_the_lstm_is_logistic_regression_on_its_hidden_states():
    """The LSTM's refit replaces only its output layer: logistic regression (C, class-balanced) on the hidden states
    the LSTM computes, which stay as they were."""
    from sklearn.linear_model import LogisticRegression

    from workbench.methods.mage import fit_full_batch, predict_logits

    rng = np.random.default_rng(1)
    labels = np.array([0] * 30 + [1] * 20 + [2] * 10)
    views = (rng.normal(0, 1, (60, 12)) + np.eye(3)[labels] @ rng.normal(0, 1, (3, 12)))[:, None, :].astype(np.float32)
    test = rng.normal(0, 1, (200, 1, 12)).astype(np.float32)
    torch.manual_seed(0)
    model = MageClassifier(12, num_classes=3, classifier="lstm", lstm_hidden=8, dropout=0.5)
    lstm_before = {k: v.clone() for k, v in model.lstm.state_dict().items()}
    fit_full_batch(model, (views, labels), study.logreg_l2(0.5, len(labels)))
    assert all(torch.equal(v, lstm_before[k]) for k, v in model.lstm.state_dict().items())
    with torch.no_grad():
        hidden, hidden_test = (model.features(torch.from_numpy(v)).double().numpy() for v in (views, test))
    reference = LogisticRegression(C=0.5, class_weight="balanced", max_iter=5000, tol=1e-10).fit(hidden, labels)
    expected, got = reference.decision_function(hidden_test), predict_logits(model, test)
    np.testing.assert_array_equal(got.argmax(-1), expected.argmax(-1))
    np.testing.assert_allclose(got - got.mean(1, keepdims=True), expected - expected.mean(1, keepdims=True), atol=2e-3)


def test_lbfgs_no_augmentation_baseline_on_the_full_rank_svd_is_tfidf_lr(fixture_data_dir, monkeypatch):
    """The quick recipe (full-rank TF-IDF SVD, global scaling, lbfgs): the `none` logreg row equals the TF-IDF + LR
    row of the same run, and the attention arm still trains its attention (the refit keeps it)."""
    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    params = study.PROFILES.resolve(
        "smoke", base="svd", svd_components=None, scaling="global", optimizer="lbfgs", seeds=[0, 1],
        configs=["none", "mage"], classifiers=["logreg"], weightings=["none", "learned"], head_sweep=[], noise_sweep=[],
        ablation_bases=[], base_candidates=["svd"], projections=[], save_models=False,
    )  # fmt: skip
    frame = study.run(params, progress=False).metrics
    test = frame[frame["study"].isin(["ablation", "baseline"])]
    none = test[(test["config"] == "none") & (test["classifier"] == "logreg")]
    tfidf = test[test["config"] == "tfidf"]
    assert len(none) == 2 and len(tfidf) == 1
    for column in ("accuracy", "macro_f1"):
        assert none[column].tolist() == [tfidf[column].iloc[0]] * 2
    learned = test[(test["config"] == "mage") & (test["attention"] == "learned")]
    assert len(learned) == 2 and learned["best_epoch"].ge(0).all()
    # the refitted models' own dev accuracy (no early stopping chose it)
    assert learned["dev_accuracy"].between(0, 1).all() and none["dev_accuracy"].between(0, 1).all()
    lbfgs = " ".join(study.notes(params))
    assert "optimizer='lbfgs'" in lbfgs and "C=1 in the vectors before the global scaling" in lbfgs
    assert "L-BFGS" not in " ".join(study.notes({**params, "optimizer": "adam"}))
