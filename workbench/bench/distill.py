"""`workbench bench distill`: teacher vs Comet student: size, CPU speed, memory and macro-F1, from one process.

Speed and memory are measured here, on the saved model folders of a Comet run (`workbench.methods.comet.efficiency`:
interleaved rounds, median kept; latency = batch 1, throughput = batch 32, forward only; peak memory = RSS growth of
a fresh process loading the model and running one batch-32 forward). Macro-F1 and retention are the run's own
(its results.json rows): the bench re-scores nothing.

With `--from REPORT_DIR` (a folder written by the Comet notebook or `workbench run 02_comet`: results.json and
`models/`), that run is measured; without it, the newest such run under `--reports` is used, else the Comet study
runs now (`--profile`, default smoke, default recipe only unless `-p sweeps=...`) into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import pandas as pd

from workbench.methods.comet import efficiency, retention
from workbench.results import RESULTS_FILE
from workbench.runtime import torch_threads
from workbench.studies import comet as study


def compare(
    teacher_dir: str | Path,
    student_dir: str | Path,
    texts: list[str],
    max_length: int,
    rounds: int = 5,
    memory: bool = True,
) -> dict[str, float]:
    """`teacher_*` / `student_*` size, speed and memory, plus `speedup` (throughput) and `latency_speedup`."""
    import torch

    both = efficiency({"teacher": teacher_dir, "student": student_dir}, texts, max_length, rounds, memory=memory)
    out: dict[str, float] = {
        f"{name}_{k}": v for name, row in both.items() for k, v in row.items() if "speedup" not in k
    }
    out.update(speedup=both["student"]["speedup"], latency_speedup=both["student"]["latency_speedup"])
    out["torch_threads"] = torch.get_num_threads()
    return out


def find_report(reports: Path) -> Path | None:
    """The newest folder under `reports` holding a Comet results.json and saved models."""
    found = []
    for path in reports.glob(f"*/{RESULTS_FILE}"):
        try:
            if (
                json.loads(path.read_text()).get("study") == study.STUDY
                and (path.parent / "models" / "teacher").is_dir()
            ):
                found.append(path.parent)
        except (OSError, json.JSONDecodeError):
            continue
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def run_study(profile: str, overrides: dict[str, object], directory: Path) -> Path:
    """Run the Comet study (default recipe only unless `sweeps` is given) and save it with its models."""
    params = study.PROFILES.resolve(profile, **{"sweeps": [], **overrides})
    study.run(params, progress=False).save(directory)
    return directory


def measure(report_dir: Path, rounds: int | None = None, memory: bool = True) -> dict[str, object]:
    """Everything the bench prints for one saved Comet run: the teacher and the first language's default-recipe
    student timed here, their macro-F1 from the run's rows."""
    payload = json.loads((report_dir / RESULTS_FILE).read_text())
    known = {k: v for k, v in payload["parameters"].items() if k in study.PROFILES.names}
    params = study.PROFILES.resolve(payload["profile"], **known)
    scores = study.per_language_scores(pd.DataFrame(payload["metrics"]))
    if scores.empty or scores["student_macro_f1"].isna().any():
        raise ValueError(f"{report_dir / RESULTS_FILE} has no teacher and default-recipe student scores per language")
    languages = list(scores.index)
    models = report_dir / "models"
    texts = study.timing_texts(study.load(params))
    length = int(params["max_length"])
    with torch_threads(params["torch_threads"]):
        out: dict[str, object] = compare(
            models / "teacher",
            models / f"student-{languages[0]}",
            texts,
            length,
            rounds or int(params["bench_rounds"]),
            memory,
        )
    out.update(
        teacher_macro_f1=float(scores["teacher_macro_f1"].mean()),
        student_macro_f1=float(scores["student_macro_f1"].mean()),
        retention=retention(scores["student_macro_f1"], scores["teacher_macro_f1"]),
        teacher_weighted_f1=float(scores["teacher_weighted_f1"].mean()),
        student_weighted_f1=float(scores["student_weighted_f1"].mean()),
        per_language=scores.to_dict("index"),
        languages=languages,
        max_length=length,
        timed_texts=len(texts),
        source=str(report_dir),
        profile=payload.get("profile"),
    )
    return out


def _finite(value):
    """JSON-safe: NaN (memory not measured) as null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _overrides(pairs: list[str]) -> dict[str, object]:
    """`key=value` strings; the values are decoded and checked by the study's `PROFILES.resolve`."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"error: parameter {pair!r} is not of the form key=value")
        out[key.strip()] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbench bench distill", description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="source", type=Path, help="a Comet report folder with results.json and models/")
    parser.add_argument("--reports", type=Path, default=Path("reports"), help="where to look for the newest run")
    parser.add_argument("--profile", default="smoke", help="profile of the study run when no saved run is found")
    parser.add_argument("-p", dest="params", action="append", default=[], help="study parameter key=value (YAML)")
    parser.add_argument("--rounds", type=int, help="interleaved timing rounds (median kept)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        source = args.source or find_report(args.reports)
        if source is None:
            overrides = _overrides(args.params)
            overrides.setdefault("measure_memory", False)  # the bench measures below; the run's own timing is spare
            overrides.setdefault("bench_rounds", 1)
            source = run_study(args.profile, overrides, Path(tmp))
        result = measure(Path(source), args.rounds, memory=not args.no_memory)
        if source == Path(tmp):
            result["source"] = f"run now (profile {args.profile})"
    if args.json:
        print(json.dumps(_finite(result)))
        return 0
    print(f"source: {result['source']}  languages: {', '.join(result['languages'])}  L={result['max_length']}")
    print(f"{'':10}{'teacher':>12}{'student':>12}{'ratio':>10}")
    rows = [
        ("params", "params", "{:,.0f}"),
        ("disk MiB", "disk_mib", "{:.1f}"),
        ("lat. ms", "latency_ms", "{:.2f}"),
        ("seq/s", "seq_per_s", "{:.1f}"),
        ("peak MiB", "peak_mib", "{:.1f}"),
        ("macro-F1", "macro_f1", "{:.4f}"),
        ("wght-F1", "weighted_f1", "{:.4f}"),
    ]
    for label, key, fmt in rows:
        t, s = result[f"teacher_{key}"], result[f"student_{key}"]
        print(f"{label:10}{fmt.format(t):>12}{fmt.format(s):>12}{s / t if t else float('nan'):>10.3f}")
    print(f"throughput speed-up {result['speedup']:.2f}x, latency speed-up {result['latency_speedup']:.2f}x, ")
    print(f"macro-F1 retention {result['retention']:.3f}  (torch threads: {result['torch_threads']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
