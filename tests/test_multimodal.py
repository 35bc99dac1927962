"""Multimodal fusion: model shapes and gradients, late-fusion vote, uniform ablation, the fusion registry, MOSI/MOSEI
loaders and their errors, the study's profiles, notes, run and tables, and the notebook end to end on MOSEI-format
fixtures."""

from __future__ import annotations

import json
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_multimodal import write_csd_fixture, write_mmsa_fixture

from workbench.data.multimodal import (
    DataError,
    load_csd,
    load_csd_directory,
    load_mmsa_pickle,
    load_mosi,
    sentiment_labels,
    standardize,
    summarize_multimodal,
    utterance_view,
    video_view,
)
from workbench.methods.fusion import (
    AttentionFusion,
    EarlyFusion,
    LateFusion,
    ModalityTransformerConfig,
    UniformFusion,
    build_model,
    fusion_loss,
    majority_vote,
)
from workbench.profiles import ParameterError
from workbench.registry import UnknownNameError, build, names
from workbench.studies import multimodal as study

DIMS = {"text": 6, "audio": 5, "visual": 4}
KINDS = study.model_kinds()
TINY = ModalityTransformerConfig(hidden=8, layers=1, heads=2, feedforward=16, dropout=0.0)


def _batch(per_position: bool, n: int = 3, length: int = 4, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    features = {m: torch.randn(n, length, d, generator=g) for m, d in DIMS.items()}
    mask = torch.ones(n, length, dtype=torch.bool)
    mask[0, 2:] = False  # a padded sequence
    masks = {m: mask.clone() for m in DIMS}
    if per_position:
        labels = torch.randint(0, classes, (n, length), generator=g).masked_fill(~mask, -100)
    else:
        labels = torch.randint(0, classes, (n,), generator=g)
    return features, masks, labels


@pytest.fixture(scope="module")
def fixture_root(fixture_data_dir) -> Path:
    """The shared fixture tree (conftest calls `write_multimodal_fixtures`): MOSI npz and MOSEI files."""
    return fixture_data_dir


MMSA = "multimodal/cmu_mosei/mmsa_fixture.pkl"
CSD = "multimodal/cmu_mosei/csd"


# ------------------------------------------------------------------------------------------------------- models


@pytest.mark.parametrize("per_position", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_every_model_has_the_right_output_shape_and_trains(kind, per_position):
    torch.manual_seed(0)
    model = build_model(kind, DIMS, 3, TINY, per_position)
    batch = _batch(per_position)
    out = model(batch[0], batch[1])
    assert out.logits.shape == ((3, 4, 3) if per_position else (3, 3))
    assert torch.isfinite(out.logits).all()
    fusion_loss(model, batch).backward()
    bypassed = {"attention.query", "attention.key.weight", "attention.key.bias"} if kind == "uniform" else set()
    for name, p in model.named_parameters():
        if name in bypassed:
            assert p.grad is None, f"{name} should be bypassed by the uniform ablation"
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_paper_profile_without_mosei_fails_with_a_clear_message():
    with pytest.raises(ValueError, match="needs mosei_path"):
        study.load(study.PROFILES.resolve("paper"))


def test_fusion_registry_covers_the_four_strategies():
    assert names("fusion") == ("late", "early", "attention", "uniform")
    assert KINDS == ("text", "audio", "visual", "late", "early", "attention", "uniform")
    assert isinstance(build("fusion", "early", DIMS, 2, TINY, False), EarlyFusion)
    assert isinstance(build_model("uniform", DIMS, 2, TINY), UniformFusion)
    with pytest.raises(UnknownNameError, match="unknown model 'mid'.*a fusion \\(late, early, attention, uniform\\)"):
        build_model("mid", DIMS, 2, TINY)
    with pytest.raises(UnknownNameError, match="registered: late, early, attention, uniform"):
        build("fusion", "mid", DIMS, 2, TINY, False)


def test_majority_vote_matches_hand_count_and_breaks_ties_by_confidence():
    text = torch.tensor([[5.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0]])
    audio = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 2.0], [0.0, 0.2, 0.0]])
    visual = torch.tensor([[0.0, 0.0, 9.0], [0.0, 0.0, 2.0], [0.1, 0.0, 0.0]])
    # votes: row 0 -> 0 (text, audio), row 1 -> 2 (audio, visual), row 2 -> tie 2/1/0, text most confident -> 2
    assert majority_vote([text, audio, visual]).argmax(-1).tolist() == [0, 2, 2]


