"""`workbench bench distill`: teacher vs Comet student, size / CPU speed / memory / macro-F1 from one process.

Speed: both models are loaded from their saved folders with sdpa attention and timed in the same process, in
interleaved rounds (teacher, student, teacher, ...) so that a noisy shared machine slows both alike; the median
round is kept. Latency = one tweet per forward (batch 1); throughput = sequences per second at batch 32; both
time the model's forward on pre-tokenized input (tokenization excluded). Peak memory = growth of the peak
resident set of a fresh subprocess that loads the model and runs one batch-32 forward (weights + activations).

With `--from REPORT_DIR` (a Comet notebook run with `models/`), macro-F1 is re-measured on that run's test
subsets; without it, the newest `reports/*/` of the Comet study with saved models is used, else a `--profile`
(default smoke) teacher and student are trained first in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, PreTrainedModel

from workbench.distill import (
    DEFAULTS,
    STUDY,
    base_config,
    fine_tune_teacher,
    load_classifier,
    load_study_data,
    load_teacher,
    retention,
    run_distillation,
    save_models,
    score,
    teacher_targets,
)
from workbench.profiles import resolve_parameters


def parameter_count(model: torch.nn.Module) -> int:
    """All parameters (embeddings included, as the paper counts 559M / 69M)."""
    return sum(p.numel() for p in model.parameters())


def disk_size_mib(directory: str | Path) -> float:
    """Size of the saved weights (`*.safetensors`) in MiB."""
    return sum(f.stat().st_size for f in Path(directory).glob("*.safetensors")) / 2**20


@torch.inference_mode()
def _forward_seconds(model: PreTrainedModel, batches: Sequence[dict[str, torch.Tensor]]) -> list[float]:
    out = []
    for batch in batches:
        start = time.perf_counter()
        model(**batch)
        out.append(time.perf_counter() - start)
    return out


def _batches(tokenizer, texts: Sequence[str], batch_size: int, max_length: int) -> list[dict[str, torch.Tensor]]:
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        out.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    return out


def speed_comparison(
    models: dict[str, PreTrainedModel],
    tokenizer,
    texts: Sequence[str],
    max_length: int,
    rounds: int = 5,
    latency_texts: int = 32,
    batch_size: int = 32,
) -> dict[str, float]:
    """`<name>_latency_ms` (median over single-tweet forwards) and `<name>_seq_per_s` (batch 32) per model."""
    singles = _batches(tokenizer, texts[:latency_texts], 1, max_length)
    batches = _batches(tokenizer, texts, batch_size, max_length)
    for model in models.values():  # warm-up
        _forward_seconds(model, singles[:2] + batches[:1])
    latency: dict[str, list[float]] = {name: [] for name in models}
    rate: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            latency[name].append(statistics.median(_forward_seconds(model, singles)) * 1000)
            rate[name].append(len(texts) / sum(_forward_seconds(model, batches)))
    out = {}
    for name in models:
        out[f"{name}_latency_ms"] = statistics.median(latency[name])
        out[f"{name}_seq_per_s"] = statistics.median(rate[name])
    return out


_MEMORY_SCRIPT = """
import json, resource, sys
import torch
from transformers import AutoConfig
from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING as MAPPING
directory, batch, length, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
config = AutoConfig.from_pretrained(directory)
cls = MAPPING[type(config)]

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])

try:  # reset the high-water mark so that import-time peaks do not count (Linux >= 4.0)
    open("/proc/self/clear_refs", "w").write("5")
    before = status("VmRSS:")
except OSError:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
model = cls.from_pretrained(directory, attn_implementation="sdpa").eval()
ids = torch.randint(5, config.vocab_size, (batch, length))
with torch.inference_mode():
    model(input_ids=ids, attention_mask=torch.ones_like(ids))
after = status("VmHWM:") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mib": (after - before) / 1024}))
"""


def peak_memory_mib(directory: str | Path, batch_size: int = 32, max_length: int = 32) -> float:
    """Peak RSS growth (MiB, high-water mark reset after imports) of a fresh process loading the model and running one forward at `batch_size`."""
    args = [str(directory), str(batch_size), str(max_length), str(torch.get_num_threads())]
    done = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, *args], capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"])


def efficiency(
    model_dirs: dict[str, str | Path],
    texts: Sequence[str],
    max_length: int,
    rounds: int = 5,
    reference: str = "teacher",
    memory: bool = True,
) -> dict[str, dict[str, float]]:
    """Per saved model: params, disk MiB, latency ms, seq/s, peak MiB, and speed-ups over `reference`.

    All models are timed in this one process, interleaved (see the module docstring)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dirs[reference])
    models = {name: load_classifier(directory) for name, directory in model_dirs.items()}
    speed = speed_comparison(models, tokenizer, texts, max_length, rounds)
    out = {}
    for name, directory in model_dirs.items():
        out[name] = {
            "params": parameter_count(models[name]),
            "disk_mib": disk_size_mib(directory),
            "latency_ms": speed[f"{name}_latency_ms"],
            "seq_per_s": speed[f"{name}_seq_per_s"],
            "peak_mib": peak_memory_mib(directory, 32, max_length) if memory else float("nan"),
        }
    for row in out.values():
        row["speedup"] = row["seq_per_s"] / out[reference]["seq_per_s"]
        row["latency_speedup"] = out[reference]["latency_ms"] / row["latency_ms"]
    return out


