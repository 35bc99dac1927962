"""Issue 15, notes that tell the truth: every study's notes builder, run on the quick and the paper parameters, says
what each run used (encoder, frozen or fine-tuned, sizes), never a fixed string per profile."""

from __future__ import annotations

import pytest

from workbench.studies import study_module


@pytest.mark.parametrize(
    "stem, quick_says, paper_says",
    [
        ("00_quickstart", ["Encoder minilm used frozen", "first 256 tokens"], ["Encoder bert-base-uncased", "512"]),
        (
            "03_besstie",
            ["Encoder minilm frozen", "mean of the last 4 layers", "pruned pass computed once and cached"],
            ["Encoder bert-base-uncased fine-tuned end to end", "fine-tuned with pruning on", "the final layer"],
        ),
        (
            "05_multilevel",
            ["Encoder: minilm fine-tuned end to end", "d_model=64", "head + tail"],
            ["BERT row: bert-base-uncased fine-tuned end to end", "d_model=256"],
        ),
        ("06_multimodal", ["CMU-MOSI", "5 seed(s)", "hidden 64"], ["CMU-MOSEI", "5 seed(s)", "hidden 128"]),
    ],
)
def test_quick_and_paper_notes_differ_and_each_tells_what_it_used(stem, quick_says, paper_says):
    study = study_module(stem)
    quick = " ".join(study.notes(study.PROFILES.resolve("quick")))
    paper = " ".join(study.notes(study.PROFILES.resolve("paper")))
    assert quick != paper
    for phrase in quick_says:
        assert phrase in quick, (stem, phrase)
    for phrase in paper_says:
        assert phrase in paper, (stem, phrase)
    if stem in ("03_besstie", "05_multilevel"):  # these paper profiles fine-tune: no line may call the encoder frozen
        assert "frozen" not in paper
