"""Optional experiment tracking (MLflow or TensorBoard), off unless a tracker is selected.

`workbench run ... --track mlflow|tensorboard [--track-uri URI]` selects a tracker through environment variables, so
that every worker and every notebook kernel sees it. For each notebook run the runner opens one tracked run
(`start_run`), the kernel logs each epoch of every `workbench.training.fit` call into it (`log_epoch`), and after the
notebook the runner logs the run's parameters, headline metrics and metric rows, and the report folder as artifacts
(`RunTracker.finish`). Without a selected tracker nothing happens; with the tracker's package missing, one line says
so and the run continues untracked.

Curves: the k-th `fit` of a run logs its epoch values as `fit<k>/<name>` (k counts from 1), at step = epoch. The
headline metrics are logged under their own names, so a run's top-level metrics are its `results.json` headline.
MLflow: URI as MLflow takes it (`sqlite:///runs.db`, `http://host:5000`, ...; a plain path ending in `.db` means a
SQLite file; default: MLflow's own, `MLFLOW_TRACKING_URI` or `./mlflow.db`); one experiment per notebook.
TensorBoard: URI is a log folder (default `<reports>/tensorboard`), one sub-folder per run.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

TRACKERS = ("mlflow", "tensorboard")
TRACK_ENV = "WORKBENCH_TRACK"  # mlflow | tensorboard; unset or empty: no tracking
TRACK_URI_ENV = "WORKBENCH_TRACK_URI"  # MLflow tracking URI or TensorBoard log folder
TRACK_RUN_ENV = "WORKBENCH_TRACK_RUN"  # set by the runner for a notebook's kernel: MLflow run id / TensorBoard folder
TRACK_ENVS = (TRACK_ENV, TRACK_URI_ENV)  # what a worker needs passed through to track
INSTALL_HINT = 'pip install -e ".[track]"'


def active_tracker() -> str | None:
    """The tracker selected for this process (`WORKBENCH_TRACK`), else None."""
    return os.environ.get(TRACK_ENV) or None


def _missing(tracker: str) -> str | None:
    """One line saying the tracker's package is not installed, else None."""
    module = "mlflow" if tracker == "mlflow" else "tensorboard"
    try:
        __import__(module)
    except ImportError:
        return (
            f"tracking off: --track {tracker} needs the {module} package ({INSTALL_HINT}); the run continues untracked"
        )
    return None


def _mlflow_uri(uri: str | None) -> str | None:
    """A plain path to a `.db` file becomes an absolute `sqlite:///` URI; anything else is passed to MLflow as is."""
    if not uri or "://" in uri or uri.startswith("file:"):
        return uri
    path = Path(uri).expanduser().resolve()
    return f"sqlite:///{path}" if path.suffix == ".db" else path.as_uri()


def configure(tracker: str | None, uri: str | None = None, say: Callable[[str], None] = print) -> bool:
    """Select `tracker` (or none) for this process and every worker and kernel it starts; a local `uri` is made
    absolute. Returns whether tracking is on: False, after one line to `say`, when the tracker's package is missing."""
    for key in (TRACK_ENV, TRACK_URI_ENV, TRACK_RUN_ENV):
        os.environ.pop(key, None)
    if not tracker:
        return False
    if tracker not in TRACKERS:
        raise ValueError(f"unknown tracker {tracker!r}; expected one of {', '.join(TRACKERS)}")
    problem = _missing(tracker)
    if problem:
        say(problem)
        return False
    os.environ[TRACK_ENV] = tracker
    if uri:
        os.environ[TRACK_URI_ENV] = _mlflow_uri(uri) if tracker == "mlflow" else str(Path(uri).expanduser().resolve())
    return True


def _flat(parameters: Mapping[str, object]) -> dict[str, str]:
    """Parameters as strings (lists and dicts as JSON), as both trackers want them."""
    return {
        str(k): v if isinstance(v, str) else json.dumps(v, default=str, sort_keys=True) for k, v in parameters.items()
    }


def _numbers(values: Mapping[str, object]) -> dict[str, float]:
    """The finite real numbers among `values` (booleans and text left out)."""
    return {
        str(k): float(v)
        for k, v in values.items()
        if isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))
    }