def test_late_fusion_is_the_majority_vote_of_its_unimodal_classifiers():
    torch.manual_seed(1)
    voters = {m: build_model(m, DIMS, 3, TINY) for m in DIMS}
    late = LateFusion.from_unimodal(voters).eval()
    features, masks, _ = _batch(False, n=64, length=2, seed=3)
    with torch.no_grad():
        votes = torch.stack([voters[m](features, masks).logits.argmax(-1) for m in DIMS], 1)
        fused = late(features, masks).logits.argmax(-1)
    decided = 0
    for row, chosen in zip(votes.tolist(), fused.tolist()):
        (top, count), *rest = Counter(row).most_common()
        if count >= 2:  # a real majority: must be chosen; all-different rows are ties handled by confidence
            assert chosen == top
            decided += 1
        else:
            assert chosen in row
    assert decided > 10


def test_uniform_ablation_ignores_query_and_key_weights():
    torch.manual_seed(2)
    uniform = UniformFusion(DIMS, 3, TINY, False).eval()
    features, masks, _ = _batch(False)
    with torch.no_grad():
        before = uniform(features, masks)
        uniform.attention.query.add_(torch.randn_like(uniform.attention.query) * 5)
        uniform.attention.key.weight.mul_(-3.0)
        after = uniform(features, masks)
    assert torch.allclose(before.logits, after.logits)
    assert torch.allclose(before.modality_weights, torch.full_like(before.modality_weights, 1 / 3))

    learned = AttentionFusion(DIMS, 3, TINY, False).eval()
    learned.load_state_dict(uniform.state_dict())
    with torch.no_grad():
        first = learned(features, masks)
        learned.attention.query.add_(torch.randn_like(learned.attention.query) * 5)
        second = learned(features, masks)
    assert not torch.allclose(first.logits, second.logits), "the learned weights should matter without the ablation"
    assert torch.allclose(first.modality_weights.sum(-1), torch.ones(3, TINY.heads))


def test_uniform_output_is_the_mean_of_the_value_projections():
    torch.manual_seed(4)
    attention = UniformFusion(DIMS, 2, TINY, False).attention
    tokens = torch.randn(5, 3, TINY.hidden)
    fused, _ = attention(tokens)
    expected = attention.output(attention.value(tokens).mean(1))
    assert torch.allclose(fused, expected, atol=1e-6)


# ------------------------------------------------------------------------------------------------------- labels


def test_sentiment_labels_known_values():
    scores = np.array([-3.0, -2.5, -0.6, -0.4, 0.0, 0.3, 0.5, 2.49, 3.0])
    assert sentiment_labels(scores, "binary")[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert sentiment_labels(scores, "3class")[0].tolist() == [0, 0, 0, 0, 1, 2, 2, 2, 2]
    assert sentiment_labels(scores, "3class", band=0.5)[0].tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2]
    seven, names = sentiment_labels(scores, "7class")
    assert [names[i] for i in seven] == ["-3", "-2", "-1", "0", "0", "0", "0", "+2", "+3"]  # half to even
    with pytest.raises(ValueError, match="unknown label scheme"):
        sentiment_labels(scores, "5class")


# ------------------------------------------------------------------------------------------------------ loaders


def test_mosi_loader_views_and_catalog(fixture_root):
    corpus = load_mosi(root=fixture_root)
    train, test = corpus.splits["train"], corpus.splits["test"]
    assert corpus.feature_dims == {"text": 100, "audio": 73, "visual": 100}
    assert set(train.frame["video_id"]).isdisjoint(test.frame["video_id"])
    assert (train.frame["label"].to_numpy() == (train.frame["score"] >= 0)).all()
    utter = utterance_view(test)
    assert utter.features["audio"].shape == (len(test), 1, 73) and utter.labels.shape == (len(test),)
    video = video_view(train)
    valid = video.rows >= 0
    assert valid.sum() == len(train)
    assert (video.labels[valid] == train.frame["label"].to_numpy()[video.rows[valid]]).all()
    assert (video.labels[~valid] == -100).all()
    for row in video.rows:  # utterances of a video in segment order
        segments = train.frame["segment"].to_numpy()[row[row >= 0]]
        assert (np.diff(segments) > 0).all()
    (z_train,) = standardize(train)
    assert np.allclose(z_train.features["audio"].mean(0), 0, atol=1e-5)
    rows = summarize_multimodal(fixture_root)
    assert [(r["dataset"], r["split"], r["rows"]) for r in rows] == [
        ("CMU-MOSI", "train", len(train)),
        ("CMU-MOSI", "test", len(test)),
    ]
    assert summarize_multimodal(fixture_root / "nowhere") == []


