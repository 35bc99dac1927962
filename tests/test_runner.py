"""The papermill runner: parameters, run folders, failures reported by cell, --resume, the index page, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from workbench.cli import main
from workbench.runner import find_notebooks, notebook_parameters, parse_parameters, run_name, run_notebooks


def _notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "quick"\nreport_dir = None\nvalue = 1\nitems = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# A test notebook"), params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


WRITE_RESULTS = """
from workbench.results import save_results
save_results(report_dir, study="toy", profile=profile, parameters={"value": value, "items": items}, data=[],
             metrics=[{"value": value, "n_items": len(items or [])}], headline={"value": float(value)})
"""


@pytest.fixture
def notebooks(tmp_path: Path) -> Path:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "10_good.ipynb", WRITE_RESULTS)
    _notebook(folder / "20_bad.ipynb", "x = 1\nraise ValueError('broken on purpose')")
    return folder


def test_parse_parameters_reads_yaml_values():
    assert parse_parameters(['languages=["hau"]', "seed=3", "name=abc", "rate=0.5"]) == {
        "languages": ["hau"],
        "seed": 3,
        "name": "abc",
        "rate": 0.5,
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_parameters(["novalue"])


def test_run_name_is_stable_and_depends_on_parameters():
    assert run_name("01_x", "smoke", {}) == "01_x-smoke"
    assert (
        run_name("01_x", "smoke", {"a": 1})
        == run_name("01_x", "smoke", {"a": 1})
        != run_name("01_x", "smoke", {"a": 2})
    )


def test_find_notebooks_resolves_stems_and_all(notebooks: Path):
    assert [p.stem for p in find_notebooks(["all"], notebooks)] == ["10_good", "20_bad"]
    assert [p.stem for p in find_notebooks(["20_bad"], notebooks)] == ["20_bad"]
    with pytest.raises(FileNotFoundError, match="10_good"):
        find_notebooks(["missing"], notebooks)
    assert set(notebook_parameters(notebooks / "10_good.ipynb")) == {"profile", "report_dir", "value", "items"}


def test_failure_is_reported_with_its_cell_and_others_still_run(notebooks: Path, tmp_path: Path):
    reports = tmp_path / "reports"
    outcomes = run_notebooks(find_notebooks(["20_bad", "10_good"], notebooks), "smoke", {"value": 7}, reports)
    bad, good = outcomes
    # cell numbers count the executed notebook's cells, which include papermill's injected-parameters cell
    assert bad.status == "failed" and bad.error["cell"] == 3 and bad.error["ename"] == "ValueError"
    assert bad.error["source"] == "x = 1"
    assert "broken on purpose" in bad.error["evalue"]
    assert good.status == "ok"
    results = json.loads((Path(good.run_dir) / "results.json").read_text())
    assert results["parameters"]["value"] == 7 and results["profile"] == "smoke"
    index = (reports / "index.html").read_text()
    assert "10_good-smoke" in index and "20_bad-smoke" in index and "broken on purpose" in index
    assert "value = 7.0000" in index


def test_resume_skips_only_finished_runs_with_same_parameters(notebooks: Path, tmp_path: Path):
    nb = find_notebooks(["10_good"], notebooks)
    first = run_notebooks(nb, "smoke", {"items": [1, 2]}, tmp_path)[0]
    again = run_notebooks(nb, "smoke", {"items": [1, 2]}, tmp_path, resume=True)[0]
    other = run_notebooks(nb, "smoke", {"items": [1]}, tmp_path, resume=True)[0]
    assert first.status == "ok" and again.status == "skipped" and other.status == "ok"
    assert json.loads((Path(other.run_dir) / "results.json").read_text())["metrics"][0]["n_items"] == 1


def test_cli_run_exit_codes_and_list(notebooks: Path, tmp_path: Path, capsys):
    assert (
        main(["run", "10_good", "--profile", "smoke", "--notebooks-dir", str(notebooks), "--reports", str(tmp_path)])
        == 0
    )
    assert (
        main(["run", "all", "--profile", "smoke", "--notebooks-dir", str(notebooks), "--reports", str(tmp_path)]) == 1
    )
    assert "failing cell 3: ValueError" in capsys.readouterr().out
    assert main(["list", "--notebooks-dir", str(notebooks)]) == 0
    assert "10_good: A test notebook" in capsys.readouterr().out
    assert main(["run", "nope", "--notebooks-dir", str(notebooks)]) == 2


def test_console_script_help_explains_commands():
    out = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for word in ("run", "list", "data", "bench"):
        assert word in out
