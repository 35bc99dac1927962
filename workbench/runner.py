"""Batch runs: execute notebooks with papermill, one folder per run under `reports/`, and an index page.

A run folder `reports/<stem>-<profile>[-<params hash>]/` holds the executed notebook, its HTML export, the
notebook's own `results.json` and `run.json` (status, parameters, seconds, and for a failure the failing cell).

Parameters are checked against the study's `PROFILES` before any kernel starts. `run.json` says `running` from the
start, so a run killed mid-notebook is never mistaken for finished by `--resume`; every file is written atomically;
a lock per run folder makes a second process with the identical run wait for the first and then skip it; only the
coordinating process (`run_notebooks`) writes `index.html`, and unreadable run folders are skipped with a warning.
"""

from __future__ import annotations

import difflib
import fcntl
import hashlib
import html
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workbench.paper_models import dry_run
from workbench.profiles import PROFILES, ParameterError, decode_value
from workbench.results import RESULTS_FILE
from workbench.runtime import atomic_write_text
from workbench.tracking import start_run

RUN_FILE = "run.json"
INDEX_FILE = "index.html"
ASSETS_DIR = "assets"  # reports/assets/: scripts shared by every run's pages (one plotly.js)


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
            out[key.strip()] = decode_value(value)
        except ParameterError as err:
            raise ParameterError(f"parameter {key.strip()!r}: {err}") from None
    return out


def notebook_parameters(path: Path) -> dict[str, dict[str, str]]:
    """The notebook's `parameters` cell: name -> {default, type, help}."""
    import papermill

    inferred = papermill.inspect_notebook(str(path))
    return {
        name: {"default": p["default"], "type": p["inferred_type_name"], "help": p["help"]}
        for name, p in inferred.items()
    }


def check_parameters(notebook: Path, parameters: Mapping[str, object]) -> None:
    """Raise ParameterError (naming notebook, parameter, value and what is allowed) for a parameter the notebook's
    study does not know or a value it does not accept; a notebook without a study is checked by name only."""
    from workbench.studies import NOTEBOOK_STUDIES, study_module
    from workbench.studies.spec import static_profiles

    try:
        if notebook.stem in NOTEBOOK_STUDIES:
            first = static_profiles(notebook.stem)  # names and types in a second, before torch is imported
            if first is not None:
                first.check(parameters)
            study_module(notebook.stem).PROFILES.check(parameters)
            return
        known = [k for k in notebook_parameters(notebook) if k not in ("profile", "report_dir")]
        for name in parameters:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
                raise ParameterError(f"unknown parameter {name!r}; {hint}")
    except ParameterError as err:
        raise ParameterError(f"{notebook.stem}: {err}") from None


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
    """`<stem>-<profile>` (`-dryrun` added inside a `--dry-run`), plus a short hash of the extra parameters when
    there are any."""
    profile = f"{profile}-dryrun" if dry_run() else profile
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


def export_figures(notebook: Path, folder: Path, assets: Path | None = None) -> list[Path]:
    """Write every plotly figure shown in an executed notebook to `folder` as standalone HTML; they load one
    plotly.js shared in `assets` (the reports folder's `assets/`; default: `folder` itself) by a relative path."""
    import plotly.io as pio

    from workbench.viz.export import write_figure_html

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
            write_figure_html(fig, path, assets if assets is not None else folder)
            written.append(path)
    return written


def export_html(notebook: Path, assets: Path | None = None) -> Path:
    """Offline HTML export of an executed notebook, next to it (no CDN: see workbench.viz.export); plotly.js is
    shared from `assets` when given, else inlined."""
    from workbench.viz.export import export_notebook_html

    return export_notebook_html(notebook, assets=assets)