def test_mmsa_pickle_loader(fixture_root):
    corpus = load_mmsa_pickle(fixture_root / MMSA)
    assert corpus.feature_dims == {"text": 300, "audio": 74, "visual": 35}
    assert set(corpus.splits) == {"train", "valid", "test"}
    train = corpus.splits["train"]
    assert train.has_time_axis and train.features["text"].shape[:2] == (18, 6)
    assert train.lengths["audio"].max() <= 6 and corpus.label_names == ["negative", "neutral", "positive"]
    view = utterance_view(train)
    assert (view.masks["audio"].sum(1) == np.maximum(train.lengths["audio"], 1)).all()
    with pytest.raises(ValueError, match="one vector per utterance"):
        video_view(train)


def test_csd_loader_aligns_by_segment_and_counts_drops(fixture_root):
    corpus = load_csd_directory(fixture_root / CSD, max_steps=5)
    assert corpus.feature_dims == {"text": 300, "audio": 74, "visual": 35}
    assert any("segment missing from audio" in n for n in corpus.notes)
    assert any("non-finite values set to 0" in n for n in corpus.notes)
    train = corpus.splits["train"]
    assert "mv00[0]" not in set(train.frame["id"]) and len(train) == 8
    assert train.features["audio"].shape == (8, 5, 74) and np.isfinite(train.features["audio"]).all()
    folds = json.loads((fixture_root / CSD / "folds.json").read_text())
    assert set(corpus.splits["test"].frame["video_id"]) <= set(folds["test"])


# ------------------------------------------------------------------------------------------------------- errors


def _copy_npz(src: Path, dst: Path, **changes) -> Path:
    arrays = dict(np.load(src))
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    dst.mkdir(parents=True, exist_ok=True)
    np.savez(dst / "mosi_bclstm_utterances.npz", **arrays)
    return dst


@pytest.mark.parametrize(
    "change, message",
    [
        ({"audio": None}, "missing key"),
        ({"score": "bad"}, "key 'score'"),
        ({"split_bclstm": "valid"}, "unknown split"),
        ({"text": "short"}, "key 'text'"),
    ],
)
def test_malformed_mosi_file_names_file_and_key(fixture_root, tmp_path, change, message):
    src = fixture_root / "multimodal" / "cmu_mosi" / "mosi_bclstm_utterances.npz"
    arrays = dict(np.load(src))
    ((key, value),) = change.items()
    if value == "bad":
        value = arrays["score"].copy()
        value[3] = 4.5
    elif value == "valid":
        value = arrays["split_bclstm"].copy()
        value[0] = "valid"
    elif value == "short":
        value = arrays["text"][:-1]
    root = tmp_path / "root"
    _copy_npz(src, root / "multimodal" / "cmu_mosi", **{key: value})
    with pytest.raises(DataError, match=message) as err:
        load_mosi(root=root)
    assert "mosi_bclstm_utterances.npz" in str(err.value)


def test_not_an_npz_is_a_data_error(tmp_path):
    folder = tmp_path / "multimodal" / "cmu_mosi"
    folder.mkdir(parents=True)
    (folder / "mosi_bclstm_utterances.npz").write_text("hello")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_mosi(root=tmp_path)


def test_mmsa_pickle_errors(tmp_path):
    good = write_mmsa_fixture(tmp_path / "good.pkl")
    with good.open("rb") as handle:
        payload = pickle.load(handle)
    del payload["valid"]["vision"]
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(pickle.dumps(payload))
    with pytest.raises(DataError, match=r"key 'valid': missing \['vision'\]") as err:
        load_mmsa_pickle(broken)
    assert "broken.pkl" in str(err.value)

    payload["valid"]["vision"] = np.zeros((3, 2, 35), dtype=np.float32)  # wrong number of samples
    broken.write_bytes(pickle.dumps(payload))
    with pytest.raises(DataError, match="valid/vision"):
        load_mmsa_pickle(broken)

    hostile = tmp_path / "hostile.pkl"
    hostile.write_bytes(pickle.dumps({"train": Counter(a=1)}))
    with pytest.raises(DataError, match="collections.Counter"):
        load_mmsa_pickle(hostile)

    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(DataError, match="cannot unpickle"):
        load_mmsa_pickle(truncated)