class _MlflowSink:
    """Writes one MLflow run through the client API (no global active run, so several runs never mix)."""

    def __init__(self, run_id: str | None = None, experiment: str = "workbench", run_name: str | None = None):
        from mlflow.tracking import MlflowClient

        uri = os.environ.get(TRACK_URI_ENV) or None
        self.client = MlflowClient(tracking_uri=uri)
        if run_id is None:
            found = self.client.get_experiment_by_name(experiment)
            if found is None:
                artifacts = None
                if uri and uri.startswith("sqlite:///"):  # artifacts next to the database, not in the current folder
                    artifacts = (Path(uri[len("sqlite:///") :]).parent / "mlruns").resolve().as_uri()
                try:
                    experiment_id = self.client.create_experiment(experiment, artifact_location=artifacts)
                except Exception:  # another worker created it first
                    experiment_id = self.client.get_experiment_by_name(experiment).experiment_id
            else:
                experiment_id = found.experiment_id
            run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id
        self.run_id = run_id

    def metrics(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, stamp, step) for k, v in values.items()])

    def finish(
        self,
        parameters: Mapping[str, str],
        headline: Mapping[str, float],
        rows: list,
        folder: Path,
        tags: Mapping[str, str],
        ok: bool,
    ) -> None:
        from mlflow.entities import Param, RunTag

        items = [Param(k[:250], v[:6000]) for k, v in parameters.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(self.run_id, params=items[start : start + 100])
        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        self.metrics(headline, 0)
        if rows:
            import pandas as pd

            self.client.log_table(self.run_id, pd.DataFrame(rows), "metric_rows.json")
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                parent = path.parent.relative_to(folder).as_posix()
                self.client.log_artifact(self.run_id, str(path), None if parent == "." else parent)
        self.client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED")


class _TensorBoardSink:
    """Writes scalars (and, at the end, hyperparameters and a text summary) to one TensorBoard log folder."""

    def __init__(self, folder: str | Path):
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(folder)
        self.writer = SummaryWriter(log_dir=str(self.folder))

    def metrics(self, values: Mapping[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def finish(
        self,
        parameters: Mapping[str, str],
        headline: Mapping[str, float],
        rows: list,
        folder: Path,
        tags: Mapping[str, str],
        ok: bool,
    ) -> None:
        self.metrics(headline, 0)
        self.writer.add_hparams(dict(parameters), {f"hparams/{k}": v for k, v in headline.items()}, run_name=".")
        files = "\n".join(f"- {p.relative_to(folder).as_posix()}" for p in sorted(folder.rglob("*")) if p.is_file())
        summary = {**tags, "status": "ok" if ok else "failed", "report folder": str(folder.resolve())}
        self.writer.add_text("report", "\n".join(f"{k}: {v}  " for k, v in summary.items()) + "\n\n" + files)
        if rows:
            import pandas as pd

            self.writer.add_text(
                "metric_rows", "    " + pd.DataFrame(rows).to_string(index=False).replace("\n", "\n    ")
            )
        self.writer.close()


class RunTracker:
    """The tracked run of one notebook run, opened by the runner before the kernel starts (`start_run`)."""

    def __init__(
        self,
        sink: _MlflowSink | _TensorBoardSink,
        run_dir: Path,
        notebook: str,
        profile: str,
        parameters: Mapping[str, object],
    ):
        self.sink, self.run_dir, self.notebook, self.profile = sink, run_dir, notebook, profile
        self.parameters = dict(parameters)

    @property
    def run_ref(self) -> str:
        """What the kernel needs to log into this run: the MLflow run id or the TensorBoard folder."""
        return self.sink.run_id if isinstance(self.sink, _MlflowSink) else str(self.sink.folder)

    def finish(self, status: str, say: Callable[[str], None] | None = None) -> None:
        """Log parameters (the resolved ones from `results.json` when the notebook wrote it), headline, metric rows
        and the report folder; close the run as finished or failed. A tracking error is one line, never a failure."""
        os.environ.pop(TRACK_RUN_ENV, None)
        results: dict[str, object] = {}
        try:
            results = json.loads((self.run_dir / "results.json").read_text())
        except (OSError, json.JSONDecodeError):
            pass
        parameters = {"profile": self.profile, **self.parameters, **dict(results.get("parameters") or {})}
        tags = {"notebook": self.notebook, "profile": self.profile, "status": status, "report_dir": str(self.run_dir)}
        try:
            self.sink.finish(
                _flat(parameters),
                _numbers(results.get("headline") or {}),
                list(results.get("metrics") or []),
                self.run_dir,
                tags,
                status == "ok",
            )
        except Exception as err:  # the tracker's store is unreachable, ...: the run itself stands
            (say or _warn)(f"tracking: could not log {self.run_dir.name}: {type(err).__name__}: {err}")


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start_run(
    run_dir: Path,
    notebook: str,
    profile: str,
    parameters: Mapping[str, object],
    say: Callable[[str], None] | None = None,
) -> RunTracker | None:
    """Open the tracked run of one notebook run and point the kernels started from now on at it; None when no
    tracker is selected, or (after one line) when its package is missing or its store cannot be opened."""
    tracker = active_tracker()
    if not tracker:
        return None
    problem = _missing(tracker)
    try:
        if problem:
            raise ImportError(problem)
        if tracker == "mlflow":
            sink: _MlflowSink | _TensorBoardSink = _MlflowSink(experiment=notebook, run_name=run_dir.name)
        else:
            root = os.environ.get(TRACK_URI_ENV) or str(Path(run_dir).resolve().parent / "tensorboard")
            sink = _TensorBoardSink(Path(root) / run_dir.name)
    except Exception as err:
        (say or _warn)(problem or f"tracking off for {run_dir.name}: {type(err).__name__}: {err}")
        return None
    run = RunTracker(sink, Path(run_dir), notebook, profile, parameters)
    os.environ[TRACK_RUN_ENV] = run.run_ref
    return run


# The kernel's side: the sink of the current run and the curve counter, made on first use.
_kernel: dict[str, object] = {"key": None, "sink": None, "fit": 0, "last_step": None}


def _kernel_sink() -> _MlflowSink | _TensorBoardSink | None:
    tracker = active_tracker()
    key = (tracker, os.environ.get(TRACK_URI_ENV), os.environ.get(TRACK_RUN_ENV))
    if _kernel["key"] == key:
        return _kernel["sink"]  # type: ignore[return-value]
    _kernel.update(key=key, sink=None, fit=0, last_step=None)
    problem = _missing(tracker) if tracker in TRACKERS else f"tracking off: unknown tracker {tracker!r}"
    try:
        if problem:
            raise ImportError(problem)
        run_ref = os.environ.get(TRACK_RUN_ENV)
        if tracker == "mlflow":  # outside the runner (JupyterLab): a run of its own in the experiment 'workbench'
            _kernel["sink"] = _MlflowSink(run_id=run_ref or None)
        else:
            default = Path(os.environ.get(TRACK_URI_ENV) or "reports/tensorboard") / f"interactive-{int(time.time())}"
            _kernel["sink"] = _TensorBoardSink(run_ref or default)
    except Exception as err:
        _warn(problem or f"tracking off: {type(err).__name__}: {err}")
    return _kernel["sink"]  # type: ignore[return-value]


def log_epoch(metrics: dict[str, float], step: int) -> None:
    """Log one epoch's metrics at `step` to the active tracker; a no-op when none is selected.

    A step that does not follow the previous one starts a new curve (the next `fit` of the run): values are logged
    as `fit<k>/<name>`. Only the main process of a distributed run logs; a tracking error turns tracking off with
    one line and never stops training.
    """
    if not active_tracker() or int(os.environ.get("RANK", "0")) != 0:
        return
    sink = _kernel_sink()
    if sink is None:
        return
    last = _kernel["last_step"]
    if last is None or step <= last:  # type: ignore[operator]
        _kernel["fit"] = int(_kernel["fit"]) + 1  # type: ignore[call-overload]
    _kernel["last_step"] = step
    values = _numbers({k: v for k, v in metrics.items() if k != "epoch"})
    try:
        sink.metrics({f"fit{_kernel['fit']}/{k}": v for k, v in values.items()}, step)
    except Exception as err:
        _warn(f"tracking off: {type(err).__name__}: {err}")
        _kernel["sink"] = None
