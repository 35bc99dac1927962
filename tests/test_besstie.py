"""The BESSTIE study on the fixture tree: the multitask loader, every matrix cell as a metric row, no evaluation
text in any training set, seeded-split marking, domain shift, timing, figures, and the offline paper profile."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.data import load_besstie
from workbench.data.besstie import load_besstie_multitask
from workbench.profiles import ParameterError
from workbench.registry import build
from workbench.studies.besstie import (
    CROSS_VARIETY_TASKS,
    FINETUNE_SOURCES,
    HEAD_VARIANTS,
    PAPER,
    PROFILES,
    finetune_seeds,
    headline,
    load,
    load_seed,
    make_inputs,
    notes,
    paper_comparison,
    recipe,
    run,
    run_cross_variety,
    run_finetuned,
    seconds_per_batch,
    tables,
    target_statement,
    target_table,
    timing_table,
)
from workbench.viz.besstie import cross_variety_matrix

VARIETIES = ("en-AU", "en-IN", "en-UK")


@pytest.fixture(scope="module")
def fixture_data(fixture_data_dir):
    patch = pytest.MonkeyPatch()
    patch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    yield fixture_data_dir
    patch.undo()


def _params(**overrides):
    small = dict(epochs=1, max_train_rows=24, max_domain_rows=24, timing_batches=1)
    return PROFILES.resolve("smoke", **{**small, **overrides})


@pytest.fixture(scope="module")
def smoke_run(fixture_data):
    return run(_params(), progress=False)


def test_multitask_loader_carries_both_labels_and_keeps_the_seeded_split(fixture_data):
    train = load_besstie_multitask(split="train", seed=3)
    assert {"text", "label", "sarcasm", "variety", "source", "seeded_split"} <= set(train.columns)
    assert set(train["label"]) == {0, 1} and set(train["sarcasm"]) == {0, 1}
    assert set(train.groupby(["variety", "source"]).groups) == {(v, s) for v in VARIETIES for s in ("Google", "Reddit")}
    wide = train[(train["variety"] == "en-AU") & (train["source"] == "Google")]
    single = load_besstie("Sarcasm", "en-AU", "Google", "train")
    assert list(wide["sarcasm"]) == list(single["label"])  # same rows, same order as the single-task loader
    # en-IN Google: the multitask rows sit on the same side of the seeded split as the single-task rows
    mt = {split: load_besstie_multitask("en-IN", "Google", split, seed=3) for split in ("train", "valid")}
    st = {split: load_besstie("Sentiment", "en-IN", "Google", split, seed=3) for split in ("train", "valid")}
    assert mt["train"]["seeded_split"].all() and len(mt["train"]) > 0
    assert set(mt["train"]["text"]) <= set(st["train"]["text"])
    assert set(mt["valid"]["text"]) <= set(st["valid"]["text"])
    assert not set(mt["train"]["text"]) & set(st["valid"]["text"])


def test_no_evaluation_text_is_in_any_training_set(fixture_data):
    data = load_seed(_params(), seed=0)
    evaluation = {t.strip() for frame in data.test.values() for t in frame["text"]}
    training = [*data.single_train.values(), *data.multitask_train.values(), *data.domain_train.values()]
    for frame in training:
        assert not evaluation & {t.strip() for t in frame["text"]}
    assert sum(data.removed.values()) > 0  # the fixture, like BESSTIE, repeats valid texts in train
    described = {d["name"]: d for d in data.describe()}
    assert described["train/Sentiment/Reddit/en-AU"]["dropped"].get("text also in evaluation set", 0) > 0
    bicodemix = data.domain_train["Bicodemix"]
    assert set(bicodemix["label"]) <= {0, 1} and bicodemix.attrs["label_names"] == ["negative", "positive"]


def test_every_matrix_cell_is_a_metric_row(smoke_run):
    metrics = smoke_run.metrics
    cells = metrics[metrics["experiment"] == "cross_variety"]
    for task, source in CROSS_VARIETY_TASKS:
        for head in HEAD_VARIANTS:
            matrix = cross_variety_matrix(metrics, task, source, f"{head} · frozen")
            assert matrix.shape == (3, 3), (task, source, head)
            assert matrix.notna().all().all()
    for source in FINETUNE_SOURCES:  # smoke fine-tunes the tiny encoder with the Linear head on both sources
        assert cross_variety_matrix(metrics, "Sentiment", source, "linear · finetuned").notna().all().all()
    frozen, tuned = cells[cells["base"] == "frozen"], cells[cells["base"] == "finetuned"]
    assert len(frozen) == len(CROSS_VARIETY_TASKS) * len(HEAD_VARIANTS) * 9 and len(tuned) == 2 * 9
    assert set(tuned["head"]) == {"linear"} and set(tuned["task"]) == {"Sentiment"}
    assert (cells["arm"] == cells["head"] + " · " + cells["base"]).all()
    required = {"task", "source", "head", "base", "train_variety", "test_variety", "macro_f1", "seed", "seeded_split"}
    assert required <= set(cells.columns)
    assert cells["macro_f1"].between(0, 1).all()
    involves_in_google = (cells["source"] == "Google") & (
        (cells["train_variety"] == "en-IN") | (cells["test_variety"] == "en-IN")
    )
    assert cells["seeded_split"].astype(bool).equals(involves_in_google)


def test_domain_shift_and_timing_rows(smoke_run):
    metrics = smoke_run.metrics
    shift = metrics[metrics["experiment"] == "domain_shift"]
    linear = shift[shift["head"] == "linear"]
    assert len(linear[(linear["train_variety"] == "Twitter") & (linear["task"] == "Sentiment")]) == 6
    assert len(linear[(linear["train_variety"] == "Bicodemix") & (linear["task"] == "Sentiment")]) == 6
    sarcasm = linear[(linear["train_variety"] == "Bicodemix") & (linear["task"] == "Sarcasm")]
    assert len(sarcasm) == 3 and set(sarcasm["source"]) == {"Reddit"}
    crosstalk = shift[shift["head"] == "crosstalk+pcgrad"]
    assert set(crosstalk["task"]) == {"Sentiment", "Sarcasm"} and len(crosstalk) == 9
    timing = timing_table(metrics)
    assert set(timing.index) == set(HEAD_VARIANTS)
    modes = ["fine-tune encoder + head", "head on cached states"]
    assert list(timing.columns) == [*modes, "paper (T4, BERT-base)"]
    assert (timing[modes].to_numpy() > 0).all()
    assert {"google_sentiment_en-AU_linear_macro_f1", "mean_in_variety_macro_f1_linear"} <= set(headline(metrics))
    table = paper_comparison(metrics)
    assert table.loc[("Sentiment", "Google", "en-AU"), "paper BERT-Large"] == pytest.approx(0.935)
    assert table.loc[("Sarcasm", "Reddit", "en-IN"), "paper BERT-Large"] == pytest.approx(0.564)


def test_result_tables_notes_and_saved_results(smoke_run, tmp_path):
    import json

    shown = tables(smoke_run)
    assert {"data", "paper", "generalisation_gap", "timing"} <= set(shown)
    timing = shown["timing"]
    assert timing.loc["cnn", "paper (T4, BERT-base)"] == pytest.approx(PAPER["seconds_per_batch"]["cnn"])
    assert np.isnan(timing.loc["crosstalk", "paper (T4, BERT-base)"])  # Table I has no CrossTalk time
    gap = shown["generalisation_gap"]
    assert list(gap.columns) == ["in-variety", "cross-variety", "drop"]
    np.testing.assert_allclose(gap["drop"], gap["in-variety"] - gap["cross-variety"])
    data = shown["data"]
    assert data.loc["train/Sentiment/Reddit/en-AU", "removed (text in evaluation)"] > 0
    assert any(f"{sum(smoke_run.removed.values())} rows in all" in note for note in smoke_run.notes)
    saved = json.loads(smoke_run.save(tmp_path).read_text())
    assert saved["study"] == "besstie" and saved["profile"] == "smoke"
    assert saved["parameters"]["seeds"] == [0] and len(saved["metrics"]) == len(smoke_run.metrics)
    assert saved["headline"] == pytest.approx(headline(smoke_run.metrics))


def test_notes_follow_the_parameters():
    quick, paper = notes(PROFILES.resolve("quick")), notes(PROFILES.resolve("paper"))
    text = " ".join(quick)
    assert "Encoder minilm frozen" in text and "mean of the last 4 layers" in text and "max_length 128" in text
    assert "instead of the [CLS] state" in text and "at most 2000 rows" in text
    assert (
        "Domain shift without the bilstm head(s)." in quick and "Head experiments' seeds: 0 (1 run per cell)." in quick
    )
    assert "encoder minilm fine-tuned end to end with mean pooling" in text and "Google seeds 0, 1, 2" in text
    assert "Reddit seed 0" in text and "lr 5e-05" in text and "stand on the frozen encoder (seed 0)" in text
    assert "frozen, the pruned pass computed once and cached" in text and "decays to 50% of each text's" in text
    assert "kept tokens' states (the mean of the last 4 layers, mean over the kept tokens)" in text
    assert "Bicodemix: only its English (en) comments (lang_id), as in the study" in text
    text = " ".join(paper)
    assert "frozen" not in text and "Encoder bert-base-uncased fine-tuned end to end" in text
    assert "the final layer" in text and "instead of the [CLS] state" not in text and "Domain shift without" not in text
    assert "fine-tuned with pruning on in every training step" in text and "(the final layer, [CLS])" in text
    mixed = " ".join(notes(PROFILES.resolve("quick", bicodemix_languages=["en", "cm"], spatten_head_keep=0.5)))
    assert "English (en) and code-mixed (cm) comments" in mixed and "not as in the study" in mixed
    assert "and 50% of the heads" in mixed
    assert not any("SpAtten" in n for n in notes(PROFILES.resolve("quick", heads=["linear"], domain_heads=["cnn"])))
    assert "lr 2e-05" in text and "batch 8" in text and "up to 30 epochs" in text
    few = notes(PROFILES.resolve("quick", varieties=["en-AU"], domain_sources=[], head_seeds=[0, 1, 2]))
    assert not any("en-IN" in note for note in few) and not any("Domain shift" in note for note in few)
    assert "Head experiments' seeds: 0, 1, 2 (3 runs per cell)." in few
    frozen = " ".join(notes(PROFILES.resolve("quick", base="frozen")))
    assert "base='frozen'" in frozen and "fine-tuned end to end with mean pooling" not in frozen
    assert "Seeds: 0 (1 run per cell)." in frozen


def test_profiles_check_their_values():
    assert set(PROFILES.names) >= {"seeds", "heads", "finetune", "encoder", "state_layers", "max_length"}
    with pytest.raises(ParameterError, match="'mlp' is not allowed"):
        PROFILES.resolve("quick", heads=["linear", "mlp"])
    with pytest.raises(ParameterError, match="did you mean 'state_layers'"):
        PROFILES.resolve("quick", state_layer=2)
    setup = recipe(PROFILES.resolve("paper"))
    assert setup.head_options["crosstalk+pcgrad"] == {
        "dropout": 0.1,
        "channels": 256,
        "kernel_size": 3,
        "task_dim": 128,
        "layers": 1,
    }
    assert setup.head_options["linear"] == {"dropout": 0.1, "pooling": "cls"}
    assert setup.config.lr == 2e-5 and setup.config.batch_size == 8 and setup.train_config(3).seed == 3


def test_timing_steps_use_the_training_step_and_pcgrad(fixture_data):
    params = _params(heads=["linear", "crosstalk+pcgrad"], varieties=["en-AU"], domain_sources=[])
    data = load_seed(params, seed=0)
    inputs = make_inputs(params, data.texts(), progress=False)
    frame = data.multitask_train["Google", "en-AU"]
    for variant in ("linear", "crosstalk+pcgrad"):
        seconds = seconds_per_batch(variant, inputs, frame, recipe(params), batches=2, batch_size=4)
        assert 0 < seconds < 10


def test_same_seed_same_numbers(fixture_data):
    params = _params(heads=["linear", "crosstalk+pcgrad"], varieties=["en-AU"], domain_sources=[])
    data = load_seed(params, seed=1)
    inputs = make_inputs(params, data.texts(), progress=False)
    setup = recipe(params)
    first = pd.DataFrame(run_cross_variety(data, inputs, setup, params["heads"], ["en-AU"], seed=1, progress=False))
    second = pd.DataFrame(run_cross_variety(data, inputs, setup, params["heads"], ["en-AU"], seed=1, progress=False))
    pd.testing.assert_frame_equal(first, second)


def test_heads_give_the_same_rows_and_models_in_two_worker_processes(fixture_data):
    """The head trainings of the cross-variety and domain-shift matrices run side by side (`workers=2`, the states
    shared as memory maps) give exactly the rows and saved models of one after the other; the notes say how they ran."""
    params = _params(heads=["linear", "spatten", "crosstalk+pcgrad"], varieties=["en-AU", "en-UK"], seeds=[0])
    results = {n: run({**params, "workers": n}, progress=False) for n in (1, 2)}
    serial, side_by_side = (r.metrics.filter(regex="^(?!.*seconds)") for r in results.values())
    assert set(serial["experiment"]) >= {"cross_variety", "domain_shift"}
    pd.testing.assert_frame_equal(serial, side_by_side)
    one, two = results[1].trained_models, results[2].trained_models
    assert list(two) == list(one) and len(one) >= 3 * 3
    for name, saved in one.items():
        for (key, a), b in zip(saved.model.state_dict().items(), two[name].model.state_dict().values()):
            assert torch.equal(a, b), (name, key)
    assert any("ran one after the other" in n for n in results[1].notes)
    assert any("ran side by side in 2 worker processes" in n for n in results[2].notes)


def test_cached_states_pickle_without_the_encoder_and_map_their_arrays(fixture_data, tmp_path):
    """What crosses to a worker: the states, mask and index (memory-mapped, read-only), not the encoder."""
    import pickle

    params = _params(heads=["linear", "spatten"], varieties=["en-AU"], domain_sources=[])
    data = load_seed(params, seed=0)
    inputs = make_inputs(params, data.texts(), progress=False)
    mapped = inputs.memory_mapped(tmp_path)
    assert isinstance(mapped.states, np.memmap) and isinstance(mapped.pruned.mask, np.memmap)
    assert not mapped.states.flags.writeable and inputs.encoder is mapped.encoder
    copy = pickle.loads(pickle.dumps(mapped))
    assert copy.encoder is None and copy.encoder_name == inputs.encoder_name and copy.hidden_size == inputs.hidden_size
    frame = data.single_train["Sentiment", "Google", "en-AU"]
    for a, b in zip(inputs.dataset(frame, ["label"]).tensors, copy.dataset(frame, ["label"]).tensors):
        assert torch.equal(a, b)


def test_run_on_given_data_for_two_seeds_and_restores_the_thread_count(fixture_data):
    params = _params(
        heads=["linear"], domain_sources=[], varieties=["en-AU"], torch_threads=1, seeds=[0, 1], head_seeds=[0, 1]
    )
    data = load(params)
    assert sorted(data) == [0, 1]
    before = torch.get_num_threads()
    result = run(params, data=data, progress=False)
    assert torch.get_num_threads() == before
    cells = result.metrics[result.metrics["experiment"] == "cross_variety"]
    frozen = cells[cells["base"] == "frozen"]
    assert sorted(frozen["seed"].unique()) == [0, 1] and len(frozen) == 2 * 3
    assert len(cells[cells["base"] == "finetuned"]) == 2 * 2  # 2 seeds x (Google, Reddit) sentiment
    assert "load data" in result.timings


def test_paper_profile_fails_offline_with_a_clear_message(fixture_data, monkeypatch):
    from workbench.encoders import EncoderUnavailable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    params = PROFILES.resolve("paper")
    assert params["finetune"] and params["batch_size"] == 8 and params["lr"] == 2e-5 and params["epochs"] == 30
    with pytest.raises(EncoderUnavailable, match="offline default is 'minilm'"):
        make_inputs(params, ["a text"], progress=False)


def test_figures_and_widget(smoke_run):
    from workbench.viz.besstie import (
        SEEDED_MARK,
        cross_variety_grid,
        cross_variety_heatmap,
        domain_shift_heatmap,
        head_comparison_figure,
        heatmap_explorer,
        timing_figure,
    )

    metrics = smoke_run.metrics
    with pytest.raises(ValueError, match="several bases"):  # linear ran frozen and fine-tuned: name the arm
        cross_variety_heatmap(metrics, "Sentiment", "Google", "linear")
    fig = cross_variety_heatmap(metrics, "Sentiment", "Google", "linear · frozen")
    text = np.array(fig.data[0].text)
    assert text.shape == (3, 3)
    assert all(cell.endswith(SEEDED_MARK) for cell in text[:, 1]) and not text[0, 0].endswith(SEEDED_MARK)
    assert len(fig.layout.shapes) == 3  # the outlined diagonal
    # every frozen head on every task, and the fine-tuned Linear head on the two sentiment sources
    assert len(cross_variety_grid(metrics).data) == len(CROSS_VARIETY_TASKS) * len(HEAD_VARIANTS) + 2
    assert len(head_comparison_figure(metrics).data) > 0
    rows = domain_shift_heatmap(metrics, "Sentiment").data[0].y  # single-task heads on both sources, CrossTalk on one
    assert sorted(rows) == [
        "Bicodemix · crosstalk+pcgrad · frozen",
        "Bicodemix · linear · frozen",
        "Bicodemix · spatten · frozen",
        "Twitter · linear · frozen",
        "Twitter · spatten · frozen",
    ]
    assert len(timing_figure(metrics, PAPER["seconds_per_batch"]).data) == 3  # two modes + the paper's diamonds
    assert len(timing_figure(metrics).data) == 2  # without paper numbers: the two modes only
    paper_marks = [t for t in head_comparison_figure(metrics, PAPER["bert_large_macro_f1"]).data if t.type == "scatter"]
    assert len(paper_marks) == 3 and list(paper_marks[0].y) == [0.935, 0.790, 0.926]
    widget = heatmap_explorer(metrics)
    task_source, head = widget.children[0].children
    assert "linear · finetuned" in head.options
    head.value = "linear · finetuned"
    task_source.value = "Sarcasm · Reddit"  # no fine-tuned sarcasm rows: the arm falls back to one that has them
    assert "linear · finetuned" not in head.options and widget.figure.layout.title.text.startswith("Sarcasm")
    head.value = "cnn · frozen"
    assert widget.figure.layout.title.text == "Sarcasm · Reddit · cnn · frozen: macro-F1"
    shown = widget.children[1].outputs  # after three renders the Output widget holds one display, not three
    assert len(shown) == 1 and shown[0]["output_type"] == "display_data"


def test_fine_tuning_path_trains_encoder_and_head_end_to_end(fixture_data):
    params = _params(finetune=True, heads=["linear", "crosstalk"], varieties=["en-AU"], domain_sources=[])
    data = load_seed(params, seed=0)
    inputs = make_inputs(params, data.texts(), progress=False)
    assert inputs.finetune
    rows = pd.DataFrame(run_cross_variety(data, inputs, recipe(params), params["heads"], ["en-AU"], progress=False))
    assert len(rows) == 3 + 3  # linear: one per task; crosstalk: Google sentiment, Reddit sentiment and sarcasm
    assert rows["macro_f1"].between(0, 1).all()
    # every model got its own copy of the pretrained encoder: the shared one is untouched
    fresh = make_inputs(params, [], progress=False)
    for (name, a), b in zip(inputs.encoder.model.state_dict().items(), fresh.encoder.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_grid_over_train_varieties_gives_the_cells_of_one_run(fixture_data):
    """Issue 18: runs on train_varieties [en-AU] and [en-UK] hold, together, exactly the cross-variety cells of one run
    on both (each tested on every variety of `varieties`)."""
    common = dict(heads=["linear", "crosstalk+pcgrad"], domain_sources=[], timing_end_to_end=False)
    keys = ["task", "source", "head", "base", "train_variety", "test_variety", "seed"]

    def cells(train_varieties):
        result = run(_params(**common, train_varieties=train_varieties), progress=False)
        rows = result.metrics[result.metrics["experiment"] == "cross_variety"].drop(columns="train_seconds")
        return result, rows.sort_values(keys).reset_index(drop=True)

    parts = [cells([variety]) for variety in ("en-AU", "en-UK")]
    both, expected = cells(["en-AU", "en-UK"])
    for (result, rows), variety in zip(parts, ("en-AU", "en-UK")):
        assert set(rows["train_variety"]) == {variety} and set(rows["test_variety"]) == set(VARIETIES)
        assert any(f"trained on {variety} (the matrices' rows)" in note for note in result.notes)
        assert {name.split("/")[-1] for name in result.removed} == {variety}  # only its own training sets loaded
    assert set(expected["train_variety"]) == {"en-AU", "en-UK"}
    # 2 rows x 3 columns x (frozen linear: 3 tasks, CrossTalk: 3 tasks, fine-tuned linear: 2 sentiment sources)
    assert len(expected) == 2 * 3 * (3 + 3 + 2)
    joined = pd.concat([rows for _, rows in parts]).sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(joined, expected)
    assert not any("other runs" in note for note in notes(_params(train_varieties=list(VARIETIES))))
    with pytest.raises(ParameterError, match="train_varieties is empty"):
        load_seed(_params(train_varieties=[]), seed=0)


def test_dry_run_caps_the_paper_profile_and_says_so(fixture_data, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DRY_RUN", "1")
    params = PROFILES.resolve("paper")
    assert params["dry_run"] and params["encoder"] == "bert-base-uncased" and params["finetune"]
    assert params["max_train_rows"] == 16 and params["epochs"] == 1 and params["seeds"] == [0]
    assert PROFILES.resolve("paper", max_train_rows=20)["max_train_rows"] == 20  # explicit overrides still win
    text = " ".join(notes(params))
    assert "DRY RUN" in text and "random weights" in text and "mean nothing" in text
    assert "DRY RUN" not in " ".join(notes(PROFILES.resolve("smoke") | {"dry_run": False}))
    # the fine-tuning path takes one step per training and one timed step per head; the tiny encoder stands in
    small = dict(encoder="tiny", max_length=32, heads=["linear", "crosstalk+pcgrad"], domain_heads=["linear"])
    result = run(
        PROFILES.resolve("paper", **small, train_varieties=["en-AU"], domain_sources=["Twitter"]), progress=False
    )
    metrics = result.metrics
    trained = metrics[metrics["experiment"] != "timing"]
    assert (trained["best_epoch"] == 0).all() and trained["macro_f1"].between(0, 1).all()
    assert set(metrics.loc[metrics["experiment"] == "timing", "batches"]) == {1}
    assert result.notes[0].startswith("DRY RUN")


# ---------------------------------------------------------------------------------------------- SpAtten + Linear


def test_spatten_head_fills_cross_variety_domain_shift_and_timing_rows(smoke_run):
    """Issue 15: BERT + SpAtten + Linear is a head variant of the study: cross-variety cells (train variety x test
    variety), domain-shift cells and a timing row, under the same `head` column as the other heads."""
    metrics = smoke_run.metrics
    cells = metrics[(metrics["experiment"] == "cross_variety") & (metrics["head"] == "spatten")]
    for task, source in CROSS_VARIETY_TASKS:
        matrix = cross_variety_matrix(metrics, task, source, "spatten")
        assert matrix.shape == (3, 3) and matrix.notna().all().all(), (task, source)
    assert len(cells) == len(CROSS_VARIETY_TASKS) * 9 and cells["macro_f1"].between(0, 1).all()
    shift = metrics[(metrics["experiment"] == "domain_shift") & (metrics["head"] == "spatten")]
    assert set(zip(shift["train_variety"], shift["task"])) == {
        ("Twitter", "Sentiment"),
        ("Bicodemix", "Sentiment"),
        ("Bicodemix", "Sarcasm"),
    }
    assert len(shift) == 6 + 6 + 3
    timing = timing_table(metrics)
    assert (timing.loc["spatten", ["fine-tune encoder + head", "head on cached states"]] > 0).all()
    assert timing.loc["spatten", "paper (T4, BERT-base)"] == pytest.approx(0.281)
    assert any("SpAtten's pruned pass kept" in note for note in smoke_run.notes)


def test_spatten_head_reads_a_pruned_pass_and_trains_with_it(fixture_data):
    from workbench.methods.heads import PrunedCachedStates, PrunedSequenceClassifier

    params = _params(heads=["linear", "spatten"], varieties=["en-AU"], domain_sources=[], domain_heads=[])
    data = load_seed(params, seed=0)
    inputs = make_inputs(params, data.texts(), progress=False)
    pruned = inputs.for_head("spatten")
    assert isinstance(pruned, PrunedCachedStates) and inputs.for_head("linear") is inputs
    # the cascade keeps about half of each text's tokens (special tokens always), never more than the dense pass
    assert (pruned.mask.sum(1) <= inputs.mask.sum(1)).all() and (pruned.mask.sum(1) < inputs.mask.sum(1)).any()
    assert 0.4 < pruned.kept_share < 0.9
    rows = pd.DataFrame(run_cross_variety(data, inputs, recipe(params), ["spatten"], ["en-AU"], progress=False))
    assert len(rows) == 3 and set(rows["head"]) == {"spatten"}
    # fine-tuning: the pruned encoder is trained end to end with the Linear head on its kept tokens
    tuned = make_inputs(_params(finetune=True, heads=["spatten"], domain_heads=[]), [], progress=False)
    model = tuned.for_head("spatten").model(build("head", "spatten", tuned.hidden_size, 2))
    assert isinstance(model, PrunedSequenceClassifier)
    frame = data.single_train["Sentiment", "Google", "en-AU"].iloc[:4]
    batch = tuned.collate([tuned.dataset(frame, ["label"])[i] for i in range(4)])
    model(*batch[:2]).sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_without_a_spatten_head_no_pruned_pass_is_made(fixture_data):
    params = _params(heads=["linear"], domain_heads=["linear"], varieties=["en-AU"], domain_sources=[])
    inputs = make_inputs(params, ["a text", "another text"], progress=False)
    assert inputs.pruned is None
    with pytest.raises(ValueError, match="reads SpAtten-pruned token states"):
        inputs.for_head("spatten")


def test_domain_shift_trains_on_the_english_bicodemix_comments(fixture_data):
    data = load_seed(_params(), seed=0)
    for name in ("Bicodemix", "Bicodemix-sarcasm", "Bicodemix-multitask"):
        frame = data.domain_train[name]
        assert set(frame["lang_id"]) == {"en"}, name
        assert frame.attrs["dropped"]["language my (Malay) not selected"] == 100
    mixed = load_seed(_params(bicodemix_languages=["en", "cm"]), seed=0).domain_train["Bicodemix-sarcasm"]
    assert set(mixed["lang_id"]) == {"en", "cm"}
    assert "language cm (code-mixed) not selected" not in mixed.attrs["dropped"]


def test_pruned_states_with_nothing_pruned_are_the_dense_states():
    """The spatten head's inputs differ from the other heads' only by the pruning: with a dense schedule the pruned
    pass gives the cached token states (final layer, or the mean of the last layers) exactly."""
    from workbench.encoders import encode_tokens, load_encoder
    from workbench.methods.heads import pruned_token_states
    from workbench.methods.spatten import PruneSchedule

    encoder = load_encoder("tiny")
    texts = ["a fine film with many words in it", "bad", "not great, not terrible, just a film"]
    for layers in (1, 2):
        dense = encode_tokens(texts, encoder, max_length=32, cache=False, progress=False, layers=layers)
        same = pruned_token_states(
            texts, encoder, PruneSchedule.dense(encoder.num_layers), max_length=32, layers=layers, cache=False
        )
        np.testing.assert_array_equal(same.mask, dense.mask)
        np.testing.assert_allclose(same.states.astype(np.float32), dense.states.astype(np.float32), atol=1e-3)
        pruned = pruned_token_states(texts, encoder, PruneSchedule((1.0, 0.5), (1.0, 1.0)), max_length=32, cache=False)
        assert (pruned.mask.sum(1) < dense.mask.sum(1)).all()


# ---------------------------------------------------------------------------------------------- fine-tuned base


def _tuned_params(**overrides):
    small = dict(heads=["linear"], domain_sources=[], varieties=["en-AU"], timing_end_to_end=False)
    return _params(**{**small, **overrides})


def test_fine_tuning_precision_follows_the_cpu_and_the_notes_say_which_ran(monkeypatch):
    """ft_precision='auto' fine-tunes in bf16 autocast only on a CPU with native bf16 matrix units (AMX), fp32
    elsewhere; the smoke profile pins fp32; the notes name what ran and why."""
    import workbench.runtime as runtime
    from workbench.studies.besstie import finetune_config

    quick, smoke = PROFILES.resolve("quick"), PROFILES.resolve("smoke")
    assert finetune_config(quick).precision == "auto" and finetune_config(smoke).precision == "no"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for amx, expected in ((True, "bf16 autocast (ft_precision='auto': this CPU multiplies bf16 matrices in "
                                 "hardware (AMX))"),
                          (False, "fp32 (ft_precision='auto': this CPU has no native bf16 matrix units)")):  # fmt: skip
        monkeypatch.setattr(runtime, "native_bf16", lambda amx=amx: amx)
        assert runtime.resolve_precision("auto") == ("bf16" if amx else "no")
        assert expected in " ".join(notes(quick))
    assert runtime.resolve_precision("auto", cpu=False) == "no" and runtime.resolve_precision("bf16") == "bf16"
    assert "fp32 (ft_precision='no')" in " ".join(notes({**quick, "ft_precision": "no"}))


def test_base_switches_between_fine_tuned_and_frozen_rows(fixture_data, monkeypatch):
    """Issue 14: base='finetuned' adds Linear rows from the encoder fine-tuned end to end (its weights change with
    training, lr 0 leaves them as pretrained) and leaves the frozen-state rows exactly as base='frozen' gives them."""
    import workbench.studies.besstie as besstie
    from workbench.encoders import load_encoder

    tuned = run(_tuned_params(base="finetuned"), progress=False).metrics
    frozen = run(_tuned_params(base="frozen"), progress=False).metrics
    assert set(frozen["base"]) == {"frozen"} and set(tuned["base"]) == {"finetuned", "frozen"}
    ft = tuned[tuned["base"] == "finetuned"]
    assert set(zip(ft["task"], ft["source"])) == {("Sentiment", "Google"), ("Sentiment", "Reddit")}
    assert set(ft["head"]) == {"linear"} and (ft["arm"] == "linear · finetuned").all() and len(ft) == 2
    assert (ft["train_seconds"] > 0).all() and ft["macro_f1"].between(0, 1).all()

    def cells(rows):  # the trained cells (timing rows hold wall times)
        rows = rows[(rows["experiment"] == "cross_variety") & (rows["base"] == "frozen")]
        return rows.dropna(axis=1, how="all").reset_index(drop=True)

    pd.testing.assert_frame_equal(cells(tuned), cells(frozen))
    # the fine-tuned encoder: weights moved by training, unchanged at lr 0
    models = []
    monkeypatch.setattr(besstie, "classifier_logits", lambda model, *a, **k: models.append(model) or np.zeros((1, 2)))
    data = load_seed(_tuned_params(), seed=0)
    data.test = {k: v.iloc[:1] for k, v in data.test.items()}
    pretrained = load_encoder("tiny").model.state_dict()
    for lr, moved in ((1e-2, True), (0.0, False)):
        models.clear()
        run_finetuned(data, _tuned_params(ft_lr=lr, ft_epochs=2), ["Google"], progress=False)
        weights = models[0].encoder.state_dict()
        changed = [name for name, value in pretrained.items() if not torch.equal(value, weights[name])]
        assert bool(changed) is moved, (lr, changed[:3])


def test_each_seed_gives_one_fine_tuned_row_per_cell(fixture_data):
    params = _tuned_params(seeds=[0, 1, 2], head_seeds=[0], finetune_seed_caps={"Reddit": 1})
    assert sorted(load(params)) == [0, 1, 2] and finetune_seeds(params, "Reddit") == [0]
    metrics = run(params, progress=False).metrics
    cells = metrics[metrics["experiment"] == "cross_variety"]
    ft = cells[cells["base"] == "finetuned"]
    assert sorted(ft.loc[ft["source"] == "Google", "seed"]) == [0, 1, 2]  # one row per seed
    assert list(ft.loc[ft["source"] == "Reddit", "seed"]) == [0]  # capped at one seed
    assert set(cells.loc[cells["base"] == "frozen", "seed"]) == {0}  # head experiments: head_seeds only
    table = target_table(metrics).set_index(["base", "test_variety"])
    assert table.loc[("finetuned", "en-AU"), "seeds"] == 3 and table.loc[("frozen", "en-AU"), "seeds"] == 1
    google = ft[ft["source"] == "Google"]["macro_f1"]
    assert table.loc[("finetuned", "en-AU"), "mean"] == pytest.approx(google.mean())
    assert table.loc[("finetuned", "en-AU"), "std"] == pytest.approx(google.std())


def _seed_rows(values: dict[tuple[str, str, str], list[float]]) -> pd.DataFrame:
    """Cross-variety Google sentiment rows of the Linear head: (base, train, test) -> macro-F1 per seed."""
    return pd.DataFrame(
        {
            "experiment": "cross_variety",
            "task": "Sentiment",
            "source": "Google",
            "head": "linear",
            "base": base,
            "arm": f"linear · {base}",
            "train_variety": train,
            "test_variety": test,
            "in_variety": train == test,
            "seeded_split": False,
            "macro_f1": value,
            "seed": seed,
        }
        for (base, train, test), scores in values.items()
        for seed, value in enumerate(scores)
    )


def test_hover_text_carries_mean_and_std_over_seeds():
    from workbench.viz.besstie import cross_variety_grid, cross_variety_heatmap, head_comparison_figure

    rows = _seed_rows(
        {
            ("finetuned", "en-AU", "en-AU"): [0.90, 0.92, 0.94],
            ("finetuned", "en-AU", "en-UK"): [0.80, 0.80, 0.80],
            ("finetuned", "en-UK", "en-AU"): [0.85, 0.87, 0.89],
            ("finetuned", "en-UK", "en-UK"): [0.91, 0.93, 0.95],
            ("frozen", "en-AU", "en-AU"): [0.88],
        }
    )
    fig = cross_variety_heatmap(rows, "Sentiment", "Google", "linear · finetuned")
    hover = np.array(fig.data[0].customdata)
    assert hover[0, 0] == "0.920 ± 0.020 (3 seeds)" and hover[0, 1] == "0.800 ± 0.000 (3 seeds)"
    assert "%{customdata}" in fig.data[0].hovertemplate and np.array(fig.data[0].text)[0, 0] == "0.920"
    grid = cross_variety_grid(rows)
    by_arm = {trace.hovertemplate.split("<br>")[0]: trace for trace in grid.data}
    assert np.array(by_arm["Sentiment Google linear · finetuned"].customdata)[1, 1] == "0.930 ± 0.020 (3 seeds)"
    assert np.array(by_arm["Sentiment Google linear · frozen"].customdata)[0, 0] == "0.880 ± 0.000 (1 seed)"
    bars = {t.name: t for t in head_comparison_figure(rows).data}
    assert list(bars["linear · finetuned"].error_y.array) == pytest.approx([0.02, 0.02])


def test_target_is_judged_from_the_rows():
    met = _seed_rows(
        {
            ("finetuned", "en-AU", "en-AU"): [0.90, 0.92, 0.94],
            ("finetuned", "en-UK", "en-UK"): [0.91, 0.93, 0.95],
            ("frozen", "en-AU", "en-AU"): [0.885],
            ("frozen", "en-UK", "en-UK"): [0.897],
        }
    )
    table = target_table(met)
    assert table[table["base"] == "finetuned"]["met"].all() and not table[table["base"] == "frozen"]["met"].any()
    statement = target_statement(met)
    assert ": met in this run: en-AU 0.920 ± 0.020 (3 seed(s)), en-UK 0.930 ± 0.020 (3 seed(s))" in statement
    assert "frozen-state Linear head: en-AU 0.885, en-UK 0.897" in statement
    low = met.assign(macro_f1=np.where(met["test_variety"] == "en-UK", met["macro_f1"] - 0.05, met["macro_f1"]))
    assert "NOT met" in target_statement(low) and "What it would take" in target_statement(low)
    two = met[met["seed"] < 2]  # the mean clears 0.90, but over fewer than 3 seeds
    assert "NOT met" in target_statement(two)
    assert "not tested" in target_statement(met[met["base"] == "frozen"])
    assert headline(met)["google_sentiment_en-AU_linear_macro_f1"] == pytest.approx(0.92)
    assert headline(met)["google_sentiment_en-AU_linear_frozen_macro_f1"] == pytest.approx(0.885)


def test_the_spatten_claim_pairs_the_frozen_linear_rows_only():
    """A fine-tuned Linear row is never averaged into the frozen one that the SpAtten + Linear head is judged against."""
    from workbench.claims import claims_for, verdicts

    rows = _seed_rows({("frozen", "en-AU", "en-AU"): [0.80, 0.81, 0.82], ("finetuned", "en-AU", "en-AU"): [0.95] * 3})
    spatten = rows[rows["base"] == "frozen"].assign(head="spatten", arm="spatten · frozen", macro_f1=[0.79, 0.80, 0.81])
    rows = pd.concat([rows, spatten], ignore_index=True).assign(study="besstie", profile="quick", run="r")
    claim = [c for c in claims_for("besstie") if c.id == "besstie-spatten-head"]
    table = verdicts(rows, claim)
    assert table["mean_b"].iloc[0] == pytest.approx(0.81) and table["n"].iloc[0] == 3


@pytest.mark.parametrize("encode_threads, ft_threads", [(None, None), (1, 1)])
def test_the_encoder_works_on_the_run_s_thread_budget_and_the_heads_on_torch_threads(
    fixture_data, monkeypatch, encode_threads, ft_threads
):
    """The frozen token states and the fine-tuning use every thread the run was given (None), or as many as their
    parameter says; the heads train on `torch_threads`; the notes give the counts of the run."""
    import workbench.studies.besstie as besstie
    from workbench.runtime import torch_threads

    seen: dict[str, list[int]] = {"encode": [], "finetune": [], "heads": []}

    def spy(name, function):
        def wrapper(*args, **kwargs):
            seen[name].append(torch.get_num_threads())
            return function(*args, **kwargs)

        monkeypatch.setattr(besstie, function.__name__, wrapper)

    spy("encode", besstie.make_inputs)
    spy("finetune", besstie.finetune_classifier)
    spy("heads", besstie.train_head)
    params = {**_tuned_params(torch_threads=1), "encode_threads": encode_threads, "ft_threads": ft_threads}
    with torch_threads(2):
        result = run(params, progress=False)
    expected = 2 if encode_threads is None else 1
    assert set(seen["encode"]) == {expected} and set(seen["finetune"]) == {expected}
    assert seen["heads"] and set(seen["heads"]) == {1}
    note = next(n for n in result.notes if n.startswith("Torch threads"))
    assert note == (
        f"Torch threads (2 available to the run): fine-tuning {expected}, frozen token states {expected}, heads 1."
    )


def test_fine_tuned_rows_train_on_every_row_unless_a_dev_share_is_held_out(fixture_data):
    """ft_dev_fraction=0 (the default): the fine-tuned Linear rows train on all training rows and keep the schedule's
    final epoch (no dev score); a share > 0 holds that many rows out and keeps the best epoch on them. The notes say
    which ran."""
    data = load_seed(_tuned_params(), seed=0)
    rows = len(data.single_train["Sentiment", "Google", "en-AU"])
    every = run_finetuned(data, _tuned_params(ft_epochs=2, ft_dev_fraction=0.0), ["Google"], progress=False)[0]
    held = run_finetuned(data, _tuned_params(ft_epochs=2, ft_dev_fraction=0.25), ["Google"], progress=False)[0]
    assert every["train_rows"] == rows and every["best_epoch"] == 1 and np.isnan(every["dev_macro_f1"])
    assert held["train_rows"] == rows - round(0.25 * rows) and 0 <= held["dev_macro_f1"] <= 1
    assert "the schedule's final epoch kept" in " ".join(notes(_tuned_params(base="finetuned")))
    assert "of a seeded 25% dev split" in " ".join(notes(_tuned_params(base="finetuned", ft_dev_fraction=0.25)))
