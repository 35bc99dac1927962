"""`workbench bench notebooks`: what each notebook costs to run, cold and warm: wall time and peak memory.

Each notebook runs twice through `workbench run` in a child process (papermill, its own Jupyter kernel, a fresh
reports folder): first with an empty embedding / feature cache (`WORKBENCH_CACHE` set to a new folder: cold), then
again with the cache the first run filled (warm). Wall time is the child's, start to exit (kernel start, the notebook,
the HTML export). Peak memory is the peak of the summed resident set of the child's whole process tree (the runner,
the kernel and anything they start), sampled every `--interval` seconds, with the largest single process's own
high-water mark (getrusage) beside it. The table goes to `--out` (default `benchmarks/notebooks.md`) as Markdown, with
the machine, the command and the load average, so that a user knows what a run costs before starting it. Figures are
only comparable between runs on an otherwise idle machine.

A full quick-profile table takes hours, so rows accumulate: the measurements live beside the page in
`<out>.json`, a run replaces the rows of the notebooks it measured and keeps the others (each row says when it was
measured and the load before it), and rows from a different machine are dropped. `--keep-reports DIR` keeps the cold
run's reports (results.json, models, HTML) so that an expensive run also serves `workbench claims`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from workbench.runner import find_notebooks
from workbench.runtime import atomic_write_text

DEFAULT_OUT = Path("benchmarks") / "notebooks.md"


@dataclass
class Measurement:
    """One run of one notebook."""

    notebook: str
    profile: str
    cache: str  # cold | warm
    seconds: float
    peak_tree_mib: float  # peak of the summed RSS of the process tree (sampled)
    peak_process_mib: float  # largest single process's own high-water mark (getrusage via wait4)
    ok: bool
    error: str = ""
    measured_at: str = ""  # UTC, when the run started
    load_before: float = -1.0  # 1-minute load average just before the run
    command: str = ""  # the `workbench bench notebooks` command that measured it


def _tree_rss(pid: int) -> int:
    """Bytes resident in process `pid` and all its descendants (0 once it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


def measure_command(
    command: list[str], env: dict[str, str], interval: float = 0.2
) -> tuple[float, float, float, int, str]:
    """Run `command`; return (wall seconds, peak summed tree RSS MiB, largest process max RSS MiB, exit code, its
    output: stdout and stderr together)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.append(proc.stdout.read()), daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)  # the child's rusage includes the descendants it waited for
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = b"".join(output).decode(errors="replace")
    return seconds, peak[0] / 2**20, usage.ru_maxrss / 1024, proc.returncode, text


def _run_command(stem: str, profile: str, reports: Path, notebooks_dir: str | None, params: list[str]) -> list[str]:
    command = [sys.executable, "-m", "workbench.cli", "run", stem, "--profile", profile, "--reports", str(reports)]
    if notebooks_dir:
        command += ["--notebooks-dir", notebooks_dir]
    for pair in params:
        command += ["-p", pair]
    return command


def measure_notebook(
    stem: str,
    profile: str,
    notebooks_dir: str | None = None,
    params: list[str] | None = None,
    warm: bool = True,
    interval: float = 0.2,
    say=None,
    keep_reports: Path | None = None,
) -> list[Measurement]:
    """Cold then (with `warm`) warm run of one notebook, each in a fresh reports folder (the cold one in
    `keep_reports` when given); the cache folder is new for the cold run and shared by the warm one, and removed
    afterwards."""
    out = []
    with tempfile.TemporaryDirectory(prefix="workbench-bench-") as tmp:
        env = {**os.environ, "WORKBENCH_CACHE": str(Path(tmp) / "cache")}
        for cache in ("cold", "warm") if warm else ("cold",):
            reports = keep_reports if keep_reports is not None and cache == "cold" else Path(tmp) / f"reports-{cache}"
            command = _run_command(stem, profile, reports, notebooks_dir, list(params or []))
            if say:
                say(f"{stem} {profile} {cache}: {shlex.join(command[2:])}")
            started, load = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()[0]
            seconds, tree, process, code, text = measure_command(command, env, interval)
            error = ""
            if code != 0:
                lines = [line for line in text.splitlines() if line.strip()]
                error = " | ".join(lines[-3:])[-300:]
            out.append(Measurement(stem, profile, cache, seconds, tree, process, code == 0, error, started, load))
            if say:
                say(f"  {seconds:.1f} s, peak {tree:.0f} MiB (largest process {process:.0f} MiB), exit {code}")
    return out


SPEED = "matmul GFLOP/s (1 thread)"
# probe figures further apart than this (relative) mean another machine behind the same CPU name: one machine's probe
# varied from 112 to 145 GFLOP/s between runs of one day (22%); machines of one name differ by up to 2x
SAME_SPEED = 0.3


def matmul_speed(size: int = 1024, repeats: int = 15) -> float:
    """GFLOP/s of one torch thread multiplying two `size` x `size` float32 matrices, the best of `repeats` (about a
    second): a probe that tells apart machines reporting the same CPU name at different speeds."""
    import torch

    from workbench.runtime import torch_threads

    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    with torch_threads(1):
        a @ b  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def machine() -> dict[str, object]:
    """What the figures depend on: CPU, cores, memory, a speed probe (`matmul_speed`), Python and torch, thread
    settings."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        memory = f"{psutil.virtual_memory().total / 2**30:.1f} GiB"
    except ImportError:  # pragma: no cover - psutil comes with jupyter
        memory = "?"
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover
        torch_version = "?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        SPEED: round(matmul_speed(), 1),
        "python": platform.python_version(),
        "torch": torch_version,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
    }


