"""The quickstart study on the fixture data: held-out rows never trained on, same seed gives the same numbers,
notes and tables derived from the run."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from workbench.studies.quickstart import PAPER, PROFILES, load, notes, run, tables


def test_quickstart_is_deterministic_and_holds_out_its_test_rows(fixture_data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    params = PROFILES.resolve("smoke", seed=1)
    first, second = run(params, progress=False), run(params, data=load(params), progress=False)
    pd.testing.assert_frame_equal(first.metrics, second.metrics)
    assert (first.predictions == second.predictions).all()
    assert not set(first.train["text"].str.strip()) & set(first.test["text"].str.strip())
    assert list(first.metrics["test_variety"]) == ["all", "en-AU", "en-UK"]
    assert set(first.test["variety"]) == {"en-AU", "en-UK"} and set(first.test["source"]) == {"Google"}
    assert first.metrics["n_test"].iloc[0] == len(first.test)
    assert len(first.train) <= params["max_train_rows"] and first.label_names == ["negative", "positive"]
    shown = tables(first)
    assert list(shown["metrics"].index) == ["all", "en-AU", "en-UK"]
    paper = shown["paper"]
    assert paper.loc["en-AU", "paper BERT-Large"] == pytest.approx(0.935)
    assert paper.loc["en-UK", "paper BERT-Large"] == pytest.approx(0.926)
    assert pd.isna(paper.loc["all", "paper BERT-Large"])
    assert paper.loc["all", "ours"] == first.headline["macro_f1"]
    saved = json.loads(first.save(tmp_path).read_text())
    assert saved["study"] == "quickstart" and saved["parameters"]["seed"] == 1 and saved["notes"] == first.notes


def test_notes_follow_the_parameters():
    quick, smoke = " ".join(notes(PROFILES.resolve("quick"))), " ".join(notes(PROFILES.resolve("smoke")))
    assert "Encoder minilm used frozen" in quick and "first 256 tokens" in quick and "a linear head" in quick
    assert "capped" not in quick and "mean nothing" not in quick and "Seed 0" in quick
    assert "mean nothing" in smoke and "capped at 80" in smoke
    wide = " ".join(notes(PROFILES.resolve("quick", hidden_dim=64, test_varieties=["en-IN"], seed=2)))
    assert "one hidden layer of 64 units" in wide and "en-IN Google has no official train split" in wide
    assert "Seed 2" in wide
    assert PAPER["bert_large_macro_f1"]["Sentiment"]["Google"]["en-AU"] == pytest.approx(0.935)


def test_held_out_cap_and_dry_run_notes(fixture_data_dir, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    params = PROFILES.resolve("smoke", max_test_rows=6)
    data = load(params)
    assert len(data.test) == 6 and not set(data.train["text"].str.strip()) & set(data.test["text"].str.strip())
    assert "Held-out rows capped at 6" in " ".join(notes(params))
    assert "DRY RUN" not in " ".join(notes(params))
    monkeypatch.setenv("WORKBENCH_DRY_RUN", "1")
    dry = PROFILES.resolve("paper")
    assert dry["dry_run"] and dry["encoder"] == "bert-base-uncased"  # the paper's model, capped rows and one epoch
    assert dry["max_train_rows"] == 24 and dry["max_test_rows"] == 16 and dry["epochs"] == 1
    text = " ".join(notes(dry))
    assert text.startswith("DRY RUN") and "random weights" in text and "mean nothing" in text