def test_csd_errors(tmp_path, fixture_root):
    import h5py

    folder = write_csd_fixture(tmp_path / "csd")
    files = {m: folder / f"{m}.csd" for m in ("text", "audio", "visual")}
    with h5py.File(folder / "visual.csd", "a") as handle:
        entry = handle["visual_features/data/mv04[1]"]
        del entry["intervals"]
        entry.create_dataset("intervals", data=np.zeros((1, 2)))
    with pytest.raises(DataError, match=r"visual.csd:visual_features/data/mv04\[1\]: intervals shape"):
        load_csd(files, folder / "labels.csd", folder / "folds.json")

    (folder / "text.csd").write_text("not hdf5")
    with pytest.raises(DataError, match="not an HDF5"):
        load_csd(files, folder / "labels.csd", folder / "folds.json")

    other = write_csd_fixture(tmp_path / "csd2")
    with h5py.File(other / "labels.csd", "a") as handle:
        handle["All Labels/data/mv05[2]/features"][0, 0] = 7.0
    files2 = {m: other / f"{m}.csd" for m in ("text", "audio", "visual")}
    with pytest.raises(DataError, match=r"mv05\[2\]: sentiment 7.0"):
        load_csd(files2, other / "labels.csd", other / "folds.json")


# --------------------------------------------------------------------------------------------------- the study


def _smoke_params(**changes):
    return study.PROFILES.resolve("smoke", hidden=8, feedforward=16, **changes)


def test_profiles_resolve_and_reject_bad_values():
    smoke, quick, paper = (study.PROFILES.resolve(p) for p in ("smoke", "quick", "paper"))
    assert study.PROFILES.names[0] == "seeds" and "profile" not in study.PROFILES.names
    assert (smoke["hidden"], quick["hidden"], paper["hidden"]) == (16, 64, 128)
    assert paper["dataset"] == "mosei_mmsa" and paper["modes"] == ["utterance"] and paper["torch_threads"] is None
    assert quick["kinds"] == list(KINDS)
    assert study.PROFILES.resolve("smoke", seeds="[3, 4]", lr="0.01")["seeds"] == [3, 4]  # strings decoded as YAML
    with pytest.raises(ParameterError, match="did you mean 'epochs_context'"):
        study.PROFILES.resolve("smoke", epochs_contxt=3)
    with pytest.raises(ParameterError, match="'mid' is not allowed"):
        study.PROFILES.resolve("smoke", kinds=["text", "mid"])
    with pytest.raises(ParameterError, match="'5class' is not allowed"):
        study.PROFILES.resolve("smoke", schemes=["5class"])
    with pytest.raises(ParameterError, match="below the minimum"):
        study.PROFILES.resolve("smoke", hidden=0)


def test_notes_follow_the_parameters():
    quick, paper = study.notes(study.PROFILES.resolve("quick")), study.notes(study.PROFILES.resolve("paper"))
    assert any("CMU-MOSI" in n for n in quick) and not any("CMU-MOSI" in n for n in paper)
    assert any("compare the ordering" in n for n in quick) and not any("compare the ordering" in n for n in paper)
    assert any("hidden 64" in n for n in quick) and any("hidden 128, 4 heads" in n for n in paper)
    assert any("15 in utterance mode, 40 in context mode" in n for n in quick)
    assert any("30 in utterance mode" in n and "context" not in n for n in paper)
    assert any("mosei_path not set" in n for n in paper)
    assert any("unweighted cross-entropy" in n for n in quick)

    changed = study.notes(
        study.PROFILES.resolve(
            "paper", mosei_path="/x/mosei.pkl", modes=["utterance", "context"], schemes=["binary"], band=0.5,
            weighted_loss=True, kinds=["late", "text", "audio", "visual"],
        )
    )  # fmt: skip
    assert any("/x/mosei.pkl" in n for n in changed)
    assert any("context mode skipped" in n for n in changed)
    assert any("no 3-class scheme" in n for n in changed)
    assert any("class-weighted" in n for n in changed)
    assert any("late fusion trained as a whole" in n for n in changed)
    band = study.notes(study.PROFILES.resolve("quick", band=0.5))
    assert any("neutral = |score| <= 0.5" in n for n in band)


