"""The results contract: every run writes `results.json` with study, profile, parameters, data, metrics, timings
and environment; metric rows are flat dicts so that all runs load into one DataFrame."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.data.schema import label_distribution
from workbench.runtime import atomic_write_text, environment, project_root

RESULTS_FILE = "results.json"


def _plain(value):
    """JSON-safe copy: numpy scalars and arrays to Python, NaN to None, paths to strings."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _missing(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def describe_data(name: str, frame: pd.DataFrame, **extra) -> dict[str, object]:
    """What a results.json says about one data slice: rows, labels, drops, splits, source files."""
    out = {
        "name": name,
        "rows": len(frame),
        "labels": label_distribution(frame),
        "dropped": frame.attrs.get("dropped", {}),
        "files": frame.attrs.get("source_files", []),
    }
    if "split" in frame:
        out["splits"] = frame["split"].value_counts().to_dict()
    if "seeded_split" in frame and frame["seeded_split"].any():
        out["seeded_split_rows"] = int(frame["seeded_split"].sum())
    return {**out, **extra}


def figures_meaningful(profile: str, parameters: Mapping[str, object]) -> bool:
    """False for a run whose figures test the code only: the smoke profile, a dry run, or a tiny random model (as
    encoder or teacher). Reports, the index and benchmarks mark such runs and judge no target on them."""
    tiny = "tiny" in (parameters.get("encoder"), parameters.get("teacher"))
    return profile != "smoke" and not parameters.get("dry_run") and not tiny


class Timings(dict):
    """Seconds per named step: `with timings("encode"): ...`."""

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - start


def default_report_dir(study: str) -> Path:
    """Where an interactive run (not started by the runner) writes: the project's `reports/<study>-interactive`."""
    return project_root() / "reports" / f"{study}-interactive"


def save_results(
    report_dir: str | Path | None,
    *,
    study: str,
    profile: str,
    parameters: Mapping[str, object],
    data: Iterable[Mapping[str, object]],
    metrics: Iterable[Mapping[str, object]],
    timings: Mapping[str, float] | None = None,
    notes: Iterable[str] = (),
    headline: Mapping[str, float] | None = None,
    models: Iterable[Mapping[str, object]] = (),
) -> Path:
    """Write `<report_dir>/results.json` and return its path.

    `headline` holds the two or three numbers that `reports/index.html` shows for this run; `models` lists the
    trained models saved under `models/` (`workbench.saving.describe_models`).
    """
    interactive = not report_dir
    directory = Path(report_dir) if report_dir else default_report_dir(study)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "study": study,
        "profile": profile,
        "parameters": dict(parameters),
        "data": list(data),
        "metrics": [dict(row) for row in metrics],
        "timings": dict(timings or {}),
        "environment": environment(),
        "notes": list(notes),
        "headline": dict(headline or {}),
        "meaningful": figures_meaningful(profile, parameters),
        "models": [dict(m) for m in models],
    }
    path = directory / RESULTS_FILE
    atomic_write_text(path, json.dumps(_plain(payload), indent=2))
    if interactive:  # a run from JupyterLab is listed in the project's index like any batch run
        from workbench.runner import record_interactive_run

        record_interactive_run(directory, profile, dict(parameters))
    return path


@dataclass
class StudyResult:
    """What every study's `run(params)` returns (studies subclass it to add models, histories, predictions).

    `metrics` holds the flat metric rows; `data` describes each data slice (`describe_data`); `notes` are derived
    from the parameters the run used; `headline` holds the two or three numbers the report index shows.
    """

    study: str
    params: dict[str, object]
    metrics: pd.DataFrame
    data: list[dict[str, object]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    headline: dict[str, object] = field(default_factory=dict)
    # name -> workbench.saving.TrainedModel: what `save` writes under `models/` (filled when `save_models` is on)
    trained_models: dict[str, object] = field(default_factory=dict)

    def save(self, report_dir: str | Path | None) -> Path:
        """Write this run's `results.json` (the profile is taken from `params`) and, beside it, every trained model in
        Hugging Face form with its model card (`workbench.saving.write_models`)."""
        from workbench.saving import describe_models, write_models

        path = save_results(
            report_dir,
            study=self.study,
            profile=str(self.params.get("profile", "")),
            parameters=self.params,
            data=self.data,
            # rows of different kinds share one frame: a field a row never had (NaN filler) is left out of it
            metrics=[{k: v for k, v in row.items() if not _missing(v)} for row in self.metrics.to_dict("records")],
            timings=self.timings,
            notes=self.notes,
            headline=self.headline,
            models=describe_models(self.trained_models),
        )
        if self.trained_models:
            write_models(path.parent, self.trained_models, path)
        return path


def load_results(reports: str | Path = "reports") -> pd.DataFrame:
    """All metric rows of all runs under `reports` (or of one results.json) with `run`, `study`, `profile`."""
    reports = Path(reports)
    paths = [reports] if reports.is_file() else sorted(reports.glob(f"*/{RESULTS_FILE}"))
    rows = []
    for path in paths:
        payload = json.loads(path.read_text())
        for row in payload.get("metrics", []):
            rows.append({"run": path.parent.name, "study": payload["study"], "profile": payload["profile"], **row})
    return pd.DataFrame(rows)
