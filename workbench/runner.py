"""Batch runs: execute notebooks with papermill, one folder per run under `reports/`, and an index page.

A run folder `reports/<stem>-<profile>[-<params hash>]/` holds the executed notebook, its HTML export, the
notebook's own `results.json` and `run.json` (status, parameters, seconds, and for a failure the failing cell).
"""

from __future__ import annotations

import hashlib
import html
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from workbench.profiles import PROFILES
from workbench.results import RESULTS_FILE

RUN_FILE = "run.json"
INDEX_FILE = "index.html"


def notebooks_dir(explicit: str | Path | None = None) -> Path:
    """`explicit`, else `./notebooks`, else the `notebooks/` folder next to the installed package (editable install)."""
    candidates = (
        [Path(explicit)] if explicit else [Path("notebooks"), Path(__file__).resolve().parents[1] / "notebooks"]
    )
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"no notebooks folder found (looked in {', '.join(map(str, candidates))}); use --notebooks DIR"
    )


def find_notebooks(names: Sequence[str], directory: str | Path | None = None) -> list[Path]:
    """Resolve stems (`00_quickstart`), file names, paths, or `all` to notebook paths, in the order given."""
    folder = notebooks_dir(directory)
    available = sorted(folder.glob("[0-9]*.ipynb"))
    found: list[Path] = []
    for name in names:
        if name == "all":
            found.extend(available)
            continue
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            found.append(path)
            continue
        match = [p for p in available if p.stem == name or p.stem == path.stem]
        if not match:
            raise FileNotFoundError(f"no notebook {name!r}; available: {', '.join(p.stem for p in available)}")
        found.extend(match)
    return list(dict.fromkeys(found))


def parse_parameters(pairs: Sequence[str]) -> dict[str, object]:
    """`key=value` strings to a dict; values are YAML, so `-p languages='["hau"]'` gives a list."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"parameter {pair!r} is not of the form key=value")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ValueError(f"parameter {key!r}: value {value!r} is not valid YAML ({err})") from None
    return out


def notebook_parameters(path: Path) -> dict[str, dict[str, str]]:
    """The notebook's `parameters` cell: name -> {default, type, help}."""
    import papermill

    inferred = papermill.inspect_notebook(str(path))
    return {
        name: {"default": p["default"], "type": p["inferred_type_name"], "help": p["help"]}
        for name, p in inferred.items()
    }


def notebook_title(path: Path) -> str:
    """The first markdown heading of a notebook."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return path.stem


def run_name(stem: str, profile: str, parameters: Mapping[str, object]) -> str:
    """`<stem>-<profile>`, plus a short hash of the extra parameters when there are any."""
    if not parameters:
        return f"{stem}-{profile}"
    digest = hashlib.sha1(json.dumps(parameters, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{stem}-{profile}-{digest}"


@dataclass
class RunOutcome:
    """What happened to one notebook run."""

    notebook: str
    run_dir: str
    status: str  # ok | failed | skipped
    profile: str
    parameters: dict[str, object]
    seconds: float = 0.0
    error: dict[str, object] = field(default_factory=dict)


def _failing_cell(output_notebook: Path) -> dict[str, object]:
    """Index, first source line and error of the first cell with an error output."""
    try:
        nb = json.loads(output_notebook.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    for index, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                source = "".join(cell.get("source", "")).strip().splitlines()
                return {
                    "cell": index,
                    "source": source[0] if source else "",
                    "ename": out.get("ename"),
                    "evalue": out.get("evalue"),
                }
    return {}


def export_figures(notebook: Path, folder: Path) -> list[Path]:
    """Write every plotly figure shown in an executed notebook to `folder` as standalone HTML (shared plotly.js)."""
    import plotly.io as pio

    nb = json.loads(notebook.read_text(encoding="utf-8"))
    written: list[Path] = []
    for index, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            spec = out.get("data", {}).get("application/vnd.plotly.v1+json")
            if spec is None:
                continue
            fig = pio.from_json(json.dumps(spec), skip_invalid=True)
            title = (fig.layout.title.text or "figure") if fig.layout.title else "figure"
            slug = "".join(ch if ch.isalnum() else "-" for ch in title.lower()).strip("-")[:60] or "figure"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"cell{index:02d}-{len(written):02d}-{slug}.html"
            fig.write_html(path, include_plotlyjs="directory")
            written.append(path)
    return written


def export_html(notebook: Path) -> Path:
    """HTML export of an executed notebook, next to it."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(notebook))
    target = notebook.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


