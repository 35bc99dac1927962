"""Multi-level attention, supervised contrastive loss, lightweight module, the text-model registry and the study."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from workbench.methods.multilevel import (
    MultiLevelClassifier,
    MultiLevelConfig,
    contrastive_objective,
    count_parameters,
    feed_forward_cost,
    local_window_mask,
    measure_flops,
    supervised_contrastive_loss,
)
from workbench.methods.textmodels import tokenize_texts
from workbench.registry import UnknownNameError, build, names
from workbench.training import TrainConfig, fit

TEXT_MODELS = ("bilstm", "textcnn", "transformer", "multilevel", "multilevel_lightweight")


def build_text_model(name: str, vocab_size: int, **kwargs) -> torch.nn.Module:
    return build("text_model", name, vocab_size, **kwargs)


VOCAB = 50
SIZE = dict(d_model=16, num_layers=2, num_heads=2, d_ff=32, max_length=24, window=2, dropout=0.0)


def _batch(n: int = 8, length: int = 24, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (n, length), generator=gen)
    lengths = torch.randint(length // 3, length + 1, (n,), generator=gen)
    mask = torch.arange(length)[None, :] < lengths[:, None]
    ids = ids.masked_fill(~mask, 0)
    labels = torch.arange(n) % 2
    return ids, mask, labels


def test_local_window_mask_is_a_band():
    mask = local_window_mask(6, 1)
    assert mask.tolist()[2] == [False, True, True, True, False, False]
    assert torch.equal(mask, mask.T)


def test_local_attention_never_attends_outside_its_window_or_to_padding():
    torch.manual_seed(0)
    model = MultiLevelClassifier(MultiLevelConfig(vocab_size=VOCAB, **SIZE))
    ids, mask, _ = _batch()
    maps = model.attention_maps(ids, mask)
    length, window = ids.shape[1], SIZE["window"]
    outside = ~local_window_mask(length, window)
    assert len(maps) == SIZE["num_layers"]
    for layer in maps:
        local, global_ = layer["local"], layer["global"]
        assert local.shape == (8, SIZE["num_heads"], length, length)
        assert local[:, :, outside].abs().max() == 0  # exactly zero outside the band, every head and layer
        real = mask[:, None, :, None] & mask[:, None, None, :]
        rows = mask[:, None, :].expand(-1, SIZE["num_heads"], -1)
        # real queries: weights sum to one over real keys only
        assert torch.allclose(local.sum(-1)[rows], torch.ones(()), atol=1e-5)
        assert torch.allclose((global_ * real).sum(-1)[rows], torch.ones(()), atol=1e-5)
        # the global view does reach beyond the window (otherwise the two views would be the same)
        assert global_[:, :, outside].max() > 0
        assert layer["gate"].shape == (8, length) and 0 < layer["gate"].min() and layer["gate"].max() < 1


def test_plain_transformer_has_no_local_view_or_gate():
    model = MultiLevelClassifier(MultiLevelConfig(vocab_size=VOCAB, multi_level=False, **SIZE))
    ids, mask, _ = _batch()
    assert set(model.attention_maps(ids, mask)[0]) == {"global"}
    plain_layer = count_parameters(model.layers[0])
    multi = MultiLevelClassifier(MultiLevelConfig(vocab_size=VOCAB, multi_level=True, **SIZE))
    d = SIZE["d_model"]
    assert count_parameters(multi.layers[0]) - plain_layer == 2 * d * d + d  # only the gate is added


def test_padding_does_not_change_the_prediction():
    torch.manual_seed(0)
    model = MultiLevelClassifier(MultiLevelConfig(vocab_size=VOCAB, **SIZE)).eval()
    ids, mask, _ = _batch(n=2)
    first = model(ids[:1, :10], mask[:1, :10].clone().fill_(True))
    padded_ids = torch.cat([ids[:1, :10], torch.zeros(1, 14, dtype=torch.long)], dim=1)
    padded_mask = torch.arange(24)[None] < 10
    assert torch.allclose(first, model(padded_ids, padded_mask), atol=1e-5)


def test_supervised_contrastive_loss_matches_a_hand_computation():
    features = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1])
    t = 0.5
    z = features / features.norm(dim=1, keepdim=True)
    sim = (z @ z.T).tolist()
    total = 0.0
    for i in range(4):
        denominator = sum(math.exp(sim[i][a] / t) for a in range(4) if a != i)
        positives = [p for p in range(4) if p != i and labels[p] == labels[i]]
        total += -sum(math.log(math.exp(sim[i][p] / t) / denominator) for p in positives) / len(positives)
    expected = total / 4
    assert supervised_contrastive_loss(features, labels, t).item() == pytest.approx(expected, rel=1e-6)
    # scale invariance (features are normalised) and a value by hand for anchor 0: sims 0.6, 0, -1 -> 1.2, 0, -2
    assert supervised_contrastive_loss(3 * features, labels, t).item() == pytest.approx(expected, rel=1e-6)
    anchor0 = -math.log(math.exp(1.2) / (math.exp(1.2) + 1 + math.exp(-2)))
    assert -math.log(math.exp(sim[0][1] / t) / sum(math.exp(sim[0][a] / t) for a in (1, 2, 3))) == pytest.approx(
        anchor0
    )


def test_contrastive_loss_skips_anchors_without_positives_and_prefers_clustered_features():
    labels = torch.tensor([0, 0, 1])
    clustered = torch.tensor([[1.0, 0.1], [1.0, -0.1], [-1.0, 0.0]])
    mixed = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.1]])
    assert supervised_contrastive_loss(clustered, labels) < supervised_contrastive_loss(mixed, labels)
    lonely = supervised_contrastive_loss(torch.randn(3, 4, requires_grad=True), torch.tensor([0, 1, 2]))
    assert lonely.item() == 0.0 and lonely.requires_grad


def test_lightweight_module_cuts_feed_forward_params_and_flops():
    kw = dict(vocab_size=VOCAB, d_model=32, num_layers=2, num_heads=2, d_ff=128, max_length=24, bottleneck_ratio=4)
    full = MultiLevelClassifier(MultiLevelConfig(lightweight=False, **kw))
    light = MultiLevelClassifier(MultiLevelConfig(lightweight=True, **kw))
    saved_per_layer = feed_forward_cost(32, 128)["params"] - feed_forward_cost(32, 32)["params"]
    assert count_parameters(full) - count_parameters(light) == 2 * saved_per_layer
    ids, mask, _ = _batch(n=1)
    saved_flops = 2 * (feed_forward_cost(32, 128, tokens=24)["flops"] - feed_forward_cost(32, 32, tokens=24)["flops"])
    assert measure_flops(full, ids, mask) - measure_flops(light, ids, mask) == saved_flops


def test_every_text_model_is_registered():
    assert set(TEXT_MODELS) <= set(names("text_model"))


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_every_model_trains_one_step_and_lowers_its_loss(name):
    torch.manual_seed(0)
    kwargs = SIZE if name not in ("bilstm", "textcnn") else dict(d_model=16, dropout=0.0)
    model = build_text_model(name, VOCAB, num_classes=2, **kwargs)
    ids, mask, labels = _batch(n=8)
    objective = contrastive_objective(0.5 if "multilevel" in name else 0.0)
    loss_of = (
        objective
        if hasattr(model, "features")
        else (lambda m, b: torch.nn.functional.cross_entropy(m(b[0], b[1]), b[2]))
    )
    model.train()
    before = loss_of(model, (ids, mask, labels))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    optimizer.zero_grad()
    before.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad and p.dim() > 1)
    optimizer.step()
    after = loss_of(model, (ids, mask, labels))
    assert after.item() < before.item()
    assert model(ids, mask).shape == (8, 2)


def test_fit_is_reproducible_with_the_same_seed():
    ids, mask, labels = _batch(n=16)
    ds = torch.utils.data.TensorDataset(ids, mask, labels)
    config = TrainConfig(epochs=2, lr=1e-2, batch_size=8, seed=3, progress=False)
    outputs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = build_text_model("multilevel", VOCAB, **SIZE)
        fit(model, ds, ds, config, loss_fn=contrastive_objective(0.5))
        outputs.append(model(ids, mask).detach())
    assert torch.equal(outputs[0], outputs[1])


def test_unknown_model_name_lists_the_registry():
    with pytest.raises(UnknownNameError, match="unknown text_model 'gpt9'.*bilstm"):
        build_text_model("gpt9", VOCAB)


def test_tokenize_texts_truncates_pads_and_caches(tmp_path, monkeypatch):
    from workbench.encoders import load_encoder

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    tokenizer = load_encoder("tiny").tokenizer
    texts = ["a good film", "bad " * 50]
    first = tokenize_texts(texts, tokenizer, max_length=16)
    assert first.ids.shape == (2, 16) and first.mask[1].all() and first.mask[0].sum() == 5  # [CLS] a good film [SEP]
    assert list((tmp_path / "token-ids").glob("*.npz"))
    again = tokenize_texts(texts, tokenizer, max_length=16)
    assert np.array_equal(first.ids, again.ids) and np.array_equal(first.mask, again.mask)
    ds = first.dataset([0, 1], index=[1])
    assert ds.tensors[0].shape == (1, 16) and ds.tensors[2].tolist() == [1]
    assert not list((tmp_path / "token-ids").glob("*.partial"))


def test_tokenize_cache_writes_are_atomic_and_safe_in_parallel(tmp_path, monkeypatch):
    """Writers use their own temporary file and a rename: concurrent runs never clash, a failed write leaves
    neither a cache entry nor a temporary file behind."""
    from concurrent.futures import ThreadPoolExecutor

    from workbench.encoders import load_encoder

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    tokenizer = load_encoder("tiny").tokenizer
    texts = [f"review number {i} was fine" for i in range(50)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: tokenize_texts(texts, tokenizer, max_length=12), range(8)))
    assert all(np.array_equal(r.ids, results[0].ids) for r in results)
    assert len(list((tmp_path / "token-ids").iterdir())) == 1  # one entry, no leftovers

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        tokenize_texts(["another text"], tokenizer, max_length=12)
    assert len(list((tmp_path / "token-ids").iterdir())) == 1


def test_fused_attention_path_matches_the_explicit_weights_path():
    torch.manual_seed(0)
    model = MultiLevelClassifier(MultiLevelConfig(vocab_size=VOCAB, **SIZE)).eval()
    ids, mask, _ = _batch()
    fused = model(ids, mask)
    for layer in model.layers:
        layer.attention.keep_weights = True
    explicit = model(ids, mask)
    assert torch.allclose(fused, explicit, atol=1e-5)


def test_bilstm_flops_are_counted_analytically():
    from workbench.methods.textmodels import recurrent_flops

    model = build_text_model("bilstm", VOCAB, d_model=16)
    assert recurrent_flops(model, 10) == 2 * 10 * 2 * 4 * (16 + 16) * 16
    assert recurrent_flops(build_text_model("textcnn", VOCAB, d_model=16), 10) == 0


def test_encoder_classifier_for_bert_fine_tuning_trains_one_step():
    from workbench.encoders import load_encoder
    from workbench.methods.textmodels import EncoderClassifier

    torch.manual_seed(0)
    model = EncoderClassifier(load_encoder("tiny", device="cpu").model, dropout=0.0).train()
    ids, mask, labels = _batch(n=8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = torch.nn.functional.cross_entropy(model(ids, mask), labels)
    before.backward()
    optimizer.step()
    after = torch.nn.functional.cross_entropy(model(ids, mask), labels)
    assert after.item() < before.item()


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_padding_does_not_change_any_models_output(name):
    """A review scores the same alone, padded further, or batched with a longer one (eval mode)."""
    torch.manual_seed(0)
    kwargs = SIZE if name not in ("bilstm", "textcnn") else dict(d_model=16)
    model = build_text_model(name, VOCAB, **kwargs).eval()
    ids = torch.randint(1, VOCAB, (2, 20))
    mask = torch.ones(2, 20, dtype=torch.bool)
    ids[0, 12:], mask[0, 12:] = 0, False
    with torch.no_grad():
        batched = model(ids, mask)[0]
        alone = model(ids[:1, :12], mask[:1, :12])[0]
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-4)


def test_bilstm_max_pools_outputs_and_last_reads_final_states():
    torch.manual_seed(0)
    model = build_text_model("bilstm", VOCAB, d_model=8).eval()
    assert model.pooling == "max"
    ids, mask = torch.randint(1, VOCAB, (1, 6)), torch.ones(1, 6, dtype=torch.bool)
    with torch.no_grad():
        outputs, (h, _) = model.lstm(model.embedding(ids))
        expected = model.classifier(outputs.amax(1))
        torch.testing.assert_close(model(ids, mask), expected)
        model.pooling = "last"
        torch.testing.assert_close(model(ids, mask), model.classifier(torch.cat([h[-2], h[-1]], -1)))


def test_bert_baselines_return_one_metric_row_per_run():
    from workbench.encoders import load_encoder
    from workbench.methods.textmodels import fine_tuned_encoder_baseline, frozen_encoder_baseline

    texts = [f"{'great lovely fine' if i % 2 else 'awful dull bad'} film number {i}" for i in range(16)]
    labels = np.arange(16) % 2
    frozen = frozen_encoder_baseline(load_encoder("tiny"), texts[:12], labels[:12], texts[12:], labels[12:], 16)
    assert frozen["model"] == "BERT" and frozen["test_size"] == 4 and frozen["bert_train_size"] == 12
    assert 0.0 <= frozen["accuracy"] <= 1.0 and frozen["inference_reviews_per_second"] > 0
    assert frozen["architecture"] == "tiny frozen + logistic regression" and frozen["seed"] is None
    tuned = fine_tuned_encoder_baseline(
        "tiny", texts[:8], labels[:8], texts[8:12], labels[8:12], texts[12:], labels[12:], [0, 1], 16, 4
    )
    assert [r["seed"] for r in tuned] == [0, 1] and all(r["epochs_run"] >= 1 for r in tuned)


# ------------------------------------------------------------------------------------------------- the study
def test_study_profiles_check_values_and_notebook_lists_every_knob():
    import json
    from pathlib import Path

    from workbench.profiles import ParameterError
    from workbench.studies import multilevel as study

    quick = study.PROFILES.resolve("quick")
    assert quick["profile"] == "quick" and quick["base"] == "pretrained" and quick["fine_tune_bert"] is True
    assert quick["train_size"] + quick["bert_train_size"] > 3000 and quick["test_size"] is None  # full 25k test set
    assert len(quick["seeds"]) >= 3
    paper = study.PROFILES.resolve("paper")
    assert paper["train_size"] is None and paper["base"] == "scratch"
    with pytest.raises(ParameterError):
        study.PROFILES.resolve("quick", base="frozen")
    assert study.PROFILES.resolve("smoke", seeds="[3, 4, 5]")["seeds"] == [3, 4, 5]
    with pytest.raises(ParameterError, match="did you mean 'seeds'"):
        study.PROFILES.resolve("quick", seed=1)
    with pytest.raises(ParameterError, match="below the minimum"):
        study.PROFILES.resolve("quick", dev_size=1)
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "05_multilevel.ipynb"
    cells = json.loads(notebook.read_text())["cells"]
    source = "".join(next(c for c in cells if "parameters" in c["metadata"].get("tags", []))["source"])
    assigned = [line.split("=")[0].strip() for line in source.splitlines() if "=" in line]
    assert assigned == ["profile", "report_dir", *study.PROFILES.names]


def test_study_notes_follow_the_parameters_not_the_profile_name():
    from workbench.studies import multilevel as study

    quick, paper = study.PROFILES.resolve("quick"), study.PROFILES.resolve("paper")
    quick_notes = " ".join(study.notes(quick))
    assert "Encoder: minilm fine-tuned end to end ONCE" in quick_notes and "frozen" not in quick_notes
    assert "head + tail" in quick_notes and "4,000 training reviews of its own" in quick_notes
    assert "Traded for time" in quick_notes and "128 tokens per review (the paper: 512)" in quick_notes
    frozen_states = " ".join(study.notes(study.PROFILES.resolve("quick", fine_tune_bert=False)))
    assert "Encoder: minilm frozen" in frozen_states and "no BERT row" in frozen_states
    # the scratch base keeps its own notes
    scratch = study.PROFILES.resolve("quick", base="scratch", fine_tune_bert=False)
    scratch_bert = next(n for n in study.notes(scratch) if n.startswith("BERT row"))
    assert "frozen" in scratch_bert and "minilm" in scratch_bert and "one row and no seed spread" in scratch_bert
    assert not any("fine-tuned" in n for n in study.notes(scratch))
    paper_bert = next(n for n in study.notes(paper) if n.startswith("BERT row"))
    assert "fine-tuned end to end" in paper_bert and "frozen" not in paper_bert and "bert-base-uncased" in paper_bert
    assert not any("frozen" in n for n in study.notes(paper))
    assert "batch 32" in paper_bert and "one row per seed (3)" in paper_bert and "512 tokens per review" in paper_bert
    assert "full 25k test set" in study.notes(paper)[0] and "all training reviews" in study.notes(paper)[0]
    assert "Settings as in the paper profile." in study.notes(paper)
    differences = next(n for n in study.notes(quick) if n.startswith("Differences"))
    assert "base=pretrained (paper: scratch)" in differences and "d_model=64 (paper: 256)" in differences
    assert " max_length=" not in differences  # a scratch-only knob is not a difference of the pretrained base
    assert any("mean nothing" in n for n in study.notes(study.PROFILES.resolve("smoke")))
    assert not any("mean nothing" in n for n in study.notes(quick))


def test_dry_run_caps_the_paper_profile_and_says_so(monkeypatch):
    from workbench.studies import multilevel as study

    monkeypatch.setenv("WORKBENCH_DRY_RUN", "1")
    params = study.PROFILES.resolve("paper")
    assert params["dry_run"] is True and params["seeds"] == [0] and params["epochs"] == 1
    assert params["fine_tune_bert"] and params["bert_encoder"] == "bert-base-uncased"
    assert params["bert_max_length"] == 512 and params["max_length"] == 128
    assert (params["d_model"], params["num_layers"], params["d_ff"]) == (256, 4, 1024)  # the paper's model sizes
    notes = study.notes(params)
    assert notes[0].startswith("DRY RUN") and "random weights" in notes[0] and "mean nothing" in notes[0]
    differences = next(n for n in notes if n.startswith("Differences"))
    assert "dev_size=4 (paper: 2500)" in differences and "max_length=128 (paper: 512)" in differences
    assert "Settings as in the paper profile." not in notes
    monkeypatch.delenv("WORKBENCH_DRY_RUN")
    assert not any("DRY RUN" in n for n in study.notes(study.PROFILES.resolve("paper")))


def test_dry_run_fine_tunes_bert_base_from_its_config_offline_for_one_step(monkeypatch):
    from workbench.methods.textmodels import fine_tuned_encoder_baseline

    monkeypatch.setenv("WORKBENCH_DRY_RUN", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    texts = [f"{'great lovely fine' if i % 2 else 'awful dull bad'} film number {i}" for i in range(8)]
    labels = np.arange(8) % 2
    (row,) = fine_tuned_encoder_baseline(
        "bert-base-uncased", texts[:4], labels[:4], texts[4:6], labels[4:6], texts[6:], labels[6:], [0], 16, 4
    )
    assert row["architecture"] == "bert-base-uncased" and row["params"] == 109_482_240 + 768 * 2 + 2
    assert row["epochs_run"] == 1  # up to 3 epochs, but a dry run stops after one optimisation step


def _ladder_rows(gains: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"model": "BERT", "ablation_step": None, "seed": None, "accuracy": 0.9}]
    for step, accuracies in gains.items():
        rows += [{"model": step, "ablation_step": step, "seed": s, "accuracy": a} for s, a in enumerate(accuracies)]
    return pd.DataFrame(rows)


def test_ablation_table_judges_each_step_against_the_seed_spread():
    from workbench.studies import multilevel as study

    metrics = _ladder_rows({
        "1 plain": [0.70, 0.71, 0.72],  # std 1 point
        "2 + multi-level": [0.80, 0.81, 0.82],  # +10 points, spread 2: better
        "3 + contrastive": [0.805, 0.815, 0.825],  # +0.5, spread 2: within spread
        "4 + lightweight": [0.70, 0.71, 0.72],  # -10.5: worse
    })  # fmt: skip
    table = study.ablation_table(metrics).set_index("step")
    assert list(table.index) == ["1 plain", "2 + multi-level", "3 + contrastive", "4 + lightweight"]
    assert table["verdict"].tolist()[1:] == ["better", "within spread", "worse"]
    assert table.loc["2 + multi-level", "gain vs previous"] == pytest.approx(10.0)
    assert table.loc["2 + multi-level", "spread (sum of stds)"] == pytest.approx(2.0)
    assert table.loc["2 + multi-level", "paired gains"] == "+10.00, +10.00, +10.00"
    assert table.loc["4 + lightweight", "paper accuracy"] == study.PAPER["ablation"]["4 + lightweight"]
    assert table.loc["3 + contrastive", "component"] == "The contrastive loss"


def test_study_load_and_run_on_the_fixture_data(fixture_data_dir, tmp_path, monkeypatch):
    """The whole study on the fixture IMDB (60 train / 60 test reviews): disjoint stratified subsets, only the rows
    used tokenized, one row per model and seed plus the BERT row, tables, views' data and the saved report."""
    import json

    from workbench.studies import multilevel as study

    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    params = study.PROFILES.resolve(
        "smoke",
        base="scratch",
        fine_tune_bert=False,
        seeds=[0, 1],
        epochs=1,
        test_size=20,
        dev_size=10,
        train_size=30,
        projection_size=12,
    )
    data = study.load(params)
    assert (len(data.train), len(data.dev), len(data.test)) == (30, 10, 20)
    assert (len(data.train_ids), len(data.dev_ids), len(data.test_ids)) == (30, 10, 20)
    assert data.train["label"].value_counts().tolist() == [15, 15]  # stratified
    assert data.dev["label"].value_counts().tolist() == [5, 5]
    assert not set(data.train["text"]) & set(data.dev["text"])
    assert not set(data.train["text"]) & set(data.test["text"])
    assert study.load(params).train["text"].tolist() == data.train["text"].tolist()  # seeded

    result = study.run(params, data, progress=False)
    metrics = result.metrics
    assert len(metrics) == len(study.EXPERIMENTS) * 2 + 1
    assert metrics.groupby("model").size().drop("BERT").eq(2).all()
    assert (metrics["test_size"] == 20).all() and (metrics["train_size"] == 30).all()
    assert metrics.loc[metrics["model"] == "+ contrastive", "contrastive_weight"].eq(0.5).all()
    assert metrics.loc[metrics["model"] == "+ multi-level", "contrastive_weight"].eq(0.0).all()
    assert set(result.curves["model"]) == {name for name, *_ in study.EXPERIMENTS}
    assert set(result.runs) == {name for name, *_ in study.EXPERIMENTS}
    assert result.projection["+ contrastive"].shape == (12, 2) and len(result.projection_labels) == 12
    example = result.attention_example
    n = len(example["tokens"])
    assert example["global"].shape == example["local"].shape == (n, n) and example["gate"].shape == (n,)

    tables = study.tables(result)
    assert list(tables["main"].index) == [m for m in study.TABLE_ORDER if m != study.MEAN_LINEAR]
    assert tables["main"].loc["Transformer", "seeds"] == 2 and "±" in tables["main"].loc["Transformer", "accuracy"]
    assert tables["main"].loc["BERT", "accuracy"].endswith("(one run)")
    assert tables["main"].loc[study.PROPOSED, "paper accuracy"] == 92.3
    assert set(tables["ablation"]["verdict"].dropna()) <= {"better", "worse", "within spread"}
    assert tables["feed_forward"].loc["lightweight", "hidden"] == params["d_ff"] // params["bottleneck_ratio"]
    assert list(tables["cost"].index) == [m for m in study.TABLE_ORDER if m != study.MEAN_LINEAR]

    path = result.save(tmp_path / "report")
    saved = json.loads(path.read_text())
    assert saved["study"] == "multilevel" and saved["profile"] == "smoke" and len(saved["metrics"]) == len(metrics)
    assert any(note.startswith("BERT row: tiny frozen") for note in saved["notes"])
    assert (path.parent / "learning_curves.csv").is_file()


