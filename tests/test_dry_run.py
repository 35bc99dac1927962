"""`workbench run NOTEBOOK --profile paper --dry-run`: every paper code path runs offline on a CPU, with the paper
models' published architectures (random weights), a stand-in tokenizer, a handful of rows and one step per training.

Slow (minutes for all notebooks): `python -m pytest -m slow tests/test_dry_run.py` runs it; the default test run
leaves it out.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.paper_models import DRY_RUN_ENV
from workbench.runner import find_notebooks, run_notebook

NOTEBOOKS = find_notebooks(["all"], Path(__file__).resolve().parents[1] / "notebooks")


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_paper_profile_dry_run(notebook: Path, real_data_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(real_data_dir))
    monkeypatch.setenv(DRY_RUN_ENV, "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may be downloaded
    outcome = run_notebook(notebook, profile="paper", reports=tmp_path, progress=False)
    assert outcome.status == "ok", f"{notebook.name} failed: {outcome.error}"
    assert Path(outcome.run_dir).name == f"{notebook.stem}-paper-dryrun"
    results = json.loads((Path(outcome.run_dir) / "results.json").read_text())
    assert results["profile"] == "paper" and results["parameters"]["dry_run"] is True
    assert results["metrics"]
    assert any("dry run" in note.lower() for note in results["notes"]), "a dry run says so"


# Parameter counts (millions) that the models' cards and papers publish: the kept architectures must reproduce them.
PUBLISHED_PARAMETERS_M = {
    "bert-base-uncased": 110,
    "bert-large-uncased": 340,
    "castorini/afriberta_base": 111,
    "castorini/afriberta_large": 126,
    "Davlan/afro-xlmr-mini": 117,
    "Davlan/afro-xlmr-base": 270,
    "Davlan/afro-xlmr-large": 560,
    "xlm-roberta-base": 270,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS_M))
def test_each_kept_paper_architecture_has_its_published_parameter_count(name: str):
    import torch
    from transformers import AutoModel

    from workbench.paper_models import PAPER_ARCHITECTURES, paper_config

    assert set(PUBLISHED_PARAMETERS_M) == set(PAPER_ARCHITECTURES)  # a new architecture needs its count here
    with torch.device("meta"):  # shapes only: no memory, no random numbers
        model = AutoModel.from_config(paper_config(name))
    count = sum(p.numel() for p in model.parameters()) / 1e6
    assert count == pytest.approx(PUBLISHED_PARAMETERS_M[name], rel=0.04), f"{name}: {count:.1f}M"
