"""The `workbench` command: run notebooks in batch, list them, inspect and fetch data, run benchmarks."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
from collections.abc import Sequence

from workbench.data.schema import DataError
from workbench.paper_models import DRY_RUN_ENV
from workbench.profiles import PROFILES, ParameterError

DESCRIPTION = """\
Attention-based sentiment research workbench.

  workbench run 00_quickstart                 run the quickstart (profile quick) into ./reports
  workbench run all --profile smoke           every notebook, tiny models, seconds each
  workbench run 01_mage -p languages='["hau"]'  override a notebook parameter (YAML values)
  workbench list                              notebooks and their parameters
  workbench data                              datasets present under $WORKBENCH_DATA (else ./data)
  workbench run 03_besstie --grid seeds='[[0],[1],[2]]' --workers 2   a grid, two runs at a time
  workbench bench pruning --json              a benchmark (see `workbench bench --help`)
  workbench bench train --json                fine-tuning throughput: our loop against the Hugging Face Trainer
  workbench claims reports --profile quick    each paper's claims: effect, 95% CI, verdict (--json)
"""


def _say(message: str) -> None:
    print(message, flush=True)


def _cmd_run(args: argparse.Namespace) -> int:
    from workbench.runner import default_workers, expand_grid, find_notebooks, parse_parameters, run_notebooks

    notebooks = find_notebooks(args.notebooks, args.notebooks_dir)
    if args.dry_run:  # the kernels (and any workers) inherit it: paper architectures, random weights, one step
        os.environ[DRY_RUN_ENV] = "1"
    if args.track:  # the kernels (and any workers) inherit it too; without the package: one line, untracked
        from workbench.tracking import configure

        configure(args.track, args.track_uri, say=_say)
    parameters = parse_parameters(args.parameter)
    grid = parse_parameters(args.grid)
    runs = len(notebooks) * len(expand_grid(grid))
    outcomes = run_notebooks(
        notebooks,
        args.profile,
        parameters,
        args.reports,
        args.resume,
        args.kernel,
        say=_say,
        progress=False,
        grid=grid,
        workers=args.workers if args.workers is not None else default_workers(args.profile, runs),
        executor=args.executor,
        address=args.address,
    )
    print(f"index: {args.reports}/index.html")
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def _cmd_list(args: argparse.Namespace) -> int:
    from workbench.runner import find_notebooks, notebook_parameters, notebook_title
    from workbench.studies import NOTEBOOK_STUDIES, study_module

    for path in find_notebooks(args.names or ["all"], args.notebooks_dir):
        print(f"{path.stem}: {notebook_title(path)}")
        if not args.names:
            continue
        if path.stem in NOTEBOOK_STUDIES:
            rows = study_module(path.stem).PROFILES.table()
            width = max(len(r["name"]) for r in rows)
            print(f"    {'parameter':{width}s}  {'smoke':>14s}  {'quick':>14s}  {'paper':>14s}  help")
            for r in rows:
                values = "  ".join(f"{_short(r[p]):>14s}" for p in ("smoke", "quick", "paper"))
                print(f"    {r['name']:{width}s}  {values}  {r['type']}: {r['help']}")
        else:
            for name, info in notebook_parameters(path).items():
                help_text = f"  # {info['help']}" if info["help"] else ""
                print(f"    {name} = {info['default']}{help_text}")
    return 0


def _short(value: object, width: int = 14) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 1] + "…"


def _cmd_report(args: argparse.Namespace) -> int:
    from workbench.runner import write_index

    print(write_index(args.reports))
    return 0


def _cmd_claims(args: argparse.Namespace) -> int:
    from workbench import claims

    table = claims.verdicts(claims.load_runs(args.reports, profile=args.profile))
    table = table if args.settings else claims.headline(table)
    if args.json:
        print(json.dumps(claims.records(table), indent=2))
    else:
        print(claims.format_table(table))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    from workbench.saving import check_reports

    hf_logging.disable_progress_bar()  # one "Loading weights" bar per Hugging Face model would bury the table
    rows = check_reports(args.reports)
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(f"no saved models under {args.reports}/*/models/")
    else:
        for row in rows:
            diff = "load failed" if row["max_abs_diff"] is None else f"max |Δlogit| {row['max_abs_diff']:.3g}"
            status = "ok" if row["ok"] else "FAILED"
            card = "" if row["card"] else ", no model card"
            print(f"{status:>6}  {row['run']}/{row['model']}  {row['class']}  {diff}{card}  {row['error']}".rstrip())
        print(f"{sum(r['ok'] for r in rows)} of {len(rows)} saved models reload with the run's exact test logits")
    return 0 if all(r["ok"] for r in rows) else 1


def lab_command(extra: Sequence[str]) -> list[str]:
    """`jupyter lab` on the project's notebooks with the save hook that keeps them as committed."""
    from workbench.runtime import project_root

    return [
        sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={project_root()}",
        "--ContentsManager.pre_save_hook=workbench.jupyter_hooks.strip_on_save", *extra,
    ]  # fmt: skip