def _read_record(path: Path) -> dict[str, object] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _write_record(path: Path, outcome: RunOutcome, **extra: object) -> None:
    payload = {**asdict(outcome), **extra, "updated": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_text(path, json.dumps(payload, indent=2, default=str))


@contextmanager
def run_lock(run_dir: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[bool]:
    """Hold an exclusive lock on a run folder; yields True when another process held it first (we waited)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "a+") as handle:
        waited = False
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waited = True
            if on_wait:
                on_wait(f"waiting: an identical run is in progress in {run_dir} (another process)")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield waited
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_writable(reports: str | Path) -> Path:
    """The reports folder, created if needed; a one-line OSError when it cannot be written."""
    reports = Path(reports)
    try:
        reports.mkdir(parents=True, exist_ok=True)
        probe = reports / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise OSError(f"cannot write to the reports folder {reports}: {err.strerror or err}") from None
    return reports


KERNEL_START_ATTEMPTS = 3


def kernel_start_failed(err: Exception) -> bool:
    """True when a kernel died before running any cell: with runs side by side, two kernels can pick the same free
    port at once (ZMQ "Address already in use"); such a run has done nothing and is started again."""
    return "Kernel died before replying to kernel_info" in str(err) or "Address already in use" in str(err)


def run_notebook(
    notebook: Path,
    profile: str = "quick",
    parameters: Mapping[str, object] | None = None,
    reports: str | Path = "reports",
    resume: bool = False,
    kernel: str | None = None,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Execute one notebook with papermill into its run folder; never raises for a failing notebook.

    Skips the run when `resume` and its folder holds a finished run with the same parameters, or when another
    process was running the identical run and finished it while this one waited (`say` is told either way).
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    if profile not in PROFILES:
        raise ParameterError(f"profile must be one of {PROFILES}, not {profile!r}")
    parameters = dict(parameters or {})
    run_dir = Path(reports) / run_name(notebook.stem, profile, parameters)
    record_path = run_dir / RUN_FILE
    with run_lock(run_dir, say) as waited:
        previous = _read_record(record_path) or {}
        finished = previous.get("status") == "ok" and previous.get("parameters") == parameters
        if finished and (resume or waited):
            if waited and say:
                say(f"skipped: the identical run in {run_dir} was finished by the other process")
            return RunOutcome(notebook.stem, str(run_dir), "skipped", profile, parameters, previous.get("seconds", 0.0))
        output = run_dir / notebook.name
        for stale in (output, run_dir / RESULTS_FILE):  # a killed or failed earlier attempt leaves nothing behind
            stale.unlink(missing_ok=True)
        outcome = RunOutcome(notebook.stem, str(run_dir), "running", profile, parameters)
        _write_record(record_path, outcome, pid=os.getpid())
        tracked = start_run(run_dir, notebook.stem, profile, parameters, say)  # None unless --track
        injected = {"profile": profile, "report_dir": str(run_dir.resolve()), **parameters}
        start = time.perf_counter()
        outcome.status = "ok"
        for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
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
            except Exception as err:  # kernel died, bad parameters cell, ...: report it, go on with other notebooks
                if attempt < KERNEL_START_ATTEMPTS and kernel_start_failed(err):
                    if say:
                        say(f"retrying {notebook.stem}: its kernel did not start ({err})")
                    continue
                outcome.status = "failed"
                outcome.error = {"ename": type(err).__name__, "evalue": str(err)}
            break
        outcome.seconds = time.perf_counter() - start
        if outcome.status == "ok" and not (run_dir / RESULTS_FILE).is_file():
            outcome.status = "failed"
            outcome.error = {"ename": "MissingResults", "evalue": f"the notebook wrote no {RESULTS_FILE}"}
        if output.is_file():
            try:
                export_html(output, Path(reports) / ASSETS_DIR)
                export_figures(output, run_dir / "figures", Path(reports) / ASSETS_DIR)
            except Exception as err:  # an export problem must not hide the run's own result
                outcome.error.setdefault("export", str(err))
        _write_record(record_path, outcome, finished=time.strftime("%Y-%m-%d %H:%M:%S"))
        if tracked:  # parameters, headline, metric rows and the report folder, once the run is complete
            tracked.finish(outcome.status, say)
    return outcome


def expand_grid(grid: Mapping[str, Sequence[object]] | None) -> list[dict[str, object]]:
    """Every combination of the grid's values, in order (`{a: [1, 2], b: [x]}` -> [{a: 1, b: x}, {a: 2, b: x}])."""
    combos: list[dict[str, object]] = [{}]
    for key, values in (grid or {}).items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ParameterError(f"grid {key!r}: expected a non-empty list of values, got {values!r}")
        combos = [{**combo, key: value} for combo in combos for value in values]
    return combos


EXECUTORS = ("process", "ray", "dask")
SIDE_BY_SIDE_PROFILES = ("smoke",)  # runs whose time is kernel start-up and imports: single-threaded work


def default_workers(profile: str, runs: int) -> int:
    """How many runs at once when the user does not say: a smoke run (or a dry run) spends most of its seconds
    starting a kernel and importing torch and transformers on one core, so such runs go side by side, one per core
    (at most 4, for memory); a quick or paper run already uses every core inside its notebook, so those go one after
    another."""
    if profile not in SIDE_BY_SIDE_PROFILES and not dry_run():
        return 1
    return max(1, min(runs, os.cpu_count() or 1, 4))


def run_notebooks(
    notebooks: Sequence[Path],
    profile: str = "quick",
    parameters: Mapping[str, object] | None = None,
    reports: str | Path = "reports",
    resume: bool = False,
    kernel: str | None = None,
    say: Callable[[str], None] | None = None,
    progress: bool = True,
    grid: Mapping[str, Sequence[object]] | None = None,
    workers: int = 1,
    executor: str = "process",
    address: str | None = None,
) -> list[RunOutcome]:
    """Check every run's parameters, then run every notebook × grid combination: one after another with one worker,
    else in parallel on `executor` (a local process pool, Ray or Dask; `address` joins an existing cluster). A failure
    is recorded and the other runs still go. `say` hears `[i/n] NAME profile -> folder` as each run starts (is queued,
    in parallel) and its status line as soon as it ends. This process coordinates: it alone writes `index.html`,
    after every run. Outcomes come back in the order of the runs."""
    jobs = [(nb, {**dict(parameters or {}), **combo}) for nb in notebooks for combo in expand_grid(grid)]
    for notebook, params in jobs:
        check_parameters(notebook, params)
    reports = check_writable(reports).resolve()
    if executor not in EXECUTORS:
        raise ParameterError(f"unknown executor {executor!r}; expected one of {', '.join(EXECUTORS)}")

    def started(i: int, notebook: Path, params: Mapping[str, object]) -> None:
        if say:
            say(f"[{i}/{len(jobs)}] {notebook.stem} {profile} -> {reports / run_name(notebook.stem, profile, params)}")

    def finished(outcome: RunOutcome) -> RunOutcome:
        write_index(reports)
        if say:
            say(status_line(outcome))
        return outcome

    if workers <= 1 and address is None:
        outcomes = []
        for i, (notebook, params) in enumerate(jobs, 1):
            started(i, notebook, params)
            outcomes.append(finished(run_notebook(notebook, profile, params, reports, resume, kernel, progress, say)))
        return outcomes
    from workbench import executors

    submit = {"process": executors.process_pool, "ray": executors.ray_cluster, "dask": executors.dask_cluster}
    calls = [(nb, profile, params, str(reports), resume, kernel) for nb, params in jobs]
    for i, (notebook, params) in enumerate(jobs, 1):
        started(i, notebook, params)
    return submit[executor](calls, workers, address, finished)


def status_line(outcome: RunOutcome) -> str:
    """One run's result as the command line prints it (with the failing cell for a failure)."""
    line = f"{outcome.status:>7}  {outcome.notebook}  {outcome.seconds:6.1f}s  {outcome.run_dir}"
    if outcome.status == "failed":
        error = outcome.error
        line += f"\n         failing cell {error.get('cell')}: {error.get('ename')}: {error.get('evalue')}"
        if error.get("source"):
            line += f"\n         which starts: {error['source']}"
        line += f"\n         see {outcome.run_dir}/ for the executed notebook"
    return line


def record_interactive_run(run_dir: Path, profile: str, parameters: Mapping[str, object]) -> None:
    """List a run saved from JupyterLab (no runner) in its reports folder's index like a batch run."""
    outcome = RunOutcome(run_dir.name, str(run_dir), "ok", profile, {**parameters, "interactive": True})
    _write_record(run_dir / RUN_FILE, outcome, finished=time.strftime("%Y-%m-%d %H:%M:%S"))
    write_index(run_dir.parent)


def write_index(reports: str | Path = "reports") -> Path:
    """`reports/index.html`: every run with its status, headline metrics and links."""
    reports = Path(reports)
    rows = []
    for record_path in sorted(reports.glob(f"*/{RUN_FILE}")):
        run_dir = record_path.parent
        record = _read_record(record_path)
        if not isinstance(record, dict) or "status" not in record:
            warnings.warn(f"skipping {run_dir}: unreadable {RUN_FILE}", stacklevel=2)
            continue
        results_path = run_dir / RESULTS_FILE
        results = _read_record(results_path) if results_path.is_file() else {}
        headline = (results or {}).get("headline", {})
        links = [
            f'<a href="{html.escape(p.relative_to(reports).as_posix())}">{p.suffix[1:]}</a>'
            for p in sorted(run_dir.glob("*.html")) + ([results_path] if results_path.is_file() else [])
        ]
        numbers = ", ".join(f"{k} = {v:.4f}" if isinstance(v, float) else f"{k} = {v}" for k, v in headline.items())
        if results and results.get("meaningful") is False:  # smoke / dry run: say so before any number
            numbers = "NOT MEANINGFUL (random tiny model or dry run: the figures test the code only); " + numbers
        error = record.get("error") or {}
        status = record["status"] + (
            f" (cell {error.get('cell')}: {error.get('ename')}: {error.get('evalue')})"
            if record["status"] == "failed"
            else ""
        )
        rows.append(
            f"<tr><td>{html.escape(run_dir.name)}</td><td>{html.escape(str(record.get('profile')))}</td>"
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
    path = reports / INDEX_FILE
    atomic_write_text(path, page)
    return path