def markdown(rows: list[Measurement], info: dict[str, object]) -> str:
    """The benchmarks page: how it was measured, the machine, the commands, and one row per notebook and profile
    with when it was measured and the 1-minute load average before each of its runs."""
    by_notebook: dict[tuple[str, str], dict[str, Measurement]] = {}
    for row in rows:
        by_notebook.setdefault((row.notebook, row.profile), {})[row.cache] = row

    def cell(m: Measurement | None, what: str) -> str:
        if m is None:
            return "-"
        if what == "seconds":
            return f"{m.seconds:,.0f}" if m.seconds >= 10 else f"{m.seconds:.1f}"
        if what == "load":
            return f"{m.load_before:.2f}" if m.load_before >= 0 else "?"
        return f"{m.peak_tree_mib:,.0f} ({m.peak_process_mib:,.0f})"

    lines = [
        "# What each notebook costs to run",
        "",
        "Produced by `workbench bench notebooks` (`workbench/bench/notebooks.py`); rerun it to refresh this page. "
        "Rows accumulate across runs of the command (the measurements are kept in the `.json` beside this page): "
        "these are the commands that measured them:",
        "",
        *[f"- `{command}`" for command in dict.fromkeys(r.command for r in rows if r.command)],
        "",
        "Each notebook runs through `workbench run` in a child process, twice: **cold** with an empty workbench cache "
        "(`WORKBENCH_CACHE` pointing at a new folder: embeddings and pruned features computed from scratch) and "
        "**warm** with the cache the cold run filled. Wall time covers the whole child (kernel start, the notebook, "
        "the HTML export). Peak memory is the peak of the summed resident set of the child's process tree (runner, "
        "Jupyter kernel and anything they start), sampled; in parentheses the largest single process's own "
        "high-water mark. The operating system's file cache is not cleared between runs.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
        "Figures are comparable only between runs made on an otherwise idle machine (load before a run near 0; "
        "a load of 2 on these 2 cores means another job had the machine).",
        "",
        "| notebook | profile | cold wall (s) | warm wall (s) | cold peak MiB (largest process) | "
        "warm peak MiB (largest process) | load before (cold / warm) | measured | status |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for (notebook, profile), runs in sorted(by_notebook.items()):
        cold, warm = runs.get("cold"), runs.get("warm")
        failed = [m for m in (cold, warm) if m is not None and not m.ok]
        status = "ok" if not failed else "failed: " + failed[0].error.replace("|", "/")
        when = (cold or warm).measured_at or "?"
        lines.append(
            f"| {notebook} | {profile} | {cell(cold, 'seconds')} | {cell(warm, 'seconds')} | {cell(cold, 'memory')} | "
            f"{cell(warm, 'memory')} | {cell(cold, 'load')} / {cell(warm, 'load')} | {when} | {status} |"
        )
    if any(m.profile == "smoke" for m in rows):
        lines += ["", "Smoke-profile rows measure the tiny random models of the tests, not what a real run costs."]
    return "\n".join(lines) + "\n"


def same_machine(before: dict[str, object], info: dict[str, object]) -> bool:
    """Whether two machine descriptions name one machine: CPU, cores and memory agree and the speed probes are within
    `SAME_SPEED` of each other (machines of one CPU name differ by up to 2x), or neither run has a probe."""
    if any(before.get(k) != info.get(k) for k in ("cpu", "cores", "memory")):
        return False
    speeds = [m.get(SPEED) for m in (before, info)]
    if None in speeds:
        return speeds.count(None) == 2
    return abs(speeds[0] - speeds[1]) <= SAME_SPEED * max(speeds)


def merge(previous: dict | None, rows: list[Measurement], info: dict[str, object]) -> list[Measurement]:
    """The measurements after this run: `rows` replace the stored rows of the same (notebook, profile); the other
    stored rows are kept unless they were measured on a different machine (`same_machine`)."""
    if not previous or not same_machine(previous.get("machine", {}), info):
        return list(rows)
    measured = {(r.notebook, r.profile) for r in rows}
    known = {f.name for f in fields(Measurement)}
    stored = [Measurement(**{k: v for k, v in r.items() if k in known}) for r in previous.get("rows", [])]
    return [r for r in stored if (r.notebook, r.profile) not in measured] + list(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbench bench notebooks", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="quick", help="profile of every run (default quick)")
    parser.add_argument("--only", nargs="+", default=["all"], metavar="NOTEBOOK", help="notebook stems (default all)")
    parser.add_argument("--notebooks-dir", default=None, help="folder of notebooks (default ./notebooks)")
    parser.add_argument("-p", dest="params", action="append", default=[], help="notebook parameter key=value (YAML)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"Markdown table (default {DEFAULT_OUT})")
    parser.add_argument("--no-write", action="store_true", help="print the table, write no file")
    parser.add_argument("--cold-only", action="store_true", help="skip the warm run")
    parser.add_argument("--interval", type=float, default=0.2, help="memory sampling interval in seconds")
    parser.add_argument("--json", action="store_true", help="print one JSON object (rows and machine)")
    parser.add_argument(
        "--keep-reports", type=Path, default=None, metavar="DIR", help="write the cold runs' reports into DIR (kept)"
    )
    args = parser.parse_args(argv)
    notebooks = find_notebooks(args.only, args.notebooks_dir)
    info = machine()
    command = shlex.join(["workbench", "bench", "notebooks", *(argv if argv is not None else sys.argv[1:])])
    store = args.out.with_suffix(".json")
    previous = None
    if not args.no_write and store.is_file():
        try:
            previous = json.loads(store.read_text())
        except json.JSONDecodeError as error:
            raise SystemExit(f"{store}: line {error.lineno}: not valid JSON ({error.msg}); fix or delete it") from None

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if previous and previous.get("rows") and not same_machine(previous.get("machine", {}), info):
        was = previous.get("machine", {})
        say(
            f"warning: {store} holds {len(previous['rows'])} row(s) measured on another machine ({was.get('cpu')}, "
            f"{was.get(SPEED, 'no')} GFLOP/s probe; this one: {info.get('cpu')}, {info.get(SPEED)}): this run's "
            "rows replace them. Pass another --out to keep both pages."
        )

    rows: list[Measurement] = []
    table: list[Measurement] = []
    for notebook in notebooks:
        measured = measure_notebook(
            notebook.stem,
            args.profile,
            args.notebooks_dir,
            args.params,
            not args.cold_only,
            args.interval,
            say,
            args.keep_reports,
        )
        for row in measured:
            row.command = command
        rows += measured
        table = merge(previous, rows, info)
        if not args.no_write:  # after every notebook: an interrupted run keeps what it measured
            args.out.parent.mkdir(parents=True, exist_ok=True)
            stored = {
                "machine": info,
                "rows": [asdict(r) for r in table],
            }
            atomic_write_text(store, json.dumps(stored, indent=1) + "\n")
            atomic_write_text(args.out, markdown(table, info))
            say(f"wrote {args.out} and {store}")
    if args.json:
        print(json.dumps({"machine": info, "rows": [asdict(r) for r in rows], "out": str(args.out)}))
    else:
        print(markdown(table, info), end="")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
