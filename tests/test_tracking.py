"""Optional tooling. Experiment tracking: off by default, one line when the package is missing, and with MLflow or
TensorBoard installed one tracked run per notebook run holding parameters, curves, headline and report files.
Pre-commit: the project's hooks strip a notebook saved with outputs back to its committed form."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from workbench import tracking
from workbench.cli import main
from workbench.runner import find_notebooks, run_name, run_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# A notebook that logs two curves the way `fit` does (two fits of three and two epochs) and writes results.json.
CURVES = """
from workbench.results import save_results
from workbench.tracking import log_epoch
for epoch in range(3):
    log_epoch({"epoch": epoch, "train_loss": 1.0 / (epoch + 1), "seconds": 0.5}, epoch)
for epoch in range(2):
    log_epoch({"epoch": epoch, "train_loss": 2.0 - epoch}, epoch)
save_results(report_dir, study="toy", profile=profile, parameters={"value": value, "profile": profile}, data=[],
             metrics=[{"value": value, "macro_f1": 0.25}], headline={"macro_f1": 0.25, "rows": 1})
"""


def _notebook(folder: Path, body: str = CURVES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "quick"\nreport_dir = None\nvalue = 1')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Tracking test"), params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "10_curves.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(autouse=True)
def _no_tracker(monkeypatch):
    """Every test starts untracked and leaves the process untracked (configure() writes os.environ)."""
    for key in (tracking.TRACK_ENV, tracking.TRACK_URI_ENV, tracking.TRACK_RUN_ENV, "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(tracking, "_kernel", {"key": None, "sink": None, "fit": 0, "last_step": None})


def _mlflow_runs(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    return client, client.search_runs([found.experiment_id])


def test_log_epoch_does_nothing_without_a_tracker(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tracking, "_kernel_sink", lambda: pytest.fail("no tracker is selected"))
    tracking.log_epoch({"train_loss": 0.5}, 0)
    assert tracking.start_run(tmp_path / "run", "nb", "smoke", {}) is None
    assert list(tmp_path.iterdir()) == []


def test_log_epoch_starts_a_new_curve_when_the_step_restarts(monkeypatch):
    logged: list[tuple[dict, int]] = []

    class Sink:
        def metrics(self, values, step):
            logged.append((values, step))

    monkeypatch.setenv(tracking.TRACK_ENV, "mlflow")
    monkeypatch.setattr(tracking, "_kernel_sink", lambda: Sink())
    for step in (0, 1, 0, 0):
        tracking.log_epoch({"epoch": step, "train_loss": 1.5, "dev_macro_f1": 0.5, "flag": True, "name": "x"}, step)
    assert [sorted(v) for v, _ in logged[:1]] == [["fit1/dev_macro_f1", "fit1/train_loss"]]
    assert [(next(iter(v)).split("/")[0], step) for v, step in logged] == [
        ("fit1", 0),
        ("fit1", 1),
        ("fit2", 0),
        ("fit3", 0),
    ]
    monkeypatch.setenv("RANK", "1")  # a distributed run's other processes do not log
    tracking.log_epoch({"train_loss": 1.0}, 1)
    assert len(logged) == 4


def test_missing_package_is_one_line_and_the_run_goes_on_untracked(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    said: list[str] = []
    assert tracking.configure("mlflow", str(tmp_path / "runs.db"), say=said.append) is False
    assert len(said) == 1 and "mlflow" in said[0] and ".[track]" in said[0] and "untracked" in said[0]
    assert tracking.active_tracker() is None
    with pytest.raises(ValueError, match="unknown tracker 'wandb'"):
        tracking.configure("wandb")

    code = main(["run", "10_curves", "--profile", "smoke", "--notebooks-dir", str(_notebook(tmp_path / "nbs").parent),
                 "--reports", str(tmp_path / "reports"), "--track", "mlflow"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and out.count("tracking off") == 1
    assert (tmp_path / "reports" / "10_curves-smoke" / "results.json").is_file()
    assert not (tmp_path / "runs.db").exists()


def test_cli_track_mlflow_records_curves_params_headline_and_report(monkeypatch, tmp_path):
    pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)  # nothing may land in the current folder but what we name
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(NOTEBOOKS.parent), os.environ.get("PYTHONPATH", "")]))
    db = tmp_path / "track" / "mlflow.db"
    db.parent.mkdir()
    folder = _notebook(tmp_path / "nbs").parent
    args = ["run", "10_curves", "--profile", "smoke", "--notebooks-dir", str(folder), "--reports", "reports"]
    assert main([*args, "-p", "value=3", "--track", "mlflow", "--track-uri", str(db)]) == 0
    client, runs = _mlflow_runs(f"sqlite:///{db}", "10_curves")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == run_name("10_curves", "smoke", {"value": 3})
    assert run.data.params["profile"] == "smoke" and run.data.params["value"] == "3"
    assert {k: v for k, v in run.data.metrics.items() if "/" not in k} == {"macro_f1": 0.25, "rows": 1.0}
    curve = client.get_metric_history(run.info.run_id, "fit1/train_loss")
    assert [(m.step, m.value) for m in curve] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert [m.value for m in client.get_metric_history(run.info.run_id, "fit2/train_loss")] == [2.0, 1.0]
    assert "fit1/epoch" not in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"results.json", "run.json", "10_curves.ipynb", "10_curves.html", "metric_rows.json"} <= artifacts
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nbs", "reports", "track"]
    assert tracking.TRACK_RUN_ENV not in os.environ  # the next run's kernel is not pointed at it


def test_tensorboard_writes_curves_and_headline_per_run(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert tracking.configure("tensorboard", str(tmp_path / "tb"))
    outcome = run_notebook(_notebook(tmp_path / "nbs"), "smoke", {}, tmp_path / "reports", progress=False)
    assert outcome.status == "ok"
    events = EventAccumulator(str(tmp_path / "tb" / "10_curves-smoke"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"fit1/train_loss", "fit2/train_loss", "macro_f1"} <= set(scalars)
    assert [e.value for e in events.Scalars("fit2/train_loss")] == [2.0, 1.0]
    assert events.Scalars("macro_f1")[0].value == 0.25


@pytest.mark.slow
def test_quickstart_smoke_run_tracked_by_mlflow_has_its_headline(fixture_data_dir, monkeypatch, tmp_path):
    """The issue's check: a smoke run with --track mlflow and a local store records one run whose metrics equal the
    run's headline (plus the per-epoch curves of the head's training, which `fit` logs as fit1/...)."""
    pytest.importorskip("mlflow")
    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert tracking.configure("mlflow", uri)
    (notebook,) = find_notebooks(["00_quickstart"], NOTEBOOKS)
    outcome = run_notebook(notebook, profile="smoke", reports=tmp_path / "reports", progress=False)
    assert outcome.status == "ok", outcome.error
    results = json.loads((Path(outcome.run_dir) / "results.json").read_text())
    client, runs = _mlflow_runs(uri, "00_quickstart")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    metrics = runs[0].data.metrics
    assert results["headline"] and {k: v for k, v in metrics.items() if "/" not in k} == results["headline"]
    assert runs[0].data.params["encoder"] == results["parameters"]["encoder"] == "tiny"
    curve = client.get_metric_history(runs[0].info.run_id, "fit1/train_loss")  # `fit` logged the head's epochs
    assert len(curve) >= 1 and sorted(m.step for m in curve) == list(range(len(curve)))


def test_pre_commit_strips_a_notebook_saved_with_outputs(tmp_path):
    """`pre-commit run --all-files` with the project's hooks (local, so offline) in a scratch repository."""
    if not all(shutil.which(tool) for tool in ("git", "pre-commit", "nbstripout", "ruff")):
        pytest.skip('needs git, pre-commit, nbstripout and ruff (pip install -e ".[dev]")')
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    shutil.copy(NOTEBOOKS.parent / ".pre-commit-config.yaml", repo)
    clean = nbformat.read(NOTEBOOKS / "00_quickstart.ipynb", as_version=4)
    target = repo / "notebooks" / "00_quickstart.ipynb"
    nbformat.write(clean, target)
    committed = target.read_text()
    saved = nbformat.read(target, as_version=4)
    for count, cell in enumerate((c for c in saved.cells if c.cell_type == "code"), 1):
        cell.execution_count = count
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="epoch 1\n")]
    nbformat.write(saved, target)
    assert target.read_text() != committed
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-cache")}

    def pre_commit() -> subprocess.CompletedProcess:
        return subprocess.run(
            ["pre-commit", "run", "--all-files"], cwd=repo, env=env, capture_output=True, text=True, timeout=300
        )

    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    first = pre_commit()
    assert first.returncode == 1 and "files were modified by this hook" in first.stdout, first.stdout + first.stderr
    assert target.read_text() == committed  # outputs and counts gone; ids, tags and metadata as committed
    stripped = nbformat.read(target, as_version=4)
    assert any(c.metadata.get("tags") == ["parameters"] for c in stripped.cells)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    second = pre_commit()
    assert second.returncode == 0, second.stdout + second.stderr
