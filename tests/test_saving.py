"""Trained models in Hugging Face form: every study's smoke run (with `save_models` on) saves its models, each loads
with `from_pretrained` and gives exactly the logits the run computed; each folder has a model card; and the mixin
round-trips the argument kinds our modules take (dataclasses, ordered mappings, modules, Hugging Face encoders)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification

from workbench.saving import (
    TEST_LOGITS,
    HubModule,
    TrainedModel,
    check_saved,
    class_name,
    compute_logits,
    describe_models,
    hub_class,
    load_saved,
    matching_rows,
    model_name,
    read_test_logits,
    write_models,
)
from workbench.studies import study_module

# study -> smoke overrides that keep the run to seconds while still training (and so saving) every kind of model
CASES = {
    "quickstart": ("quickstart", {}),
    "besstie": (
        "besstie",
        dict(
            heads=["linear", "crosstalk+pcgrad"],
            domain_sources=[],
            varieties=["en-AU"],
            epochs=1,
            max_train_rows=24,
            timing_end_to_end=False,
        ),
    ),
    "besstie-finetune": (
        "besstie",
        dict(
            finetune=True,
            heads=["linear", "cnn"],
            domain_sources=[],
            varieties=["en-AU"],
            epochs=1,
            max_train_rows=24,
            timing_end_to_end=False,
        ),
    ),
    "mage": (
        "mage",
        dict(
            seeds=[0],
            configs=["none", "mage"],
            classifiers=["logreg", "lstm"],
            head_sweep=[4],
            noise_sweep=[],
            tfidf_baseline=False,
            augmenter_epochs=1,
        ),
    ),
    "comet": ("comet", dict(sweeps=[], bench_rounds=1, max_languages=2)),
    "spatten": ("spatten", dict(keeps=[[0.5, 1.0]], runtimes=[], finetune_keep=[0.5, 1.0])),
    "multilevel": ("multilevel", dict(seeds=[0], epochs=1, fine_tune_bert=True)),
    "multimodal": ("multimodal", dict(seeds=[0], schemes=["binary"])),
}


def _reload(folder: Path, entry: dict) -> nn.Module:
    """The model of a saved folder through the public API: AutoModelForSequenceClassification for Hugging Face
    classifiers, the recorded class's own `from_pretrained` for ours."""
    if entry["format"] == "transformers":
        return AutoModelForSequenceClassification.from_pretrained(folder, **entry["load_kwargs"]).eval()
    return hub_class(entry["class"]).from_pretrained(folder)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_saved_model_reloads_with_the_runs_logits_and_has_a_card(case, fixture_data_dir, tmp_path, monkeypatch):
    name, overrides = CASES[case]
    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    study = study_module(name)
    result = study.run(study.PROFILES.resolve("smoke", save_models=True, **overrides), progress=False)
    assert result.trained_models, f"{case}: save_models is on but the run handed over no model"
    results = json.loads(result.save(tmp_path).read_text())
    listed = {entry["name"]: entry for entry in results["models"]}
    assert set(listed) == set(result.trained_models)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == sorted(listed)
    for entry in listed.values():
        folder = tmp_path / entry["path"]
        assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
        assert not [p for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pkl")], "safetensors only"
        model = _reload(folder, entry)
        assert class_name(type(model)) == entry["class"]
        inputs, stored = read_test_logits(folder / TEST_LOGITS)
        assert 0 < len(next(iter(stored.values()))) <= 32
        live = compute_logits(result.trained_models[entry["name"]].model, inputs)
        reloaded = compute_logits(model, inputs)
        for key, value in stored.items():
            assert torch.equal(live[key], value), f"{entry['name']}: stored {key} differ from the run's model"
            assert torch.equal(reloaded[key], value), f"{entry['name']}: reloaded {key} differ from the run's"
        card = (folder / "README.md").read_text(encoding="utf-8")
        assert f"- Study: **{results['study']}**" in card and "- Profile: **smoke**" in card
        assert "Not a usable model" in card and "## How this run differs from the paper" in card
        assert all(note in card for note in results["notes"][:3])
        rows = matching_rows(results["metrics"], entry["rows"])
        assert rows, f"{entry['name']}: its rows {entry['rows']} match no metric row"
        section = card.split("## Metrics")[1].split("\n## ")[0]
        assert sum(line.startswith("| ") for line in section.splitlines()) - 1 == min(len(rows), 40)
        if (folder / "tokenizer_config.json").is_file():
            from transformers import AutoTokenizer

            assert AutoTokenizer.from_pretrained(folder)("a review")["input_ids"]


def test_save_models_off_writes_no_models(fixture_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    study = study_module("quickstart")
    params = study.PROFILES.resolve("smoke", save_models=False)
    result = study.run(params, progress=False)
    assert result.trained_models == {}
    assert json.loads(result.save(tmp_path).read_text())["models"] == []
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("name", ["quickstart", "besstie", "mage", "comet", "spatten", "multilevel", "multimodal"])
def test_smoke_profiles_save_their_models(name):
    """A smoke run saves what it trains, so that `workbench run all --profile smoke && workbench models` checks
    every kind of saved model in seconds."""
    assert study_module(name).PROFILES.resolve("smoke")["save_models"] is True


def test_models_command_passes_a_good_run_and_flags_a_changed_weight_and_a_missing_card(
    fixture_data_dir, tmp_path, monkeypatch, capsys
):
    from safetensors.torch import load_file, save_file

    from workbench.cli import main
    from workbench.saving import check_reports

    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    study = study_module("quickstart")
    for run in ("a-smoke", "b-smoke"):
        study.run(study.PROFILES.resolve("smoke"), progress=False).save(tmp_path / run)
    assert main(["models", str(tmp_path)]) == 0
    assert "2 of 2 saved models reload with the run's exact test logits" in capsys.readouterr().out
    (good,) = (tmp_path / "a-smoke" / "models").iterdir()
    (bad,) = (tmp_path / "b-smoke" / "models").iterdir()
    weights = load_file(bad / "model.safetensors")
    first = next(iter(weights))
    weights[first] = weights[first] + 1e-3
    save_file(weights, bad / "model.safetensors")
    rows = {row["run"]: row for row in check_reports(tmp_path)}
    assert rows["a-smoke"]["ok"] and rows["a-smoke"]["max_abs_diff"] == 0.0
    assert not rows["b-smoke"]["ok"] and rows["b-smoke"]["max_abs_diff"] > 0
    (good / "README.md").unlink()
    assert main(["models", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "no model card" in out and "FAILED  b-smoke/" in out and "0 of 2" in out
    (bad / "config.json").write_text("{not json")
    (row,) = [r for r in check_reports(tmp_path) if r["run"] == "b-smoke"]
    assert row["max_abs_diff"] is None and "JSONDecodeError" in row["error"]


# ---------------------------------------------------------------------------------------------------------------
# The mixin and the folder format, on small modules
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Sizes:
    hidden: int = 4
    layers: int = 1


class Fusion(nn.Module, HubModule):
    """Concatenates per-modality projections in the order of `input_dims` (so that order must survive a save)."""

    def __init__(self, input_dims: dict[str, int], config: Sizes, scale: float = 1.0):
        super().__init__()
        self.order = list(input_dims)
        self.project = nn.ModuleDict({m: nn.Linear(d, config.hidden) for m, d in input_dims.items()})
        self.out = nn.Linear(config.hidden * len(input_dims), 2)
        self.scale = scale

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.out(torch.cat([self.project[m](features[m]) for m in self.order], -1)) * self.scale


class Wrapper(nn.Module, HubModule):
    """An encoder (a Hugging Face model) and one of our modules, both passed to the constructor."""

    def __init__(self, encoder_model: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder_model, head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = self.head({"a": states[:, 0, :3], "b": states[:, 0, 3:5]})
        return logits, -logits


def _features(n: int = 40) -> dict[str, torch.Tensor]:
    return {"b": torch.randn(n, 2), "a": torch.randn(n, 3)}


def test_mixin_keeps_dataclass_and_ordered_mapping_arguments(tmp_path):
    model = Fusion({"b": 2, "a": 3}, Sizes(hidden=5), scale=0.5)
    trained = TrainedModel(model, (_features(),))
    assert trained.format == "hub_mixin" and len(trained.inputs[0]["a"]) == 32  # at most 32 test rows
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert list(config["input_dims"]) == ["b", "a"] and config["config"] == {"hidden": 5, "layers": 1}
    assert config["workbench_class"] == class_name(Fusion)
    loaded = Fusion.from_pretrained(tmp_path)
    assert isinstance(loaded.project, nn.ModuleDict) and loaded.order == ["b", "a"] and loaded.scale == 0.5
    assert not loaded.training
    features = _features()
    assert torch.equal(loaded(features), model.eval()(features))


def test_mixin_rebuilds_module_and_encoder_arguments_and_checks_a_folder(tmp_path):
    from workbench.encoders import load_encoder

    encoder = load_encoder("tiny")
    model = Wrapper(encoder.model, Fusion({"a": 3, "b": 2}, Sizes()))
    batch = encoder.tokenizer(["a good review", "bad"], padding=True, return_tensors="pt")
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    model.train()
    trained = TrainedModel(model, inputs, rows={"head": "x"}, description="a test model", tokenizer=encoder.tokenizer)
    assert model.training, "computing the reference logits leaves the model's mode alone"
    assert set(trained.logits) == {"logits.0", "logits.1"}
    payload = {"study": "demo", "profile": "quick", "parameters": {"seed": 1}, "notes": ["differs: tiny"],
               "metrics": [{"head": "x", "macro_f1": 0.5}, {"head": "y", "macro_f1": 0.1}]}  # fmt: skip
    results = tmp_path / "results.json"
    results.write_text(json.dumps(payload))
    write_models(tmp_path, {"wrapper": trained}, results)
    folder = tmp_path / "models" / "wrapper"
    assert check_saved(folder) == 0.0
    loaded = load_saved(folder)
    assert isinstance(loaded, Wrapper) and isinstance(loaded.head, Fusion)
    assert type(loaded.encoder) is type(encoder.model) and loaded.encoder.config.hidden_size == 32
    card = (folder / "README.md").read_text()
    assert "# demo / wrapper" in card and "- differs: tiny" in card and "Not a usable model" not in card
    assert "| x | 0.5000 |" in card and "| y |" not in card  # only its own metric rows
    assert "Wrapper.from_pretrained" in card and "AutoTokenizer" in card
    # a second write replaces the models folder as a whole
    write_models(tmp_path, {"other": TrainedModel(Fusion({"a": 3, "b": 2}, Sizes()), (_features(),))}, results)
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["other"]


def test_loading_is_strict_and_names_only_workbench_model_classes(tmp_path):
    from safetensors.torch import load_file, save_file

    Fusion({"a": 3}, Sizes()).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["out.bias"]  # a tensor the model has but the file lacks: an error, not a random initial value
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(RuntimeError, match="Missing key.*out.bias"):
        Fusion.from_pretrained(tmp_path)
    for name in ("os.system", "workbench.training.TrainConfig", "workbench.nothing.Here"):
        with pytest.raises(ValueError, match="not a saved-model class"):
            hub_class(name)
    assert hub_class("workbench.methods.probe.EmbeddingClassifier").__name__ == "EmbeddingClassifier"


def test_model_names_are_plain_folder_names():
    assert model_name("crosstalk+pcgrad", "multitask", "Google", "en-AU") == "crosstalk+pcgrad-multitask-Google-en-AU"
    assert model_name("head", "spatten t0.5 h1", None, "mean") == "head-spatten_t0.5_h1-mean"
    with pytest.raises(ValueError):
        model_name("..", "")
    model = TrainedModel(Fusion({"a": 3}, Sizes()), (_features(),))
    with pytest.raises(ValueError, match="plain folder name"):
        describe_models({"../escape": model})
    entry = describe_models({"ok": model})[0]
    assert entry["path"] == "models/ok" and entry["class"] == class_name(Fusion) and entry["format"] == "hub_mixin"


def test_matching_rows_accepts_values_and_lists():
    rows = [{"training": "post_hoc", "schedule": "a"}, {"training": "aware", "schedule": "a"}, {"training": "x"}]
    assert len(matching_rows(rows, {"schedule": "a"})) == 2
    assert matching_rows(rows, {"training": ["x", "post_hoc"]}) == [rows[0], rows[2]]
    assert matching_rows(rows, {"training": "none"}) == []
