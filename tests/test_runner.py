"""The papermill runner: parameters, run folders, failures reported by cell, --resume, the index page, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


SLOW = (
    """
import os, time
while os.path.exists(os.environ.get("WORKBENCH_TEST_BLOCK", "")):
    time.sleep(0.2)
"""
    + WRITE_RESULTS
)

WITH_CACHE = (
    """
from workbench.encoders import embed_texts, load_encoder
vectors = embed_texts(["a first text", "a second text"], load_encoder("tiny"), max_length=16)
"""
    + WRITE_RESULTS
)


def _cli(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        **kw,
    )


def test_unknown_or_mistyped_parameter_fails_before_any_kernel(notebooks: Path, tmp_path: Path, capsys):
    reports = tmp_path / "reports"
    start = time.perf_counter()
    code = main(["run", "10_good", "-p", "valeu=3", "--notebooks-dir", str(notebooks), "--reports", str(reports)])
    assert code == 2 and time.perf_counter() - start < 5
    err = capsys.readouterr().err
    assert "10_good" in err and "'valeu'" in err and "did you mean 'value'" in err
    assert not reports.exists(), "no run folder for a rejected parameter"


@pytest.mark.parametrize(
    "stem, parameter, expected",
    [
        ("01_mage", "langauges=[hau]", "did you mean 'languages'"),
        ("04_spatten", "max_train_rows=abc", "'max_train_rows'"),
        ("03_besstie", "heads=[linear, nope]", "'nope' is not allowed"),
        ("03_besstie", "epochs=-1", "below the minimum"),
        ("04_spatten", "encoder=minlm", "did you mean 'minilm'"),
    ],
)
def test_study_parameters_are_checked_before_the_notebook_starts(tmp_path: Path, capsys, stem, parameter, expected):
    reports = tmp_path / "reports"
    start = time.perf_counter()
    assert main(["run", stem, "--profile", "smoke", "-p", parameter, "--reports", str(reports)]) == 2
    assert time.perf_counter() - start < 5
    err = capsys.readouterr().err
    assert stem in err and expected in err and "Traceback" not in err
    assert not reports.exists()


def test_list_name_shows_each_parameter_per_profile(capsys):
    assert main(["list", "03_besstie"]) == 0
    out = capsys.readouterr().out
    assert "smoke" in out and "quick" in out and "paper" in out
    assert "heads" in out and "bert-base-uncased" in out


def test_a_run_killed_mid_notebook_is_rerun_by_resume_and_nothing_else(notebooks: Path, tmp_path: Path):
    _notebook(notebooks / "30_slow.ipynb", SLOW)
    block = tmp_path / "block"
    block.write_text("")
    reports = tmp_path / "reports"
    common = ["--profile", "smoke", "--notebooks-dir", str(notebooks), "--reports", str(reports)]
    assert main(["run", "10_good", *common]) == 0
    proc = _cli("run", "30_slow", *common, env={"WORKBENCH_TEST_BLOCK": str(block)}, start_new_session=True)
    record = reports / "30_slow-smoke" / "run.json"
    deadline = time.time() + 120
    while time.time() < deadline and not (record.is_file() and "running" in record.read_text()):
        time.sleep(0.2)
    time.sleep(3)  # inside the notebook by now: the kernel is waiting on the block file
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads(record.read_text())["status"] == "running", "a killed run must not look finished"
    block.unlink()
    outcomes = run_notebooks(
        find_notebooks(["10_good", "30_slow"], notebooks), "smoke", {}, reports, resume=True, progress=False
    )
    assert [o.status for o in outcomes] == ["skipped", "ok"]
    assert json.loads(record.read_text())["status"] == "ok"


def test_concurrent_runs_share_reports_and_cache_without_corruption(notebooks: Path, tmp_path: Path):
    _notebook(notebooks / "40_cache.ipynb", WITH_CACHE)
    reports, cache = tmp_path / "reports", tmp_path / "cache"
    broken = reports / "99_broken-smoke"
    broken.mkdir(parents=True)
    (broken / "run.json").write_text('{"status": "o')  # a neighbour's half-written record fails no run
    common = ["--profile", "smoke", "--notebooks-dir", str(notebooks), "--reports", str(reports)]
    env = {"WORKBENCH_CACHE": str(cache)}
    procs = [_cli("run", "40_cache", *common, env=env) for _ in range(2)] + [_cli("run", "10_good", *common, env=env)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    same = outputs[0][0] + outputs[1][0]
    assert "waiting: an identical run is in progress" in same and "skipped: the identical run" in same
    for name in ("40_cache-smoke", "10_good-smoke"):
        assert json.loads((reports / name / "run.json").read_text())["status"] == "ok"
        assert json.loads((reports / name / "results.json").read_text())["metrics"]
    assert not list(cache.rglob("*.partial")) and list(cache.rglob("*.npz"))
    index = (reports / "index.html").read_text()
    assert "40_cache-smoke" in index and "10_good-smoke" in index and "99_broken" not in index


def test_status_lines_appear_as_each_run_ends(notebooks: Path, tmp_path: Path):
    proc = _cli(
        "run", "10_good", "20_bad", "--profile", "smoke", "--workers", "1",
        "--notebooks-dir", str(notebooks), "--reports", str(tmp_path),
    )  # fmt: skip
    out, _ = proc.communicate(timeout=300)
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    assert lines[0].startswith("[1/2] 10_good smoke ->") and lines[1].startswith("ok  10_good")
    assert lines[2].startswith("[2/2] 20_bad smoke ->") and lines[3].startswith("failed  20_bad")


def test_filesystem_mistakes_are_one_line_errors(notebooks: Path, tmp_path: Path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    proc = _cli("run", "10_good", "--notebooks-dir", str(notebooks), "--reports", str(not_a_folder / "reports"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "cannot write to the reports folder" in err and "Traceback" not in err
    piped = subprocess.run(
        f"{sys.executable} -m workbench.cli list --notebooks-dir {notebooks} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr


def test_an_interactive_run_lands_in_the_project_reports_and_index(tmp_path: Path, monkeypatch):
    import workbench.results as results

    monkeypatch.setattr(results, "project_root", lambda: tmp_path)
    path = results.save_results(None, study="toy", profile="smoke", parameters={"a": 1}, data=[], metrics=[{"m": 1}])
    assert path == tmp_path / "reports" / "toy-interactive" / "results.json"
    assert json.loads((path.parent / "run.json").read_text())["status"] == "ok"
    assert "toy-interactive" in (tmp_path / "reports" / "index.html").read_text()


@pytest.mark.parametrize("executor", ["process", "ray"])
def test_grid_fans_out_in_parallel_with_the_metrics_of_a_serial_run(notebooks: Path, tmp_path: Path, executor):
    if executor == "ray":
        pytest.importorskip("ray")
    (tmp_path / "reports" / "00_junk-smoke").mkdir(parents=True)
    (tmp_path / "reports" / "00_junk-smoke" / "run.json").write_text("{")  # truncated: fails no run
    nb = find_notebooks(["10_good"], notebooks)
    grid = {"value": [1, 2, 3]}
    parallel = run_notebooks(
        nb, "smoke", {}, tmp_path / "reports", grid=grid, workers=2, executor=executor, progress=False
    )
    serial = run_notebooks(nb, "smoke", {}, tmp_path / "serial", grid=grid, progress=False)
    assert [o.status for o in parallel] == ["ok"] * 3 and [o.parameters for o in parallel] == [
        {"value": v} for v in (1, 2, 3)
    ]

    def metrics(outcomes):
        return [json.loads((Path(o.run_dir) / "results.json").read_text())["metrics"] for o in outcomes]

    assert metrics(parallel) == metrics(serial)
    index = (tmp_path / "reports" / "index.html").read_text()
    assert index.count("<tr><td>10_good-smoke-") == 3


def test_grid_values_must_be_lists():
    from workbench.runner import expand_grid

    assert expand_grid({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    with pytest.raises(ValueError, match="grid 'a'"):
        expand_grid({"a": 3})


def test_smoke_runs_go_side_by_side_and_quick_runs_one_at_a_time(monkeypatch):
    from workbench import runner

    monkeypatch.setattr(runner.os, "cpu_count", lambda: 2)
    assert runner.default_workers("smoke", 8) == 2
    assert runner.default_workers("smoke", 1) == 1
    assert runner.default_workers("quick", 8) == 1 and runner.default_workers("paper", 8) == 1
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 64)
    assert runner.default_workers("smoke", 8) == 4  # capped for memory


def test_a_kernel_that_dies_at_start_is_started_again(notebooks: Path, tmp_path: Path, monkeypatch):
    import papermill

    from workbench import runner

    real, calls = papermill.execute_notebook, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return real(*args, **kwargs)

    monkeypatch.setattr(papermill, "execute_notebook", flaky)
    outcome = runner.run_notebook(find_notebooks(["10_good"], notebooks)[0], "smoke", {}, tmp_path, progress=False)
    assert outcome.status == "ok" and len(calls) == 2
