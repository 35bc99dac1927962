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
    HEAD_VARIANTS,
    PAPER,
    PROFILES,
    headline,
    load,
    load_seed,
    make_inputs,
    notes,
    paper_comparison,
    recipe,
    run,
    run_cross_variety,
    seconds_per_batch,
    tables,
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
            matrix = cross_variety_matrix(metrics, task, source, head)
            assert matrix.shape == (3, 3), (task, source, head)
            assert matrix.notna().all().all()
    assert len(cells) == len(CROSS_VARIETY_TASKS) * len(HEAD_VARIANTS) * 9
    required = {"task", "source", "head", "train_variety", "test_variety", "macro_f1", "seed", "seeded_split"}
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
    assert "Domain shift without the bilstm head(s)." in quick and "Seeds: 0 (1 run per cell)." in quick
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
    few = notes(PROFILES.resolve("quick", varieties=["en-AU"], domain_sources=[], seeds=[0, 1, 2]))
    assert not any("en-IN" in note for note in few) and not any("Domain shift" in note for note in few)
    assert "Seeds: 0, 1, 2 (3 runs per cell)." in few


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


def test_run_on_given_data_for_two_seeds_and_restores_the_thread_count(fixture_data):
    params = _params(heads=["linear"], domain_sources=[], varieties=["en-AU"], torch_threads=1, seeds=[0, 1])
    data = load(params)
    assert sorted(data) == [0, 1]
    before = torch.get_num_threads()
    result = run(params, data=data, progress=False)
    assert torch.get_num_threads() == before
    cells = result.metrics[result.metrics["experiment"] == "cross_variety"]
    assert sorted(cells["seed"].unique()) == [0, 1] and len(cells) == 2 * 3
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
    fig = cross_variety_heatmap(metrics, "Sentiment", "Google", "linear")
    text = np.array(fig.data[0].text)
    assert text.shape == (3, 3)
    assert all(cell.endswith(SEEDED_MARK) for cell in text[:, 1]) and not text[0, 0].endswith(SEEDED_MARK)
    assert len(fig.layout.shapes) == 3  # the outlined diagonal
    assert len(cross_variety_grid(metrics).data) == len(CROSS_VARIETY_TASKS) * len(HEAD_VARIANTS)
    assert len(head_comparison_figure(metrics).data) > 0
    rows = domain_shift_heatmap(metrics, "Sentiment").data[0].y  # single-task heads on both sources, CrossTalk on one
    assert sorted(rows) == [
        "Bicodemix · crosstalk+pcgrad",
        "Bicodemix · linear",
        "Bicodemix · spatten",
        "Twitter · linear",
        "Twitter · spatten",
    ]
    assert len(timing_figure(metrics, PAPER["seconds_per_batch"]).data) == 3  # two modes + the paper's diamonds
    assert len(timing_figure(metrics).data) == 2  # without paper numbers: the two modes only
    paper_marks = [t for t in head_comparison_figure(metrics, PAPER["bert_large_macro_f1"]).data if t.type == "scatter"]
    assert len(paper_marks) == 3 and list(paper_marks[0].y) == [0.935, 0.790, 0.926]
    widget = heatmap_explorer(metrics)
    task_source, head = widget.children[0].children
    head.value = "cnn"
    task_source.value = "Sarcasm · Reddit"
    assert widget.figure.layout.title.text == "Sarcasm · Reddit · cnn: macro-F1"
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
    keys = ["task", "source", "head", "train_variety", "test_variety", "seed"]

    def cells(train_varieties):
        result = run(_params(**common, train_varieties=train_varieties), progress=False)
        rows = result.metrics[result.metrics["experiment"] == "cross_variety"]
        return result, rows.sort_values(keys).reset_index(drop=True)

    parts = [cells([variety]) for variety in ("en-AU", "en-UK")]
    both, expected = cells(["en-AU", "en-UK"])
    for (result, rows), variety in zip(parts, ("en-AU", "en-UK")):
        assert set(rows["train_variety"]) == {variety} and set(rows["test_variety"]) == set(VARIETIES)
        assert any(f"trained on {variety} (the matrices' rows)" in note for note in result.notes)
        assert {name.split("/")[-1] for name in result.removed} == {variety}  # only its own training sets loaded
    assert set(expected["train_variety"]) == {"en-AU", "en-UK"}
    assert len(expected) == 2 * 3 * (3 + 3)  # 2 rows x 3 columns x (linear: 3 tasks, CrossTalk: 3 tasks)
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