# ------------------------------------------------------------------------------- the pretrained base: token states
STATE_SIZE = dict(d_model=8, num_layers=1, num_heads=2, d_ff=16, window=2, bottleneck_ratio=2, dropout=0.0)


def _state_cache(n: int = 6, length: int = 10, hidden: int = 12, seed: int = 0):
    from workbench.methods.textmodels import TokenStatesCache

    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, length + 1, n).astype(np.int32)
    states = rng.normal(size=(n, length, hidden)).astype(np.float16)
    states[np.arange(length)[None, :] >= lengths[:, None]] = 0
    return TokenStatesCache(states, lengths, np.zeros((n, 2), np.float32))


@pytest.mark.parametrize("name", ["mean_linear", "bilstm", "transformer", "multilevel", "multilevel_lightweight"])
def test_every_state_model_trains_and_ignores_padding(name):
    from workbench.methods.textmodels import build_state_model

    torch.manual_seed(0)
    model = build_state_model(name, 12, **STATE_SIZE)
    cache = _state_cache()
    states, mask = cache.batch(range(6))
    labels = torch.arange(6) % 2
    objective = contrastive_objective(0.5 if hasattr(model, "features") else 0.0)
    loss_of = objective if hasattr(model, "features") else (lambda m, b: F.cross_entropy(m(b[0], b[1]), b[2]))
    model.train()
    before = loss_of(model, (states, mask, labels))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before.backward()
    optimizer.step()
    assert loss_of(model, (states, mask, labels)).item() < before.item()
    model.eval()
    with torch.no_grad():  # a review scores the same alone (cut to its length) as in a padded batch
        alone = model(*cache.batch([0]))
        longer = (
            torch.cat([states[:1], torch.randn(1, 4, 12)], 1),
            torch.cat([mask[:1], torch.zeros(1, 4, dtype=bool)], 1),
        )
        torch.testing.assert_close(model(states, mask)[:1], alone, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(model(*longer), alone, atol=1e-5, rtol=1e-4)


def test_unknown_state_model_names_the_known_ones():
    from workbench.methods.textmodels import build_state_model

    with pytest.raises(ValueError, match="unknown state model 'gpt9'.*mean_linear"):
        build_state_model("gpt9", 12)


def test_head_tail_ids_keep_the_start_and_the_end():
    from workbench.encoders import load_encoder
    from workbench.methods.textmodels import head_tail_ids

    tokenizer = load_encoder("tiny").tokenizer
    words = " ".join(["good"] * 3 + ["film"] * 20 + ["bad"] * 3)
    (ids,) = head_tail_ids([words], tokenizer, max_length=10, head_tokens=3)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens == ["[CLS]", "good", "good", "good", "film", "film", "bad", "bad", "bad", "[SEP]"]
    (head_only,) = head_tail_ids([words], tokenizer, max_length=6, head_tokens=None)
    assert tokenizer.convert_ids_to_tokens(head_only) == ["[CLS]", "good", "good", "good", "film", "[SEP]"]
    (short,) = head_tail_ids(["a good film"], tokenizer, max_length=10, head_tokens=3)
    assert tokenizer.convert_ids_to_tokens(short) == ["[CLS]", "a", "good", "film", "[SEP]"]


def test_encode_states_matches_the_classifier_and_zeroes_padding():
    from workbench.methods.finetune import classifier_logits, load_classifier
    from workbench.methods.textmodels import encode_states, head_tail_ids

    model, tokenizer = load_classifier("tiny", 2, seed=0)
    texts = ["a good film", "bad " * 30, "an average film with a fine cast"]
    ids = head_tail_ids(texts, tokenizer, max_length=16)
    cache = encode_states(model, ids, 16, tokenizer.pad_token_id)
    assert cache.states.shape == (3, 16, 32) and cache.states.dtype == np.float16
    assert cache.lengths.tolist() == [len(x) for x in ids]
    assert not cache.states[0, cache.lengths[0] :].any() and cache.states[0, : cache.lengths[0]].any()
    expected = classifier_logits(model, tokenizer, texts, max_length=16)
    np.testing.assert_allclose(cache.logits, expected, atol=1e-4)
    batch = tokenizer(texts, truncation=True, max_length=16, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model.eval()(batch["input_ids"], batch["attention_mask"]).logits.numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    pooled = classifier_logits(model, tokenizer, texts, max_length=16, output="pooled")
    np.testing.assert_allclose(model.head(torch.from_numpy(pooled)).detach().numpy(), expected, atol=1e-4)


def test_encode_states_in_bf16_autocast_stays_close_to_fp32_and_keys_its_own_cache(monkeypatch):
    """precision='bf16' runs the states pass under bf16 autocast (a few parts in a hundred from fp32, the same
    layout); the cached states of an 'auto' run are keyed by the arithmetic it resolves to on this machine."""
    import workbench.runtime as runtime
    from workbench.methods.finetune import load_classifier
    from workbench.methods.textmodels import encode_states, head_tail_ids
    from workbench.studies.multilevel import PROFILES, STATE_SPLITS, _states_key, notes

    model, tokenizer = load_classifier("tiny", 2, seed=0)
    ids = head_tail_ids(["a good film", "bad " * 30, "an average film"], tokenizer, max_length=16)
    exact = encode_states(model, ids, 16, tokenizer.pad_token_id, precision="no")
    calls = []
    real_autocast = torch.autocast
    monkeypatch.setattr(torch, "autocast", lambda *a, **k: calls.append(k["dtype"]) or real_autocast(*a, **k))
    half = encode_states(model, ids, 16, tokenizer.pad_token_id, precision="bf16")
    assert calls == [torch.bfloat16] and half.states.dtype == np.float16
    assert (half.lengths == exact.lengths).all() and not half.states[0, half.lengths[0] :].any()
    assert not np.array_equal(half.states, exact.states)  # the pass really ran in bf16
    np.testing.assert_allclose(half.states, exact.states, atol=0.1)
    np.testing.assert_allclose(half.logits, exact.logits, atol=0.05)

    params = PROFILES.resolve("smoke", encoder_precision="auto")
    data = type("Data", (), {"ids": {n: [[1, 2, 3]] for n in ("encoder_train", *STATE_SPLITS)},
                             "encoder_train": pd.DataFrame({"label": [1]})})()  # fmt: skip
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    keys = {}
    for amx in (True, False):
        monkeypatch.setattr(runtime, "native_bf16", lambda amx=amx: amx)
        keys[amx] = _states_key(params, data)
    assert keys[True] != keys[False]
    assert keys[False] == _states_key({**params, "encoder_precision": "no"}, data)
    assert keys[True] == _states_key({**params, "encoder_precision": "bf16"}, data)
    monkeypatch.setattr(runtime, "native_bf16", lambda: True)
    assert "bf16 autocast (encoder_precision='auto'" in " ".join(notes(PROFILES.resolve("quick")))


def test_state_batches_are_cut_to_their_longest_review_and_never_mix_caches():
    from workbench.methods.textmodels import StateDataset, collate_states

    cache, other = _state_cache(), _state_cache(seed=1)
    data = StateDataset(cache, np.arange(6) % 2)
    states, mask, labels = collate_states([data[0], data[2]])
    longest = max(cache.lengths[0], cache.lengths[2])
    assert states.shape == (2, longest, 12) and states.dtype == torch.float32 and labels.tolist() == [0, 0]
    assert mask.sum(1).tolist() == [cache.lengths[0], cache.lengths[2]]
    with pytest.raises(ValueError, match="mixes rows"):
        collate_states([data[0], StateDataset(other, np.zeros(6))[1]])
    with pytest.raises(ValueError, match="6 cached rows but 2 labels"):
        StateDataset(cache, [0, 1])


def test_pretrained_base_trains_every_model_on_one_set_of_cached_states(fixture_data_dir, tmp_path, monkeypatch):
    """The quick default on the fixture with the tiny encoder: the encoder is fine-tuned once, each split is encoded
    once, every model trains on those states (one row per model and seed, plus the encoder alone), and a second run
    with the states cache reads them back instead of fine-tuning and encoding again."""
    from workbench.studies import multilevel as study

    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    calls = {"finetune": 0, "encode": 0}

    def counting(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(study, "finetune_on_ids", counting("finetune", study.finetune_on_ids))
    monkeypatch.setattr(study, "encode_states", counting("encode", study.encode_states))
    params = study.PROFILES.resolve(
        "smoke", seeds=[0, 1, 2], epochs=1, test_size=20, dev_size=10, train_size=16, bert_train_size=20,
        projection_size=12, cache_states=True,
    )  # fmt: skip
    data = study.load(params)
    assert (len(data.encoder_train), len(data.train), len(data.dev), len(data.test)) == (20, 16, 10, 20)
    assert not set(data.encoder_train["text"]) & (set(data.train["text"]) | set(data.dev["text"]))
    assert all(len(ids) <= params["bert_max_length"] for ids in data.ids["test"])
    result = study.run(params, data, progress=False)
    assert calls == {"finetune": 1, "encode": 3}  # train, dev, test: once each, for 6 models x 3 seeds
    metrics = result.metrics
    per_model = metrics[metrics["model"] != "BERT"].groupby("model")["seed"].apply(sorted)
    assert set(per_model.index) == {name for name, *_ in study.STATE_EXPERIMENTS}
    assert all(seeds == [0, 1, 2] for seeds in per_model)
    (encoder_row,) = metrics[metrics["model"] == "BERT"].to_dict("records")
    assert encoder_row["bert_train_size"] == 20 and encoder_row["test_size"] == 20
    assert (metrics["test_size"] == 20).all() and (metrics["states"] == "fine-tuned").all()
    assert metrics["accuracy"].between(0, 1).all()
    assert result.headline["best_model"] in set(metrics["model"]) and result.headline["target_reached"] in (True, False)
    example = result.attention_example
    n = len(example["tokens"])
    assert example["global"].shape == example["local"].shape == (n, n) and example["gate"].shape == (n,)
    tables = study.tables(result)
    assert study.MEAN_LINEAR in tables["main"].index and "TextCNN" not in tables["main"].index

    again = study.run(params, data, progress=False)
    assert calls == {"finetune": 1, "encode": 3}  # read back from the cache: nothing fine-tuned or encoded
    (cached_row,) = again.metrics[again.metrics["model"] == "BERT"].to_dict("records")
    assert cached_row["accuracy"] == encoder_row["accuracy"]
    assert any("read from the cache" in n for n in again.notes)