def test_headline_scheme_seeds_and_smoke_notes_follow_the_parameters():
    """Issue 15: 3-class accuracy is the headline (the paper's metric), binary beside it; 5+ seeds for the fusion
    verdicts in quick and paper; the notes say what each run used."""
    smoke, quick, paper = (study.PROFILES.resolve(p) for p in ("smoke", "quick", "paper"))
    assert quick["schemes"][:2] == ["3class", "binary"] and paper["schemes"][:2] == ["3class", "binary"]
    assert len(quick["seeds"]) >= 5 and len(paper["seeds"]) >= 5 and smoke["max_rows_per_split"] == 64
    quick_text, smoke_text = " ".join(study.notes(quick)), " ".join(study.notes(smoke))
    assert "headline: 3class test accuracy and binary test accuracy (the paper's metric first" in quick_text
    assert "rough estimate" not in quick_text and "mean nothing" not in quick_text
    assert "only 2 seeds" in smoke_text and "plumbing check only: at most 64 samples per split" in smoke_text
    binary = " ".join(study.notes(study.PROFILES.resolve("quick", schemes=["binary"], seeds=[0])))
    assert "headline: binary test accuracy; label schemes run: binary" in binary and "no verdict" in binary
    assert study.headline_schemes(["7class", "binary", "3class"]) == ["3class", "binary"]
    assert study.headline_schemes(["7class"]) == ["7class"]


def test_dry_run_caps_stand_in_mosi_and_say_so(monkeypatch):
    paper = study.PROFILES.resolve("paper")
    assert "dry_run" not in paper and paper["max_rows_per_split"] is None
    assert not any("DRY RUN" in n or "stand-in data" in n or "samples per split" in n for n in study.notes(paper))
    monkeypatch.setenv("WORKBENCH_DRY_RUN", "1")
    dry = study.PROFILES.resolve("paper")
    assert dry["dry_run"] is True and dry["dataset"] == "mosi" and dry["seeds"] == [0]
    assert dry["max_rows_per_split"] == 32 and dry["epochs_utterance"] == 1
    assert (dry["hidden"], dry["layers"], dry["feedforward"]) == (128, 2, 256)  # the paper profile's sizes stay
    notes = study.notes(dry)
    assert notes[0].startswith("DRY RUN") and "numbers mean nothing" in notes[0]
    assert any(n.startswith("stand-in data: the CMU-MOSI features") for n in notes)
    assert any("at most 32 samples per split" in n for n in notes)
    own = study.notes(study.PROFILES.resolve("paper", dataset="mosei_mmsa", mosei_path="/x/mosei.pkl"))
    assert own[0].startswith("DRY RUN") and not any("stand-in data" in n for n in own)  # -p wins over the cap


@pytest.mark.parametrize("source", ["mosi", "mmsa"])
def test_cap_rows_keeps_a_stratified_aligned_subset(fixture_root, source):
    corpus = load_mosi(root=fixture_root) if source == "mosi" else load_mmsa_pickle(fixture_root / MMSA)
    rows = min(len(s) for s in corpus.splits.values()) - 2
    capped = study.cap_rows(corpus, rows)
    assert study.cap_rows(corpus, None) is corpus
    for name, split in corpus.splits.items():
        small = capped.splits[name]
        assert len(small) == rows and small.frame.attrs["dropped"]["subsampled away"] == len(split) - rows
        positions = [split.frame.index[split.frame["id"] == i][0] for i in small.frame["id"]]
        assert positions == sorted(positions)  # original order kept
        for m in corpus.modalities:
            np.testing.assert_array_equal(small.features[m], split.features[m][positions])  # rows stay aligned
            if split.lengths:
                np.testing.assert_array_equal(small.lengths[m], split.lengths[m][positions])
    again = study.cap_rows(corpus, rows)
    assert list(again.splits["train"].frame["id"]) == list(capped.splits["train"].frame["id"])  # seeded