def compare(
    teacher_dir: str | Path,
    student_dir: str | Path,
    texts: Sequence[str],
    max_length: int,
    rounds: int = 5,
    memory: bool = True,
) -> dict[str, float]:
    """`teacher_*` / `student_*` size, speed and memory, plus `speedup` (throughput) and `latency_speedup`."""
    both = efficiency({"teacher": teacher_dir, "student": student_dir}, texts, max_length, rounds, memory=memory)
    out: dict[str, float] = {
        f"{name}_{k}": v for name, row in both.items() for k, v in row.items() if "speedup" not in k
    }
    out.update(speedup=both["student"]["speedup"], latency_speedup=both["student"]["latency_speedup"])
    out["torch_threads"] = torch.get_num_threads()
    return out


def _find_report(reports: Path) -> Path | None:
    found = []
    for path in reports.glob("*/results.json"):
        try:
            if json.loads(path.read_text()).get("study") == STUDY and (path.parent / "models" / "teacher").is_dir():
                found.append(path.parent)
        except (OSError, json.JSONDecodeError):
            continue
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _train_fresh(profile: str, directory: Path, seed: int) -> dict:
    params = resolve_parameters(DEFAULTS, profile)
    data = load_study_data(params, seed)
    tokenizer, teacher = load_teacher(str(params["teacher"]), seed=seed)
    fine_tune_teacher(teacher, tokenizer, data, params, seed, progress=False)
    targets = teacher_targets(teacher, tokenizer, data.corpus["text"].tolist(), int(params["max_length"]))
    run = run_distillation(base_config(params), teacher, tokenizer, data, targets, params, seed)
    save_models(directory, teacher, tokenizer, run)
    return {"parameters": {**params, "seed": seed}}


def measure(report_dir: Path, rounds: int | None = None, memory: bool = True) -> dict[str, object]:
    """Everything the bench prints, for the saved models of one Comet run."""
    payload = json.loads((report_dir / "results.json").read_text())
    params = payload["parameters"]
    seed = int(params.get("seed", 0))
    torch.set_num_threads(int(params.get("torch_threads") or torch.get_num_threads()))
    data = load_study_data(params, seed)
    models = report_dir / "models"
    teacher_dir = models / "teacher"
    student_dirs = {lang: models / f"student-{lang}" for lang in data.languages}
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    length = int(params["max_length"])
    teacher = load_classifier(teacher_dir)
    per_language = {}
    for lang in data.languages:
        t = score(teacher, tokenizer, data.test[lang], length)
        s = score(load_classifier(student_dirs[lang]), tokenizer, data.test[lang], length)
        per_language[lang] = {"teacher_macro_f1": t["macro_f1"], "student_macro_f1": s["macro_f1"]}
        per_language[lang].update(teacher_weighted_f1=t["weighted_f1"], student_weighted_f1=s["weighted_f1"])
    texts = [t for lang in data.languages for t in data.test[lang]["text"].tolist()[:64]]
    first_student = student_dirs[data.languages[0]]
    rounds = rounds or int(params["bench_rounds"])
    out: dict[str, object] = compare(teacher_dir, first_student, texts, length, rounds, memory)
    teacher_f1 = [v["teacher_macro_f1"] for v in per_language.values()]
    student_f1 = [v["student_macro_f1"] for v in per_language.values()]
    out.update(
        teacher_macro_f1=float(np.mean(teacher_f1)),
        student_macro_f1=float(np.mean(student_f1)),
        retention=retention(student_f1, teacher_f1),
        teacher_weighted_f1=float(np.mean([v["teacher_weighted_f1"] for v in per_language.values()])),
        student_weighted_f1=float(np.mean([v["student_weighted_f1"] for v in per_language.values()])),
        per_language=per_language,
        languages=data.languages,
        max_length=length,
        timed_texts=len(texts),
        source=str(report_dir),
        profile=payload.get("profile"),
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbench bench distill", description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="source", type=Path, help="a Comet report folder with models/")
    parser.add_argument("--reports", type=Path, default=Path("reports"), help="where to look for the newest run")
    parser.add_argument("--profile", default="smoke", help="profile to train when no saved run is found")
    parser.add_argument("--rounds", type=int, help="interleaved timing rounds (median kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        source = args.source or _find_report(args.reports)
        if source is None:
            source = Path(tmp)
            payload = _train_fresh(args.profile, source, args.seed)
            payload.update(study=STUDY, profile=args.profile)
            (source / "results.json").write_text(json.dumps(payload, default=str))
        result = measure(Path(source), args.rounds, memory=not args.no_memory)
        if source == Path(tmp):
            result["source"] = f"trained now (profile {args.profile})"
    if args.json:
        print(json.dumps(result))
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