def run_notebook(
    notebook: Path,
    profile: str = "quick",
    parameters: Mapping[str, object] | None = None,
    reports: str | Path = "reports",
    resume: bool = False,
    kernel: str | None = None,
    progress: bool = True,
) -> RunOutcome:
    """Execute one notebook with papermill into its run folder; never raises for a failing notebook."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, not {profile!r}")
    parameters = dict(parameters or {})
    run_dir = Path(reports) / run_name(notebook.stem, profile, parameters)
    record_path = run_dir / RUN_FILE
    if resume and record_path.is_file():
        previous = json.loads(record_path.read_text())
        if previous.get("status") == "ok" and previous.get("parameters") == parameters:
            return RunOutcome(notebook.stem, str(run_dir), "skipped", profile, parameters, previous.get("seconds", 0.0))
    run_dir.mkdir(parents=True, exist_ok=True)
    output = run_dir / notebook.name
    injected = {"profile": profile, "report_dir": str(run_dir.resolve()), **parameters}
    start = time.perf_counter()
    outcome = RunOutcome(notebook.stem, str(run_dir), "ok", profile, parameters)
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=injected,
            kernel_name=kernel,
            progress_bar=progress,
            cwd=str(Path.cwd()),
        )
    except PapermillExecutionError as err:
        outcome.status = "failed"
        outcome.error = {"cell": err.cell_index, "ename": err.ename, "evalue": err.evalue}
        outcome.error.update({k: v for k, v in _failing_cell(output).items() if k == "source"})
    except Exception as err:  # kernel died, bad parameters cell, ...: report it, keep going with other notebooks
        outcome.status = "failed"
        outcome.error = {"ename": type(err).__name__, "evalue": str(err)}
    outcome.seconds = time.perf_counter() - start
    if output.is_file():
        try:
            export_html(output)
            export_figures(output, run_dir / "figures")
        except Exception as err:  # an export problem must not hide the run's own result
            outcome.error.setdefault("export", str(err))
    record_path.write_text(
        json.dumps({**asdict(outcome), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2, default=str)
    )
    write_index(reports)
    return outcome


def run_notebooks(
    notebooks: Sequence[Path],
    profile: str = "quick",
    parameters: Mapping[str, object] | None = None,
    reports: str | Path = "reports",
    resume: bool = False,
    kernel: str | None = None,
) -> list[RunOutcome]:
    """Run each notebook in turn; a failure is recorded and the others still run."""
    return [run_notebook(nb, profile, parameters, reports, resume, kernel) for nb in notebooks]


def write_index(reports: str | Path = "reports") -> Path:
    """`reports/index.html`: every run with its status, headline metrics and links."""
    reports = Path(reports)
    rows = []
    for record_path in sorted(reports.glob(f"*/{RUN_FILE}")):
        record = json.loads(record_path.read_text())
        run_dir = record_path.parent
        results_path = run_dir / RESULTS_FILE
        headline = json.loads(results_path.read_text()).get("headline", {}) if results_path.is_file() else {}
        links = [
            f'<a href="{html.escape(p.relative_to(reports).as_posix())}">{p.suffix[1:]}</a>'
            for p in sorted(run_dir.glob("*.html")) + ([results_path] if results_path.is_file() else [])
        ]
        numbers = ", ".join(f"{k} = {v:.4f}" if isinstance(v, float) else f"{k} = {v}" for k, v in headline.items())
        error = record.get("error") or {}
        status = record["status"] + (
            f" (cell {error.get('cell')}: {error.get('ename')}: {error.get('evalue')})"
            if record["status"] == "failed"
            else ""
        )
        rows.append(
            f"<tr><td>{html.escape(run_dir.name)}</td><td>{html.escape(record['profile'])}</td>"
            f"<td>{html.escape(status)}</td><td>{html.escape(numbers)}</td><td>{record.get('seconds', 0):.0f}</td>"
            f"<td>{html.escape(json.dumps(record.get('parameters', {})))}</td><td>{' '.join(links)}</td></tr>"
        )
    page = (
        "<!doctype html><meta charset='utf-8'><title>workbench runs</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;border-bottom:1px solid #ddd;"
        "text-align:left;vertical-align:top}</style><h1>workbench runs</h1>"
        "<table><tr><th>run</th><th>profile</th><th>status</th><th>headline</th><th>seconds</th>"
        "<th>parameters</th><th>files</th></tr>" + "".join(rows) + "</table>"
    )
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / INDEX_FILE
    path.write_text(page, encoding="utf-8")
    return path