def test_linear_probe_is_the_standardised_ridge_classifier(fixture_root):
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    corpus = load_mosi(root=fixture_root).relabel("3class")
    probe = study.linear_probe(corpus, alpha=3.0).set_index(["model", "split"])
    assert set(probe.index) == {(m, s) for m in ("text", "audio", "visual", "concat") for s in ("train", "test")}
    train, test = corpus.splits["train"], corpus.splits["test"]
    x_train = np.concatenate([train.features[m] for m in corpus.modalities], 1)
    x_test = np.concatenate([test.features[m] for m in corpus.modalities], 1)
    reference = make_pipeline(StandardScaler(), RidgeClassifier(alpha=3.0)).fit(x_train, train.frame["label"])
    expected = float((reference.predict(x_test) == test.frame["label"]).mean())
    assert probe.loc[("concat", "test"), "accuracy"] == pytest.approx(expected)


def test_study_rows_and_reproducibility(fixture_root):
    corpus = load_mosi(root=fixture_root)
    params = _smoke_params(schemes=["3class"], seeds=[0])
    metrics, weights, preds = study.train_and_evaluate(corpus, params, ["utterance", "context"], progress=False)
    assert len(metrics) == 2 * len(KINDS) * 2  # modes x kinds x {train, test}
    assert set(metrics["split"]) == {"train", "test"}
    late = metrics[metrics["model"] == "late"]
    assert (late["epochs"] == 0).all()  # built from the unimodal baselines of the same seed
    assert set(weights["model"]) == {"attention", "uniform"}
    np.testing.assert_allclose(weights.groupby(["mode", "model", "sample"])["weight"].sum(), 1.0, atol=1e-5)
    assert len(preds) == 2 * len(KINDS) * len(corpus.splits["test"])
    again, _, _ = study.train_and_evaluate(corpus, {**params, "kinds": ["attention"]}, ["utterance", "context"], False)
    mine = metrics[metrics["model"] == "attention"].reset_index(drop=True)
    cols = ["accuracy", "macro_f1", "weighted_f1"]
    np.testing.assert_allclose(again[cols].to_numpy(), mine[cols].to_numpy())
    alone, _, _ = study.train_and_evaluate(corpus, {**params, "kinds": ["late"]}, ["utterance"], False)
    # no unimodal baselines before it: late fusion is trained as a whole
    assert (alone["epochs"] == params["epochs_utterance"]).all()


def test_run_result_tables_and_saved_rows(fixture_root, tmp_path):
    corpus = load_mosi(root=fixture_root)
    params = _smoke_params(schemes=["binary", "3class"], modes=["utterance"], kinds=["text", "early", "attention"])
    result = study.run(params, data=corpus, progress=False)
    assert result.study == "multimodal_fusion" and result.modes == ["utterance"]
    assert set(result.metrics["family"]) == {"unimodal", "fusion", "linear probe", "modality weight"}
    assert set(result.models["model"]) == {"text", "early", "attention"}
    assert len(result.probes) == 2 * 4 * 2  # schemes x probes x splits
    assert list(result.headline) == [  # 3-class first (the paper's metric), binary beside it, whatever the order run
        "3class_utterance_attention_accuracy", "3class_utterance_early_accuracy", "3class_linear_probe_concat_accuracy",
        "binary_utterance_attention_accuracy", "binary_utterance_early_accuracy", "binary_linear_probe_concat_accuracy",
    ]  # fmt: skip
    tests = result.models[result.models["split"] == "test"]
    for key, value in result.headline.items():
        scheme, rest = key.split("_", 1)
        if "probe" not in rest:
            mode, model = rest.removesuffix("_accuracy").split("_")
            chosen = tests[(tests["scheme"] == scheme) & (tests["mode"] == mode) & (tests["model"] == model)]
            assert value == pytest.approx(chosen["accuracy"].mean())
    assert result.notes[: len(study.notes(params))] == study.notes(params)
    verdict_notes = [n for n in result.notes if n.startswith(("binary/utterance:", "3class/utterance:"))]
    assert len(verdict_notes) == 2 and all("early" in n and "spread" in n for n in verdict_notes)

    tables = study.tables(result)
    assert {"labels", "majority", "linear_probe", "linear_probe_vs_staging", "test_scores", "beside_paper",
            "verdicts", "modality_weights", "train_test_gap"} <= set(tables)  # fmt: skip
    paper = tables["beside_paper"].set_index("model")
    assert paper.loc["attention", "paper (MOSEI, 3-class)"] == pytest.approx(0.7239)
    assert paper.loc["MulT", "paper (MOSEI, 3-class)"] == pytest.approx(0.6704)
    assert "±" in paper.loc["attention", "ours (utterance, 3class)"]
    assert "±" in paper.loc["attention", "ours (utterance, binary)"]  # binary beside the paper's 3-class metric
    assert paper.loc["late", "ours (utterance, 3class)"] == ""  # not run
    staged = tables["linear_probe_vs_staging"].set_index("model")
    assert staged.loc["text", "staged (MOSI binary)"] == 0.739
    assert list(tables["verdicts"]["rival"]) == ["early", "early"]  # no uniform run: that comparison is absent

    saved = json.loads(result.save(tmp_path).read_text())
    assert saved["parameters"]["modes_run"] == ["utterance"] and saved["parameters"]["transformer"]["hidden"] == 8
    trained = [r for r in saved["metrics"] if r["family"] in ("unimodal", "fusion")]
    assert all(isinstance(r["seed"], int) and isinstance(r["epochs"], int) for r in trained)
    assert all(r["seed"] is None for r in saved["metrics"] if r["family"] == "linear probe")


