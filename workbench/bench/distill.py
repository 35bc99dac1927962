"""`workbench bench distill`: the Comet teacher vs its distilled student (and the student in int8): size, CPU speed,
memory and macro-F1, measured in one process.

It measures a saved Comet run: `--from REPORT_DIR` (a folder written by the Comet notebook or `workbench run
02_comet`: results.json and `models/`), else the newest such run under `--reports`, else it runs the Comet study now
(`--profile`, default quick: the real teacher and student; default recipe only unless `-p sweeps=...`) into a
temporary folder. The teacher is the one the Comet study trains (its fine-tuned `teacher`), the student the default
recipe's student of the first language. Both are loaded back from their saved folders, each with the tokenizer saved
beside it. Speed (`workbench.methods.comet.speed_comparison`): interleaved rounds, median kept; latency = batch 1,
throughput = batch 32, forward only. Peak memory: RSS growth of a fresh process loading the model and running one
batch-32 forward. Macro-F1: the run's own rows for teacher and student; the int8 student (PyTorch dynamic int8 of its
linear layers) is scored here on the same test rows. A `smoke` run (random tiny models) says so in its first line:
its figures are not meaningful.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

from workbench.methods.comet import (
    disk_size_mib,
    load_classifier,
    parameter_count,
    peak_memory_mib,
    retention,
    score,
    speed_comparison,
)
from workbench.methods.runtimes import quantize_linear_int8, runtime_problem
from workbench.results import RESULTS_FILE, figures_meaningful
from workbench.runtime import torch_threads
from workbench.studies import comet as study

NOT_MEANINGFUL = "figures not meaningful: profile {profile} trains random tiny models on a handful of rows"


def find_report(reports: Path) -> Path | None:
    """The newest folder under `reports` holding a Comet results.json and the saved teacher."""
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
    params = study.PROFILES.resolve(profile, **{"sweeps": [], **overrides, "save_models": True})
    study.run(params, progress=False).save(directory)
    return directory


def _same_tokenization(a, b, texts: list[str], max_length: int) -> bool:
    """Whether two tokenizers (the teacher's and the student's saved copies) give the same ids for `texts`."""
    kw = dict(truncation=True, max_length=max_length)
    return a(texts, **kw)["input_ids"] == b(texts, **kw)["input_ids"]


def measure(report_dir: Path, rounds: int | None = None, memory: bool = True) -> dict[str, object]:
    """Everything the bench prints for one saved Comet run: the teacher, the first language's default-recipe student
    and that student in int8, timed here; teacher and student macro-F1 from the run's rows, the int8 student's
    scored here on every language's test rows (each language's own student)."""
    payload = json.loads((report_dir / RESULTS_FILE).read_text())
    known = {k: v for k, v in payload["parameters"].items() if k in study.PROFILES.names}
    params = study.PROFILES.resolve(payload["profile"], **known)
    scores = study.per_language_scores(pd.DataFrame(payload["metrics"]))
    if scores.empty or scores["student_macro_f1"].isna().any():
        raise ValueError(f"{report_dir / RESULTS_FILE} has no teacher and default-recipe student scores per language")
    languages = list(scores.index)
    models = report_dir / "models"
    missing = [name for name in ("teacher", *(f"student-{lang}" for lang in languages)) if not (models / name).is_dir()]
    if missing:
        raise FileNotFoundError(f"{models} lacks the saved model folder(s) {', '.join(missing)}")
    data = study.load(params)
    texts = study.timing_texts(data)
    length = int(params["max_length"])
    int8_problem = runtime_problem("torch_int8")
    out: dict[str, object] = {}
    with torch_threads(params["torch_threads"]), torch.inference_mode():
        teacher_tokenizer, teacher = load_classifier(models / "teacher")
        student_tokenizer, student = load_classifier(models / f"student-{languages[0]}")
        out["tokenizers_match"] = _same_tokenization(teacher_tokenizer, student_tokenizer, texts, length)
        timed = {"teacher": teacher, "student": student}
        if int8_problem is None:
            timed["student_int8"] = quantize_linear_int8(student)
        speed = speed_comparison(timed, student_tokenizer, texts, length, rounds or int(params["bench_rounds"]))
        for name, model in timed.items():
            folder = models / ("teacher" if name == "teacher" else f"student-{languages[0]}")
            if name != "student_int8":  # packed int8 weights are not parameters: the count would mislead
                out[f"{name}_params"] = parameter_count(model)
            out[f"{name}_latency_ms"] = speed[f"{name}_latency_ms"]
            out[f"{name}_seq_per_s"] = speed[f"{name}_seq_per_s"]
            if name != "student_int8":
                out[f"{name}_disk_mib"] = disk_size_mib(folder)
                out[f"{name}_peak_mib"] = peak_memory_mib(folder, 32, length) if memory else float("nan")
        for name in timed:
            out[f"{name}_speedup"] = out[f"{name}_seq_per_s"] / out["teacher_seq_per_s"]
            out[f"{name}_latency_speedup"] = out["teacher_latency_ms"] / out[f"{name}_latency_ms"]
        int8_scores = {}
        if int8_problem is None:
            for language in languages:
                tokenizer, own = load_classifier(models / f"student-{language}")
                int8_scores[language] = score(quantize_linear_int8(own), tokenizer, data.test[language], length)
        out["torch_threads"] = torch.get_num_threads()
    out["speedup"] = out.pop("student_speedup")
    out["latency_speedup"] = out.pop("student_latency_speedup")
    out.pop("teacher_speedup"), out.pop("teacher_latency_speedup")
    out.update(
        teacher=str(params["teacher"]),
        teacher_macro_f1=float(scores["teacher_macro_f1"].mean()),
        student_macro_f1=float(scores["student_macro_f1"].mean()),
        retention=retention(scores["student_macro_f1"], scores["teacher_macro_f1"]),
        teacher_weighted_f1=float(scores["teacher_weighted_f1"].mean()),
        student_weighted_f1=float(scores["student_weighted_f1"].mean()),
    )
    if int8_scores:
        int8_f1 = [int8_scores[lang]["macro_f1"] for lang in languages]
        scores["student_int8_macro_f1"] = int8_f1
        out.update(
            student_int8_macro_f1=float(sum(int8_f1) / len(int8_f1)),
            student_int8_retention=retention(int8_f1, scores["teacher_macro_f1"]),
            student_int8_weighted_f1=sum(int8_scores[lang]["weighted_f1"] for lang in languages) / len(languages),
        )
    else:
        out["skipped"] = [f"student_int8: {int8_problem}"]
    meaningful = figures_meaningful(str(payload.get("profile")), payload["parameters"])
    out.update(
        per_language=scores.to_dict("index"),
        languages=languages,
        max_length=length,
        timed_texts=len(texts),
        source=str(report_dir),
        profile=payload.get("profile"),
        meaningful=meaningful,
    )
    if not meaningful:
        out = {"note": NOT_MEANINGFUL.format(profile=payload.get("profile")), **out}
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


def _print_table(result: dict[str, object]) -> None:
    print(
        f"source: {result['source']}  teacher: {result['teacher']}  languages: {', '.join(result['languages'])}  "
        f"L={result['max_length']}  tokenizers match: {result['tokenizers_match']}"
    )
    int8 = "student_int8_seq_per_s" in result
    print(f"{'':10}{'teacher':>12}{'student':>12}{'ratio':>10}" + (f"{'int8 stud.':>12}{'ratio':>10}" if int8 else ""))
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
        line = f"{label:10}{fmt.format(t):>12}{fmt.format(s):>12}{s / t if t else float('nan'):>10.3f}"
        q = result.get(f"student_int8_{key}")
        if int8:
            line += f"{fmt.format(q):>12}{q / t if t else float('nan'):>10.3f}" if q is not None else f"{'-':>12}"
        print(line)
    print(f"throughput speed-up {result['speedup']:.2f}x, latency speed-up {result['latency_speedup']:.2f}x")
    print(f"macro-F1 retention {result['retention']:.3f}  (torch threads: {result['torch_threads']})")
    if int8:
        print(
            f"int8 student: {result['student_int8_speedup']:.2f}x the teacher's throughput, retention "
            f"{result['student_int8_retention']:.3f}"
        )
    for line in result.get("skipped", []):
        print(f"skipped {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbench bench distill", description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="source", type=Path, help="a Comet report folder with results.json and models/")
    parser.add_argument("--reports", type=Path, default=Path("reports"), help="where to look for the newest run")
    parser.add_argument(
        "--profile",
        default="quick",
        choices=list(study.PROFILES.overrides),
        help="profile of the study run when no saved run is found (default quick; smoke: tiny models, seconds)",
    )
    parser.add_argument("-p", dest="params", action="append", default=[], help="study parameter key=value (YAML)")
    parser.add_argument("--rounds", type=int, help="interleaved timing rounds (median kept)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    said_note = False
    with tempfile.TemporaryDirectory() as tmp:
        source = args.source or find_report(args.reports)
        if source is None:
            overrides = _overrides(args.params)
            params = study.PROFILES.resolve(args.profile, **overrides)
            if not figures_meaningful(args.profile, params):
                line = f"NOTE: no saved Comet run; training the {args.profile} profile now: " + NOT_MEANINGFUL.format(
                    profile=args.profile
                )
            else:
                line = f"no saved Comet run: training the {args.profile} profile's teacher and student now (minutes)"
            print(line, file=sys.stderr if args.json else sys.stdout, flush=True)
            said_note = not figures_meaningful(args.profile, params)
            overrides.setdefault("measure_memory", False)  # the bench measures below; the run's own timing is spare
            overrides.setdefault("bench_rounds", 1)
            source = run_study(args.profile, overrides, Path(tmp))
        result = measure(Path(source), args.rounds, memory=not args.no_memory)
        if source == Path(tmp):
            result["source"] = f"run now (profile {args.profile})"
    if args.json:
        if result.get("note") and not said_note:
            print(f"NOTE: {result['note']}", file=sys.stderr, flush=True)
        print(json.dumps(_finite(result)))
        return 0
    if result.get("note") and not said_note:
        print(f"NOTE: {result['note']}")
    _print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
