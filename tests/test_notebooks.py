"""Every notebook runs end to end in the smoke profile on the fixture data and writes the results contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.runner import find_notebooks, run_notebook

NOTEBOOKS = find_notebooks(["all"], Path(__file__).resolve().parents[1] / "notebooks")
CONTRACT_KEYS = {"study", "profile", "parameters", "data", "metrics", "timings", "environment"}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_smoke_run_writes_results(notebook: Path, fixture_data_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # smoke models are tiny: one thread is faster than two
    outcome = run_notebook(notebook, profile="smoke", reports=tmp_path, progress=False)
    assert outcome.status == "ok", f"{notebook.name} failed: {outcome.error}"
    run_dir = Path(outcome.run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    assert CONTRACT_KEYS <= set(results)
    assert results["profile"] == "smoke"
    assert results["metrics"], "no metric rows"
    assert all(isinstance(row, dict) and row for row in results["metrics"])
    assert all(not isinstance(v, (dict, list)) for row in results["metrics"] for v in row.values()), "rows must be flat"
    assert (run_dir / notebook.name).is_file() and (run_dir / f"{notebook.stem}.html").is_file()


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_clean_with_one_parameters_cell(notebook: Path):
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "outputs must be stripped"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    source = "".join(tagged[0]["source"])
    assert "profile" in source and "report_dir" in source
    assert nb["cells"][0]["cell_type"] == "markdown", "a notebook opens by saying what the study asks"