def test_study_on_time_step_data_skips_context_mode(fixture_root):
    corpus = load_mmsa_pickle(fixture_root / MMSA)
    assert study.usable_modes(corpus, ["utterance", "context"]) == ["utterance"]
    with pytest.raises(ValueError, match="unknown mode"):
        study.usable_modes(corpus, ["video"])
    result = study.run(_smoke_params(schemes=["3class"], seeds=[0], kinds=["text", "attention"]), corpus, False)
    assert set(result.models["mode"]) == {"utterance"}


def test_compare_fusions_verdicts():
    import pandas as pd

    rows = []
    for seed, (att, early, uni) in enumerate([(0.80, 0.70, 0.79), (0.82, 0.71, 0.80), (0.81, 0.69, 0.81)]):
        for model, acc in (("attention", att), ("early", early), ("uniform", uni)):
            rows.append(
                {"scheme": "binary", "mode": "context", "model": model, "seed": seed, "split": "test",
                 "family": "fusion", "accuracy": acc}
            )  # fmt: skip
    verdicts = study.compare_fusions(pd.DataFrame(rows)).set_index("rival")
    assert verdicts.loc["early", "verdict"].startswith("attention beats early")
    assert verdicts.loc["uniform", "verdict"].startswith("no difference")
    assert verdicts.loc["early", "effect"] == pytest.approx(100 * (0.81 - 0.70))  # in points
    assert verdicts.loc["uniform", "spread"] == pytest.approx(100 * (0.01 + 0.01))  # the two seed stds added
    assert verdicts.loc["early", "paired_gains"] == "+10.00, +11.00, +12.00"

    one_seed = study.compare_fusions(pd.DataFrame([r for r in rows if r["seed"] == 0])).set_index("rival")
    assert all(v.startswith("one seed only") for v in one_seed["verdict"])  # 10 points apart, yet no verdict


# ----------------------------------------------------------------------------------------------- the notebook


@pytest.mark.parametrize("dataset, path", [("mosei_mmsa", MMSA), ("mosei_csd", CSD)])
def test_notebook_runs_on_mosei_fixtures(fixture_root, tmp_path, dataset, path):
    import papermill

    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "06_multimodal.ipynb"
    report = tmp_path / "report"
    papermill.execute_notebook(
        str(notebook),
        str(tmp_path / "out.ipynb"),
        parameters={
            "profile": "smoke",
            "report_dir": str(report),
            "dataset": dataset,
            "mosei_path": str(fixture_root / path),
            "schemes": ["3class"],
            "seeds": [0],
            "kinds": ["text", "audio", "visual", "late", "early", "attention", "uniform"],
        },
        progress_bar=False,
        kernel_name="python3",
    )
    results = json.loads((report / "results.json").read_text())
    assert results["parameters"]["modes_run"] == ["utterance"]
    test_rows = [
        r for r in results["metrics"] if r.get("split") == "test" and r.get("family") in ("unimodal", "fusion")
    ]
    assert {r["model"] for r in test_rows} == set(KINDS)
    assert any("CMU-MOSEI time steps" in n for n in results["notes"])
    assert "3class_utterance_attention_accuracy" in results["headline"]