def _cmd_lab(args: argparse.Namespace) -> int:
    command = lab_command(args.args)
    print("starting:", " ".join(command[1:]), flush=True)
    os.execv(command[0], command)  # JupyterLab takes over this process (Ctrl-C stops it as usual)
    return 0


def benchmark_names() -> list[str]:
    """Benchmarks available as `workbench bench NAME` (modules of `workbench.bench`)."""
    import workbench.bench

    return sorted(m.name for m in pkgutil.iter_modules(workbench.bench.__path__) if not m.name.startswith("_"))


def _cmd_bench(args: argparse.Namespace) -> int:
    names = benchmark_names()
    if args.name not in names:
        print(f"error: unknown benchmark {args.name!r}; available: {', '.join(names) or 'none'}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"workbench.bench.{args.name}")
    return int(module.main(list(args.args)) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="execute notebooks with papermill and write reports",
        description=(
            "Execute notebooks with papermill. Each run writes REPORTS/<stem>-<profile>[-<hash>]/ with the executed "
            "notebook, an HTML export, results.json and run.json; REPORTS/index.html lists every run. A failing "
            "notebook is reported with its failing cell and the others still run (exit code 1)."
        ),
    )
    run.add_argument(
        "notebooks", nargs="+", metavar="NOTEBOOK", help="file stem such as 00_quickstart, a path, or 'all'"
    )
    run.add_argument(
        "--profile",
        choices=PROFILES,
        default="quick",
        help="smoke: tiny model, seconds; quick: offline default encoder on real data, minutes on a CPU "
        "(default); paper: the paper's settings, meant for a GPU",
    )
    run.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="notebook parameter; VALUE is YAML, e.g. -p seeds='[0,1,2]' (repeatable)",
    )
    run.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=LIST",
        help="run every combination: e.g. --grid seed='[0,1,2]' --grid lr='[1e-3,3e-3]' (each its own report)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="runs in parallel (default: one per core for smoke and dry runs, whose time is single-threaded kernel "
        "start-up and imports; one after another for quick and paper runs, which use every core themselves)",
    )
    run.add_argument(
        "--executor",
        choices=("process", "ray", "dask"),
        default="process",
        help="where parallel runs go: a local process pool (default), Ray or Dask (optional extras)",
    )
    run.add_argument("--address", default=None, help="join an existing Ray or Dask cluster at this address")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="exercise the profile's code path on a CPU: the paper models' architectures with random weights (nothing "
        "downloaded), a stand-in tokenizer, a handful of rows, one optimisation step per training; reports go to "
        "<stem>-<profile>-dryrun; the numbers mean nothing",
    )
    run.add_argument("--reports", default="reports", help="reports folder (default ./reports)")
    run.add_argument("--resume", action="store_true", help="skip runs already finished with the same parameters")
    run.add_argument("--notebooks-dir", default=None, help="folder of notebooks (default ./notebooks)")
    run.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's own)")
    run.add_argument(
        "--track",
        choices=("mlflow", "tensorboard"),
        default=None,
        help="log each run's parameters, per-epoch curves, headline metrics and report folder to MLflow or "
        'TensorBoard (optional extra: pip install -e ".[track]")',
    )
    run.add_argument(
        "--track-uri",
        default=None,
        metavar="URI",
        help="MLflow tracking URI (e.g. sqlite:///mlflow.db; default: MLflow's own) or TensorBoard log folder "
        "(default: REPORTS/tensorboard)",
    )
    run.set_defaults(func=_cmd_run)

    lst = sub.add_parser(
        "list",
        help="list notebooks; with NAME, each parameter's value under each profile and its help",
        description="List the notebooks. With NAMEs (stems such as 03_besstie, or 'all'), show every parameter of "
        "each: its value under the smoke, quick and paper profiles, its type and one line of help.",
    )
    lst.add_argument("names", nargs="*", metavar="NAME", help="notebook stems to describe")
    lst.add_argument("--notebooks-dir", default=None, help="folder of notebooks (default ./notebooks)")
    lst.set_defaults(func=_cmd_list)

    report = sub.add_parser("report", help="rebuild REPORTS/index.html from the run folders")
    report.add_argument("--reports", default="reports")
    report.set_defaults(func=_cmd_report)

    verdicts = sub.add_parser(
        "claims",
        help="each paper's claims judged from the runs' results.json: effect, 95%% CI, verdict",
        description="Judge every study's claims (workbench/claims.py) from the metric rows of REPORTS/*/results.json: "
        "per claim and profile the effect (arm A - arm B), a 95%% interval (t over >= 3 paired seeds, or a paired "
        "bootstrap over stored test predictions), n, and reproduced / contradicted / inconclusive / missing.",
    )
    verdicts.add_argument("reports", nargs="?", default="reports", help="reports folder (default ./reports)")
    verdicts.add_argument("--json", action="store_true", help="one JSON record per verdict")
    verdicts.add_argument("--profile", default=None, help="judge only this profile's runs (e.g. quick)")
    verdicts.add_argument("--settings", action="store_true", help="also every setting, not only each claim's answer")
    verdicts.set_defaults(func=_cmd_claims)

    models = sub.add_parser(
        "models",
        help="reload every saved model under REPORTS and check it reproduces its run's test logits exactly",
        description="For each REPORTS/<run>/models/<name>/ folder: rebuild the model with its class's "
        "from_pretrained (workbench.saving.load_saved), recompute the logits of the stored test inputs and compare "
        "with the logits the run computed (test_logits.safetensors), and check the model card (README.md). Exit 1 "
        "when any model differs, fails to load or has no card.",
    )
    models.add_argument("reports", nargs="?", default="reports", help="reports folder (default ./reports)")
    models.add_argument("--json", action="store_true", help="one JSON record per model")
    models.set_defaults(func=_cmd_models)

    lab = sub.add_parser(
        "lab",
        help="JupyterLab on the project, saving notebooks as committed (git status stays clean after Run All)",
        description="Start JupyterLab at the project root with workbench.jupyter_hooks.strip_on_save: a notebook in "
        "notebooks/ is saved without outputs (the run's results are in reports/). Arguments go to `jupyter lab`.",
    )
    lab.add_argument("args", nargs=argparse.REMAINDER, help="arguments for jupyter lab, e.g. --port 8890")
    lab.set_defaults(func=_cmd_lab)

    bench = sub.add_parser(
        "bench",
        help="speed and memory benchmarks (baseline measured in the same run)",
        description="Run a benchmark: " + ", ".join(benchmark_names()) + ". "
        "Arguments after NAME go to the benchmark (try `workbench bench NAME --help`).",
    )
    bench.add_argument("name", metavar="NAME", help="benchmark name")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the benchmark")
    bench.set_defaults(func=_cmd_bench)

    try:
        from workbench.data.commands import add_data_commands
    except ImportError:
        pass
    else:
        add_data_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `workbench` console script; errors in input become one line and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `workbench list | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (DataError, ParameterError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # an unwritable reports folder, a full disk: one line, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
