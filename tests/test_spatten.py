"""SpAtten: the cascade pruner (dense equivalence, batch independence, cascade invariants, FLOPs), the study
(profiles, notes, run, tables) and its benchmark."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import BertConfig, BertModel

from workbench.encoders import load_encoder
from workbench.methods.spatten import CascadePruner, PruneSchedule, dense_flops, pool_layers, pruned_features
from workbench.profiles import ParameterError
from workbench.studies import spatten as study

TEXTS = [
    "The food was great but the service was slow and the waiter was rude to us.",
    "ok",
    "Terrible place, never again. The staff ignored us for an hour and the coffee was cold when it came.",
    "Lovely little cafe with friendly staff.",
]


@pytest.fixture(scope="module")
def tiny():
    return load_encoder("tiny", attentions=True, device="cpu")


@pytest.fixture(scope="module")
def deep_tiny(tiny):
    """A random 4-layer, 4-head BERT with the MiniLM tokenizer: enough layers and heads for real cascades."""
    config = BertConfig(
        vocab_size=tiny.tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
    )
    torch.manual_seed(1)
    model = BertModel(config, add_pooling_layer=False).eval()
    special = [i for i in tiny.tokenizer.all_special_ids if i != tiny.tokenizer.pad_token_id]
    return tiny.tokenizer, model, special


def _run(pruner, tokenizer, texts, **kw):
    batch = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        return batch, pruner(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], **kw)


@pytest.mark.parametrize("name", ["tiny", "minilm"])
def test_keep_ratio_one_reproduces_the_dense_model(name):
    encoder = load_encoder(name, device="cpu")
    pruner = CascadePruner.from_encoder(encoder)
    batch = encoder.tokenize(TEXTS)
    with torch.no_grad():
        reference = encoder.model(**batch).last_hidden_state
        out = pruner(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    real = batch["attention_mask"].bool()
    assert out.last_hidden_state.shape == reference.shape
    torch.testing.assert_close(out.last_hidden_state[real], reference[real], atol=2e-5, rtol=1e-4)
    assert torch.equal(out.token_masks, real[:, None, :].expand_as(out.token_masks))  # every real token, every layer
    assert out.head_masks.all()


def test_dense_token_importance_is_the_attention_received(tiny):
    pruner = CascadePruner.from_encoder(tiny)
    batch = tiny.tokenize(TEXTS)
    with torch.no_grad():
        attentions = tiny.model(**batch, output_attentions=True).attentions
        out = pruner(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    query_mask = batch["attention_mask"][:, None, :, None].float()
    expected = sum((a * query_mask).sum((1, 2)) for a in attentions) * batch["attention_mask"]
    torch.testing.assert_close(out.token_importance, expected, atol=1e-5, rtol=1e-4)
    assert (out.token_importance[batch["attention_mask"] == 0] == 0).all()


@pytest.mark.parametrize("token_keep,head_keep", [(0.5, 1.0), (0.3, 0.5), (0.1, 0.25), (1.0, 0.5)])
def test_batched_pruning_equals_per_sample(deep_tiny, token_keep, head_keep):
    tokenizer, model, special = deep_tiny
    pruner = CascadePruner(model, PruneSchedule.spatten(4, token_keep, head_keep, 0.25, 0.25), special)
    _, batched = _run(pruner, tokenizer, TEXTS)
    for i, text in enumerate(TEXTS):
        _, single = _run(pruner, tokenizer, [text])
        k = int(single.mask.sum())
        assert int(batched.mask[i].sum()) == k
        assert torch.equal(batched.positions[i, :k], single.positions[0, :k])
        length = single.token_masks.shape[-1]
        assert torch.equal(batched.token_masks[i, :, :length], single.token_masks[0])
        assert not batched.token_masks[i, :, length:].any()
        assert torch.equal(batched.head_masks[i], single.head_masks[0])
        torch.testing.assert_close(
            batched.last_hidden_state[i, :k], single.last_hidden_state[0, :k], atol=1e-5, rtol=1e-4
        )
        torch.testing.assert_close(batched.pooled()[i], single.pooled()[0], atol=1e-5, rtol=1e-4)
        assert math.isclose(float(batched.flops[i]), float(single.flops[0]), rel_tol=1e-9)


def test_cascade_invariants(deep_tiny):
    tokenizer, model, special = deep_tiny
    schedule = PruneSchedule((1.0, 0.6, 0.4, 0.2), (1.0, 1.0, 0.5, 0.25))
    pruner = CascadePruner(model, schedule, special)
    batch, out = _run(pruner, tokenizer, TEXTS)
    real = batch["attention_mask"].bool()
    n_real = real.sum(1)
    is_special = torch.isin(batch["input_ids"], torch.tensor(special)) & real
    masks = out.token_masks
    assert (masks[:, 1:] <= masks[:, :-1]).all(), "a pruned token came back"
    assert not (masks & ~real[:, None, :]).any(), "padding was treated as a token"
    assert (masks | ~is_special[:, None, :]).all(), "[CLS]/[SEP] were pruned"
    for layer, ratio in enumerate(schedule.token_keep):
        expected = torch.maximum(torch.ceil(ratio * n_real.double()).long(), is_special.sum(1))
        assert torch.equal(masks[:, layer].sum(1), torch.minimum(expected, n_real))
    heads = out.head_masks.sum(-1)
    assert heads.tolist() == [[4, 4, 2, 1]] * len(TEXTS)
    assert (out.head_masks[:, 1:] <= out.head_masks[:, :-1]).all(), "a pruned head came back"
    # later layers really run on fewer tokens: the output is only as wide as the longest kept sequence
    assert out.last_hidden_state.shape[1] == int(masks[:, -1].sum(1).max()) < real.shape[1]
    assert out.head_importance.shape == (len(TEXTS), 4)


def test_flops_shrink_with_pruning_and_match_dense_at_keep_one(deep_tiny):
    tokenizer, model, special = deep_tiny
    pruner = CascadePruner(model, None, special)
    batch, dense = _run(pruner, tokenizer, TEXTS)
    expected = dense_flops(batch["attention_mask"].sum(1), model.config)
    torch.testing.assert_close(dense.flops, expected)
    pruner.schedule = PruneSchedule.spatten(4, 0.2, 0.5, 0.25, 0.25)
    _, pruned = _run(pruner, tokenizer, TEXTS)
    assert (pruned.flops < dense.flops).all()


def test_attentions_on_the_original_grid(deep_tiny):
    tokenizer, model, special = deep_tiny
    pruner = CascadePruner(model, PruneSchedule((1.0, 0.5, 0.5, 0.3), (1.0, 0.5, 0.5, 0.5)), special)
    batch, out = _run(pruner, tokenizer, TEXTS, output_attentions=True)
    for layer, attention in enumerate(out.attentions):
        assert attention.shape == (len(TEXTS), 4, *batch["input_ids"].shape[1:], batch["input_ids"].shape[1])
        rows = attention.sum(-1)  # each kept query of a computed head sums to 1, everything else 0
        expected = out.token_masks[:, layer, None, :] & out.head_masks[:, layer, :, None]
        torch.testing.assert_close(rows, expected.float(), atol=1e-5, rtol=1e-5)


def test_gradients_flow_for_pruning_aware_fine_tuning(deep_tiny):
    tokenizer, model, special = deep_tiny
    pruner = CascadePruner(model, PruneSchedule.spatten(4, 0.3, 0.5, 0.25, 0.25), special)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    pruner(batch["input_ids"], batch["attention_mask"]).pooled().sum().backward()
    assert model.encoder.layer[-1].output.dense.weight.grad.abs().sum() > 0
    model.zero_grad()


def test_schedule_validation_and_shape():
    with pytest.raises(ValueError, match="non-increasing"):
        PruneSchedule((1.0, 0.5, 0.7), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="must be 1.0"):
        PruneSchedule((0.5, 0.5), (1.0, 1.0))
    with pytest.raises(ValueError, match="layers"):
        PruneSchedule((1.0, 0.5), (1.0,))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        PruneSchedule((1.0, 0.0), (1.0, 1.0))
    six = PruneSchedule.spatten(6, 0.1, 0.5)
    assert six.token_keep[0] == 1.0 and six.token_keep[1] < 1.0  # first ~15% of layers keep all tokens
    assert six.head_keep[:2] == (1.0, 1.0) and six.head_keep[2] < 1.0  # first ~30% keep all heads
    assert math.isclose(six.token_keep[-1], 0.1) and math.isclose(six.head_keep[-1], 0.5)
    assert PruneSchedule.dense(6).is_dense and not six.is_dense
    assert json.loads(json.dumps(six.to_dict()))["token_keep"][-1] == pytest.approx(0.1)


def test_pruner_rejects_wrong_models_and_schedules(tiny):
    with pytest.raises(TypeError, match="BERT-family"):
        CascadePruner(torch.nn.Linear(2, 2))
    pruner = CascadePruner.from_encoder(tiny)
    with pytest.raises(ValueError, match="the model has 2"):
        pruner.schedule = PruneSchedule.dense(3)


def test_pruned_features_are_independent_of_batching(tiny):
    schedule = PruneSchedule.spatten(2, 0.3, 0.5)
    a, flops_a = pruned_features(TEXTS, tiny, schedule, batch_size=3, progress=False)
    b, flops_b = pruned_features(TEXTS, tiny, schedule, batch_size=1, progress=False)
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(flops_a, flops_b)
    assert a.shape == (len(TEXTS), tiny.hidden_size)


def test_best_schedule_is_the_fastest_within_one_f1_point_of_the_reference():
    curve = pd.DataFrame(
        [
            {"schedule": "dense", "training": "pruning_aware", "macro_f1": 0.900, "speedup": 0.9},
            {"schedule": "a", "training": "pruning_aware", "macro_f1": 0.895, "speedup": 1.5},
            {"schedule": "b", "training": "pruning_aware", "macro_f1": 0.891, "speedup": 2.1},
            {"schedule": "c", "training": "pruning_aware", "macro_f1": 0.850, "speedup": 3.0},
            {"schedule": "c", "training": "post_hoc", "macro_f1": 0.899, "speedup": 3.0},
        ]
    )
    assert study.best_schedule(curve)["schedule"] == "b"
    assert study.best_schedule(curve, tolerance=0.001) is None
    # a stronger dense reference (another pooling) moves the bar: only `a` stays within one point of 0.905
    assert study.best_schedule(curve, reference_f1=0.905)["schedule"] == "a"
    # nothing within the tolerance: the best trade-off is the most accurate schedule that reaches the target speed
    assert study.best_trade_off(curve, reference_f1=0.95, target=2.0)["schedule"] == "b"
    assert study.best_trade_off(curve, reference_f1=0.95, target=5.0)["schedule"] == "a"
    assert study.best_trade_off(curve, reference_f1=0.905)["schedule"] == "a"  # within the tolerance: the best


def test_linear_head_learns_separable_features_and_standardises_inside():
    from workbench.training import predict

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    features = (rng.normal(size=(200, 8)) * 50 + 100 + labels[:, None] * 100.0).astype(np.float32)
    head, dev_f1 = study.train_head(features, labels, 2, seed=0, epochs=60)
    torch.testing.assert_close(head.mean, torch.from_numpy(features.mean(0)))
    data = torch.utils.data.TensorDataset(torch.from_numpy(features), torch.from_numpy(labels))
    assert (predict(head, data).argmax(-1) == labels).mean() >= 0.9  # chance is 0.5
    dev = study.dev_indices(labels, seed=0)
    assert len(dev) == 30 and dev_f1 == pytest.approx(study._scores(head, features[dev], labels[dev], 2)["macro_f1"])
    again, _ = study.train_head(features, labels, 2, seed=0, epochs=60)
    torch.testing.assert_close(again.net[-1].weight, head.net[-1].weight)  # same seed, same head


def _two_poolings(n_train: int = 200, n_eval: int = 200, seed: int = 0):
    """Train / held-out features of two poolings: `mean` separates the classes on the training rows (its dev split
    included) but is noise on the held-out rows; `cls` is weak on the training rows and strong on the held-out ones."""
    rng = np.random.default_rng(seed)
    y_train, y_eval = rng.integers(0, 2, n_train), rng.integers(0, 2, n_eval)
    mean_train = rng.normal(size=(n_train, 4)) + 4.0 * y_train[:, None]
    mean_eval = rng.normal(size=(n_eval, 4))
    cls_train = rng.normal(size=(n_train, 4)) + 0.6 * y_train[:, None]
    cls_eval = rng.normal(size=(n_eval, 4)) * 0.1 + 3.0 * y_eval[:, None]
    return y_train, y_eval, {"mean": mean_train, "cls": cls_train}, {"mean": mean_eval, "cls": cls_eval}


def test_dense_reference_is_chosen_on_the_dev_split_never_on_the_held_out_rows(monkeypatch):
    y_train, y_eval, train, held_out = _two_poolings()

    def features(texts_, encoder, schedule, *, poolings, **kw):
        source = train if len(texts_) == len(y_train) and texts_[0].startswith("train") else held_out
        return {p: source[p].astype(np.float32) for p in poolings}, np.ones(len(texts_))

    monkeypatch.setattr(study, "cached_features", features)
    monkeypatch.setattr(study, "flop_ratio", lambda *a, **k: 1.0)
    data = study.SpattenData(
        pd.DataFrame({"text": [f"train {i}" for i in range(len(y_train))], "label": y_train}),
        pd.DataFrame({"text": [f"eval {i}" for i in range(len(y_eval))], "label": y_eval}),
        0,
        ["negative", "positive"],
    )
    accuracy, heads = study.accuracy_curve(
        None, data, [PruneSchedule.dense(2)], poolings=["mean", "cls"], head_epochs=30, progress=False
    )
    rows = accuracy.set_index("pooling")
    dense = rows[rows["training"] == "pruning_aware"]
    # the setup: the dev split favours `mean`, the held-out rows favour `cls`
    assert dense.loc["mean", "dev_macro_f1"] > dense.loc["cls", "dev_macro_f1"]
    assert dense.loc["cls", "macro_f1"] > dense.loc["mean", "macro_f1"] + 0.2
    reference = study.dense_reference(accuracy)
    assert reference["pooling"] == "mean"  # chosen on dev, although `cls` does better on the held-out rows
    assert ("dense", "pruning_aware", "cls") in heads
    # the choice rule alone: the held-out column never enters it
    flipped = accuracy.assign(macro_f1=1.0 - accuracy["macro_f1"])
    assert study.dense_reference(study.choose_poolings(flipped.drop(columns="chosen")))["pooling"] == "mean"


def test_choose_poolings_per_schedule_and_training_with_ties_and_a_fixed_pooling():
    rows = pd.DataFrame(
        [
            {"schedule": "dense", "training": "pruning_aware", "pooling": "mean", "dev_macro_f1": 0.7},
            {"schedule": "dense", "training": "pruning_aware", "pooling": "cls", "dev_macro_f1": 0.8},
            {"schedule": "s", "training": "pruning_aware", "pooling": "mean", "dev_macro_f1": 0.6},
            {"schedule": "s", "training": "pruning_aware", "pooling": "cls", "dev_macro_f1": 0.6},
            {"schedule": "s", "training": "post_hoc", "pooling": "mean", "dev_macro_f1": 0.1},
            {"schedule": "s", "training": "post_hoc", "pooling": "cls", "dev_macro_f1": 0.5},
        ]
    )
    chosen = study.choose_poolings(rows)
    assert chosen[chosen["chosen"]][["schedule", "training", "pooling"]].values.tolist() == [
        ["dense", "pruning_aware", "cls"],
        ["s", "pruning_aware", "mean"],  # a tie: the first listed
        ["s", "post_hoc", "cls"],
    ]
    fixed = study.choose_poolings(rows, pooling="mean")
    assert fixed[fixed["chosen"]]["pooling"].tolist() == ["cls", "mean", "mean"]  # the dense reference stays on dev


def test_viz_grid_and_explorer_respond(tiny):
    from workbench.viz.pruning import mask_explorer, token_grid_html, trace_pruning

    trace = trace_pruning(tiny, TEXTS[0], PruneSchedule.spatten(2, 0.3, 0.5))
    html = token_grid_html(trace)
    assert html.count('class="wb-pruned"') == int((~trace.token_masks).sum())
    assert html.count('class="wb-kept"') == int(trace.token_masks.sum())
    explorer = mask_explorer(tiny, TEXTS, token_keep=1.0)
    grid = explorer.children[2]
    before = grid.value
    assert 'class="wb-pruned"' not in before
    explorer.children[1].children[0].value = 0.2  # the token keep slider
    assert grid.value != before and 'class="wb-pruned"' in grid.value
    assert explorer.trace().kept_per_layer[-1] < explorer.trace().kept_per_layer[0]


def test_profiles_resolve_and_check_every_knob():
    for profile in ("smoke", "quick", "paper"):
        params = study.PROFILES.resolve(profile)
        assert set(params) == {"profile", *study.PROFILES.names}
    assert study.PROFILES.resolve("smoke")["encoder"] == "tiny"
    assert study.PROFILES.resolve("paper")["max_train_rows"] is None
    assert study.PROFILES.resolve("quick", max_train_rows="none")["max_train_rows"] is None
    assert study.PROFILES.resolve("quick", keeps="[[0.2, 1.0]]")["keeps"] == [[0.2, 1.0]]
    with pytest.raises(ParameterError, match="'max'"):
        study.PROFILES.resolve("quick", pooling="max")
    with pytest.raises(ParameterError, match="en-US"):
        study.PROFILES.resolve("quick", varieties=["en-US"])
    with pytest.raises(ParameterError, match="minimum"):
        study.PROFILES.resolve("quick", repeats=0)
    with pytest.raises(ValueError, match="token keep, head keep"):
        study.schedules_for(6, [[0.2]])


def test_notes_follow_the_parameters():
    quick, paper = study.PROFILES.resolve("quick"), study.PROFILES.resolve("paper")
    quick_notes, paper_notes = " ".join(study.notes(quick)), " ".join(study.notes(paper))
    assert "encoder minilm (paper profile: bert-base-uncased)" in quick_notes
    assert "max_train_rows 1200 (paper profile: all)" in quick_notes and "a stratified 1,200" in quick_notes
    assert "Differs from the paper profile" not in paper_notes and "all of the training rows" in paper_notes
    assert "6 pruned schedules" in quick_notes and "8 pruned schedules" in paper_notes
    assert "randomly initialised" not in quick_notes and "NOT MEANINGFUL" not in quick_notes
    smoke_notes = study.notes(study.PROFILES.resolve("smoke"))
    assert smoke_notes[0].startswith("NOT MEANINGFUL") and "randomly initialised" in " ".join(smoke_notes)
    assert "Profile quick;" in quick_notes and "Profile smoke;" in " ".join(smoke_notes)
    # fine-tuning: off in quick (said so, its knobs not listed as differences), on in paper with its own settings
    assert "The encoder stays frozen (finetune=False)" in quick_notes and "finetune_rows" not in quick_notes
    assert "Fine-tuning (SpAtten's setting)" in paper_notes and "all of the training rows (the same" in paper_notes
    assert "3 epoch(s), AdamW lr 2e-05" in paper_notes and "Fine-tuning" not in quick_notes
    tuned = " ".join(study.notes(study.PROFILES.resolve("quick", finetune=True)))
    assert "a stratified 400 of the training rows" in tuned and "2 epoch(s), AdamW lr 5e-05" in tuned
    assert "finetune True (paper profile: True)" not in tuned and "finetune_rows 400 (paper profile: all)" in tuned
    # poolings and the dense reference rule; a fixed pooling is named with its meaning
    assert (
        "best dev-split macro-F1" in quick_notes
        and "mean_last4 = the mean_all vector averaged over the last 4" in quick_notes
    )
    mean = " ".join(study.notes(study.PROFILES.resolve("paper", pooling="mean", threads=1, runtimes=["torch_int8"])))
    assert "the pruned schedules use mean (the mean over the tokens that survive" in mean
    assert "1 torch thread " in mean and "pooling mean (paper profile: dev)" in mean
    assert "runtimes [torch_int8] (paper profile: [torch_int8, onnx_fp32, onnx_int8, pruned_int8])" in mean
    assert "onnx_int8: ONNX Runtime" in quick_notes and "onnx_int8" not in mean.split("Throughput")[1].split(";")[0]


def test_run_gives_flat_metric_rows_tables_and_a_saved_report(fixture_data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    params = study.PROFILES.resolve(
        "smoke", keeps=[[0.2, 0.5]], repeats=1, poolings=["mean", "mean_all", "cls"],
        runtimes=["torch_int8", "pruned_int8"], finetune_keep=[0.2, 0.5], save_models=False,
    )  # fmt: skip
    result = study.run(params, progress=False)
    accuracy = result.accuracy
    # dense: mean and cls (mean_all is mean when nothing is pruned); the schedule: all three; two trainings each
    assert len(accuracy) == 2 * 2 + 3 * 2 and set(accuracy[accuracy["schedule"] == "dense"]["pooling"]) == {
        "mean",
        "cls",
    }
    assert accuracy.groupby(["schedule", "training"])["chosen"].sum().eq(1).all()
    assert accuracy["macro_f1"].between(0, 1).all() and accuracy["dev_macro_f1"].between(0, 1).all()
    assert list(result.curve["schedule"]) == ["dense", "dense", "spatten t0.2 h0.5", "spatten t0.2 h0.5"]
    assert list(result.curve["training"]) == ["post_hoc", "pruning_aware"] * 2
    assert result.dense_reference in ("mean", "cls") and result.dense_macro_f1 == pytest.approx(
        float(result.reference["macro_f1"])
    )
    assert set(result.throughput["schedule"]) == {
        "hf_dense", "dense", "spatten t0.2 h0.5", "torch_int8", "spatten t0.2 h0.5 int8"
    }  # fmt: skip
    assert (result.throughput["seq_per_s"] > 0).all()
    peers = result.runtimes.set_index("runtime")
    assert set(peers.index) == {"torch_int8", "pruned_int8"} and peers["macro_f1"].between(0, 1).all()
    assert peers.loc["torch_int8", "pooling"] == result.dense_reference
    # fine-tuning ran (smoke): dense, dense-then-pruned, pruned during fine-tuning; the encoder itself is untouched
    assert list(result.finetuned["training"]) == ["finetuned", "finetuned_post_hoc", "finetuned_pruning_aware"]
    fresh = load_encoder("tiny", device="cpu")
    torch.testing.assert_close(result.encoder.model.encoder.layer[0].output.dense.weight,
                               fresh.model.encoder.layer[0].output.dense.weight)  # fmt: skip
    metrics = result.metrics
    assert metrics["macro_f1"].between(0, 1).all() and (metrics["seq_per_s"] > 0).all()
    assert metrics.iloc[-1]["schedule"] == "hf_dense" and metrics.iloc[-1]["pooling"] == result.dense_reference
    # smoke: a random tiny model, no verdict anywhere
    assert result.headline["target_met"] is None and result.headline["int8_target_met"] is None
    assert result.headline["meaningful"] is False and result.notes[0].startswith("NOT MEANINGFUL")
    assert "met" not in study.verdict(result) and "not meaningful" in study.verdict(result)
    tables = study.tables(result)
    assert set(tables) == {"schedules", "dense_by_pooling", "poolings", "curve", "throughput", "runtimes", "finetune",
                           "paper"}  # fmt: skip
    assert tables["dense_by_pooling"]["reference"].sum() == 1
    assert list(tables["schedules"]["schedule"]) == ["dense", "spatten t0.2 h0.5"]
    assert tables["runtimes"]["runtime"].iloc[0] == "fp32 (Hugging Face)"
    assert tables["paper"]["method"].iloc[-1].startswith("ours: ")
    assert len(tables["paper"]) == len(study.PAPER) + 1
    saved = json.loads(result.save(tmp_path / "report").read_text())
    assert saved["study"] == "spatten" and saved["profile"] == "smoke" and len(saved["metrics"]) == len(metrics)


def test_dry_run_caps_the_paper_profile_and_says_so(monkeypatch):
    assert not any("DRY RUN" in note for note in study.notes(study.PROFILES.resolve("paper")))
    monkeypatch.setenv("WORKBENCH_DRY_RUN", "1")
    params = study.PROFILES.resolve("paper")
    assert params["dry_run"] is True and params["encoder"] == "bert-base-uncased"  # the paper architecture is kept
    assert params["max_train_rows"] == 24 and params["head_epochs"] == 1 and len(params["keeps"]) == 2
    assert all(keep in study.PROFILES.overrides["paper"]["keeps"] for keep in params["keeps"])
    notes = study.notes(params)
    assert notes[0].startswith("DRY RUN") and "the numbers mean nothing" in notes[0]
    assert "max_train_rows 24 (paper profile: all)" in notes[-1] and "keeps 2 schedules (paper profile: 8" in notes[-1]
    assert study.PROFILES.resolve("paper", max_train_rows=30)["max_train_rows"] == 30  # explicit overrides win


def test_dry_run_claims_no_target_and_caches_nothing(fixture_data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WORKBENCH_DRY_RUN", "1")
    params = study.PROFILES.resolve(
        "smoke", keeps=[[0.2, 0.5]], poolings=["mean"], runtimes=[], finetune=False, save_models=False
    )
    result = study.run(params, progress=False)
    assert result.headline["target_met"] is None and result.headline["dry_run"] is True
    assert study.verdict(result).startswith("**Dry run**") and "met" not in study.verdict(result)
    assert result.notes[0].startswith("DRY RUN") and len(result.frames.valid) <= 16
    assert not (tmp_path / "cache" / "pruning").exists()


def test_notebook_parameters_cell_lists_exactly_the_study_knobs():
    import ast
    from pathlib import Path

    import nbformat

    nb = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks" / "04_spatten.ipynb", 4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    names = [node.targets[0].id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)]
    assert names == ["profile", "report_dir", *study.PROFILES.names]
    source = "".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "workbench.bench" not in source and "for schedule in" not in source


def test_mean_all_pooling_counts_pruned_tokens_with_their_latest_state(deep_tiny):
    tokenizer, model, special = deep_tiny
    pruner = CascadePruner(model, None, special)
    batch, dense = _run(pruner, tokenizer, TEXTS)
    torch.testing.assert_close(dense.pooled("mean_all"), dense.pooled("mean"))
    pruner.schedule = PruneSchedule((1.0, 0.5, 0.5, 0.3), (1.0, 1.0, 1.0, 1.0))
    _, pruned = _run(pruner, tokenizer, TEXTS)
    real = batch["attention_mask"].bool()
    assert (pruned.latest_states[real].abs().sum(-1) > 0).all() and (pruned.latest_states[~real] == 0).all()
    i = 0
    final = pruned.positions[i, : int(pruned.mask[i].sum())]
    torch.testing.assert_close(pruned.latest_states[i, final], pruned.last_hidden_state[i, : len(final)])
    dropped_after_layer_0 = (pruned.token_masks[i, 0] & ~pruned.token_masks[i, 1]).nonzero().flatten()
    with torch.no_grad():
        hidden = model(**batch, output_hidden_states=True).hidden_states[1]  # layer 0's output, dense
    torch.testing.assert_close(pruned.latest_states[i, dropped_after_layer_0], hidden[i, dropped_after_layer_0])


def test_layer_poolings_of_the_pruner(deep_tiny):
    tokenizer, model, special = deep_tiny
    batch, dense = _run(CascadePruner(model, None, special), tokenizer, TEXTS)
    with torch.no_grad():
        hidden = model(**batch, output_hidden_states=True).hidden_states[1:]
    mask = batch["attention_mask"][..., None].float()
    means = [(h * mask).sum(1) / mask.sum(1) for h in hidden]
    torch.testing.assert_close(dense.layer_means, torch.stack(means, 1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(dense.pooled("mean_last2"), (means[-1] + means[-2]) / 2, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(dense.pooled("mean_layers"), sum(means) / 4, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(dense.pooled("mean_last9"), dense.pooled("mean_layers"))  # k capped at N
    torch.testing.assert_close(dense.pooled("cls"), hidden[-1][:, 0], atol=1e-5, rtol=1e-4)
    _, pruned = _run(CascadePruner(model, PruneSchedule((1.0, 0.5, 0.5, 0.3), (1.0,) * 4), special), tokenizer, TEXTS)
    torch.testing.assert_close(pruned.pooled("mean_all"), pruned.layer_means[:, -1])
    assert not torch.allclose(pruned.pooled("mean"), pruned.pooled("mean_all"))  # survivors only vs every token
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        dense.pooled("max")
    assert study.PROFILES.resolve("quick", poolings=["mean_last2", "cls"])["poolings"] == ["mean_last2", "cls"]
    with pytest.raises(ParameterError, match="mean_last0"):
        study.PROFILES.resolve("quick", poolings=["mean_last0"])


# Tolerances of the runtime peers on the tiny random model (hidden 32; logits of a fixed linear head, std ~0.15-0.3):
# ONNX Runtime fp32 within 1e-5 of PyTorch fp32; int8 (PyTorch dynamic, ONNX Runtime dynamic) within 0.02 absolute.
FP32_ATOL, INT8_ATOL = 1e-5, 0.02


def test_int8_and_onnx_logits_are_close_to_fp32(tiny, tmp_path):
    pytest.importorskip("onnxruntime")
    from workbench.methods.runtimes import LayerPooler, dense_runners

    batch = tiny.tokenize(TEXTS, 64)
    torch.manual_seed(0)
    head = torch.nn.Linear(tiny.hidden_size, 3)
    runners = dense_runners(tiny.model, ["torch_int8", "onnx_fp32", "onnx_int8"], batch, tmp_path)
    assert set(runners) == {"torch_int8", "onnx_fp32", "onnx_int8"}
    with torch.no_grad():
        reference = LayerPooler(tiny.model)(**batch)
        # the dense runtimes compute what the pruner computes at keep 1.0
        dense = CascadePruner.from_encoder(tiny)(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        torch.testing.assert_close(reference[0], dense.layer_means, atol=1e-5, rtol=1e-4)
        for name, runner in runners.items():
            out = runner(**batch)
            for pooling in ("mean_all", "mean_last2", "mean_layers", "cls"):
                fp32 = head(pool_layers(*reference, pooling))
                other = head(pool_layers(*out, pooling))
                atol = FP32_ATOL if name == "onnx_fp32" else INT8_ATOL
                torch.testing.assert_close(other, fp32, atol=atol, rtol=0, msg=f"{name} {pooling}")
                if name != "onnx_fp32":
                    assert (other - fp32).abs().max() > 1e-7, f"{name} did not quantize anything"
    assert (tmp_path / "encoder.onnx").is_file() and (tmp_path / "encoder-int8.onnx").stat().st_size < (
        tmp_path / "encoder.onnx"
    ).stat().st_size


def test_pruned_int8_runs_every_schedule_close_to_fp32(deep_tiny):
    from workbench.methods.runtimes import LayerPooler, quantize_linear_int8

    tokenizer, model, special = deep_tiny
    int8 = quantize_linear_int8(model)
    assert type(model.encoder.layer[0].output.dense) is torch.nn.Linear  # the original stays fp32
    batch, dense8 = _run(CascadePruner(int8, None, special), tokenizer, TEXTS)
    with torch.no_grad():
        hf8 = LayerPooler(int8)(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    torch.testing.assert_close(dense8.layer_means, hf8[0], atol=1e-4, rtol=1e-4)  # same int8 layers, same result
    for schedule in (PruneSchedule.spatten(4, 0.3, 1.0, 0.25, 0.25), PruneSchedule.spatten(4, 0.3, 0.5, 0.25, 0.25)):
        _, fp32 = _run(CascadePruner(model, schedule, special), tokenizer, TEXTS)
        _, quantized = _run(CascadePruner(int8, schedule, special), tokenizer, TEXTS)
        assert torch.isfinite(quantized.layer_means).all()
        torch.testing.assert_close(quantized.pooled("mean_all"), fp32.pooled("mean_all"), atol=0.05, rtol=0)


def test_a_missing_runtime_is_skipped_with_a_message(tiny, monkeypatch, tmp_path):
    import sys

    from workbench.methods.runtimes import dense_runners, runtime_problem

    assert "unknown runtime 'tensorrt'" in runtime_problem("tensorrt")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    said: list[str] = []
    runners = dense_runners(tiny.model, ["onnx_int8", "torch_int8"], tiny.tokenize(TEXTS[:2]), tmp_path, said.append)
    assert list(runners) == ["torch_int8"]
    assert said == [
        "skipped onnx_int8: onnx_int8 needs ONNX Runtime: pip install 'workbench[onnx]' (onnx, onnxruntime)"
    ]
    with pytest.raises(ParameterError, match="'tensorrt' is not allowed"):
        study.PROFILES.resolve("quick", runtimes=["tensorrt"])


def test_fine_tuning_with_pruning_on_moves_the_weights_of_a_copy(tiny, fixture_data_dir, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    params = study.PROFILES.resolve("smoke", finetune_rows=30, finetune_epochs=1)
    data = study.load(params)
    schedule = PruneSchedule.spatten(2, 0.5, 1.0)
    k = len(data.label_names)
    rng = np.random.default_rng(0)
    features, labels = rng.normal(size=(40, 32)).astype(np.float32), np.arange(40) % k
    heads = {
        (name, "pruning_aware", "cls"): study.train_head(features, labels, k, 0, 2)[0]
        for name in ("dense", schedule.name)
    }
    before = tiny.model.encoder.layer[0].output.dense.weight.clone()
    kept: dict[str, torch.nn.Module] = {}
    rows = study.fine_tune_comparison(tiny, data, schedule, "cls", heads, params, progress=False, keep=kept)
    assert list(rows["training"]) == ["finetuned", "finetuned_post_hoc", "finetuned_pruning_aware"]
    assert list(rows["schedule"]) == ["dense", schedule.name, schedule.name]
    assert rows["macro_f1"].between(0, 1).all() and (rows["finetune_rows"] < 30).all()
    torch.testing.assert_close(tiny.model.encoder.layer[0].output.dense.weight, before)  # the encoder is untouched
    tuned = kept["finetuned_pruning_aware"].pruner.model.encoder.layer[0].output.dense.weight
    assert not torch.allclose(tuned, before) and kept["finetuned_pruning_aware"].pruner.schedule == schedule
