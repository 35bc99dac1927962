"""What a Comet teacher costs to fine-tune on this machine: the offline MiniLM against African-language encoders.

`workbench bench teachers [--json] [--teachers NAME ...] [--steps 8] [--warmup 2] [--target-rows 256] [-p k=v]`

The quick Comet teacher (MiniLM, English WordPiece) stays below the TF-IDF bar on most AfriSenti languages; an encoder
pretrained on them (AfroXLMR, AfriBERTa) is what the study's notes name to close the gap, and those come from the
hub. This benchmark says what one would cost here without downloading anything: each hub candidate is built from
its published architecture (`workbench.paper_models`) with random weights, since the arithmetic of a step does not
depend on the weights' values, and every candidate (MiniLM with its real weights too) is fine-tuned through the Comet
teacher's own path (`methods.comet.load_teacher`, `methods.finetune.fit_classifier` under the profile's teacher
`TrainConfig`: batch, schedule, precision) on the profile's pooled AfriSenti train rows, tokenized by MiniLM's
tokenizer (the stand-in of a `--dry-run`), so every candidate steps through the same token sequences (without the profile's symbol tokens: a few hundred
extra vocabulary rows). A real
African-language SentencePiece vocabulary splits these tweets into fewer pieces than English WordPiece, so the hub
candidates' figures are upper bounds.

Per candidate: seconds per optimisation step (the mean of `steps` timed steps over the epoch's batches at evenly spaced
quantiles of their padded size, after `warmup` untimed steps and an untimed pass over the same batches: an epoch's
mean step; the same batches for every candidate), milliseconds per row of the frozen teacher's forward pass with its attention maps (`teacher_targets`),
and the profile's teacher work projected from them: `teacher_epochs` x the steps of an epoch, plus a forward pass
over the dev rows after every epoch, the dev and test rows once more, and the distillation corpus.
The projection assumes no early stop. Needs `WORKBENCH_DATA` with AfriSenti (the smoke profile runs on any data).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import torch

from workbench.bench import set_up
from workbench.paper_models import DRY_RUN_ENV, PAPER_ARCHITECTURES

CANDIDATES = (
    "minilm",
    "Davlan/afro-xlmr-mini",
    "castorini/afriberta_base",
    "castorini/afriberta_large",
    "Davlan/afro-xlmr-base",
    "Davlan/afro-xlmr-large",
)

WEIGHTS = {"tiny": "random (the tiny test encoder)"}


@contextlib.contextmanager
def architecture_only(name: str) -> Iterator[bool]:
    """Inside: `load_teacher(name)` builds a hub model of `PAPER_ARCHITECTURES` from its published config with random
    weights (the `--dry-run` path) instead of downloading it. Yields whether the weights are random."""
    random_weights = name in PAPER_ARCHITECTURES
    before = os.environ.get(DRY_RUN_ENV)
    if random_weights:
        os.environ[DRY_RUN_ENV] = "1"
    try:
        yield random_weights
    finally:
        if before is None:
            os.environ.pop(DRY_RUN_ENV, None)
        else:
            os.environ[DRY_RUN_ENV] = before


def timing_plan(lengths: Sequence[int], batch_size: int, seed: int, steps: int, warmup: int) -> list[list[int]]:
    """The batches a candidate is timed on: `warmup` copies of the epoch's median batch, then `steps` of the epoch's
    length-grouped batches (as the teacher's fine-tuning draws them) at evenly spaced quantiles of their padded size,
    twice: only the second pass is timed (a batch shape's first step pays for setting up its kernels, which a real
    fine-tuning pays once over many epochs), and its mean is an epoch's mean step."""
    from workbench.methods.finetune import LengthGroupedBatchSampler

    batches = LengthGroupedBatchSampler(lengths, batch_size, seed=seed).batches(0)
    by_size = sorted(batches, key=lambda b: len(b) * max(lengths[i] for i in b))
    picked = [by_size[int((k + 0.5) * len(by_size) / steps)] for k in range(steps)]
    return [by_size[len(by_size) // 2]] * warmup + picked + picked


def step_seconds(model, items, config, plan: list[list[int]], steps: int, pad_id: int) -> list[float]:
    """Seconds of each of the last `steps` optimisation steps of `plan`, under `workbench.training.fit` with the
    teacher's config (one pass over `plan`, no dev split)."""
    from workbench.methods.finetune import PadCollator
    from workbench.training import fit

    ends: list[float] = []
    run = replace(config, epochs=1, max_steps=len(plan), progress=False)
    fit(model, items, None, run, collate_fn=PadCollator(pad_id), batch_sampler=plan,
        num_classes=model.config.num_labels, desc="teacher", on_step=lambda _: ends.append(time.perf_counter()))  # fmt: skip
    return [b - a for a, b in zip(ends[-steps - 1 : -1], ends[-steps:])]


def measure_teacher(
    name: str, params: dict[str, object], data, steps: int = 8, warmup: int = 2, target_rows: int = 256
) -> dict[str, object]:
    """One candidate's cost: seconds per fine-tuning step and per forward row, and the profile's projected teacher
    work (see the module docstring)."""
    from workbench.data import concat_frames
    from workbench.methods.comet import load_teacher, teacher_targets
    from workbench.methods.finetune import token_items
    from workbench.studies.comet import train_configs

    if steps < 1 or warmup < 1:
        raise ValueError("steps and warmup must be at least 1")
    with architecture_only(name) as random_weights:
        tokenizer, teacher = load_teacher(name, num_labels=3, seed=int(params["seed"]))
    if params["teacher_freeze_embeddings"]:  # as methods.comet.fine_tune_teacher does
        teacher.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
    config = train_configs(params)["teacher"]
    length = int(params["max_length"])
    train = concat_frames(list(data.train.values()))
    items = token_items(tokenizer, train["text"].tolist(), train["label"].tolist(), length)
    lengths = [len(item["input_ids"]) for item in items]
    plan = timing_plan(lengths, config.batch_size, config.seed, steps, warmup)
    seconds = step_seconds(teacher, items, config, plan, steps, tokenizer.pad_token_id or 0)
    corpus = data.corpus["text"].tolist()[:target_rows]
    start = time.perf_counter()
    teacher_targets(teacher.eval(), tokenizer, corpus, length)
    row_seconds = (time.perf_counter() - start) / len(corpus)
    epochs, batch = int(params["teacher_epochs"]), int(params["batch_size"])
    dev_rows = sum(len(frame) for frame in data.dev.values())
    test_rows = sum(len(frame) for frame in data.test.values())
    fine_tune_steps = epochs * math.ceil(len(items) / batch)
    forward_rows = (epochs + 1) * dev_rows + test_rows + len(data.corpus)
    c = teacher.config
    return {
        "teacher": name,
        "weights": "published architecture, random weights" if random_weights else WEIGHTS.get(name, "pretrained"),
        "layers": c.num_hidden_layers,
        "hidden": c.hidden_size,
        "heads": c.num_attention_heads,
        "vocab": c.vocab_size,
        "parameters_m": sum(p.numel() for p in teacher.parameters()) / 1e6,
        "step_seconds": statistics.mean(seconds),
        "step_seconds_each": seconds,
        "forward_row_ms": 1000 * row_seconds,
        "fine_tune_steps": fine_tune_steps,
        "forward_rows": forward_rows,
        "projected_minutes": (fine_tune_steps * statistics.mean(seconds) + forward_rows * row_seconds) / 60,
    }


def measure(
    teachers: Sequence[str] = CANDIDATES,
    profile: str = "quick",
    overrides: dict[str, object] | None = None,
    steps: int = 8,
    warmup: int = 2,
    target_rows: int = 256,
    progress: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """Every candidate's cost on the Comet profile's data (loaded once), in the order given."""
    from workbench.studies import comet

    params = comet.PROFILES.resolve(profile, **(overrides or {}))
    data = comet.load(params)
    rows = []
    for name in teachers:
        rows.append(measure_teacher(name, params, data, steps, warmup, target_rows))
        if progress:
            progress(
                f"{name}: {rows[-1]['step_seconds']:.2f} s/step, {rows[-1]['projected_minutes']:.1f} min projected"
            )
    reference = rows[0]["projected_minutes"] if rows else float("nan")
    for row in rows:
        row["projected_vs_first"] = row["projected_minutes"] / reference if reference else float("nan")
    return {
        "meaningful": profile != "smoke",  # the smoke profile times a handful of rows
        "profile": profile,
        "train_rows": sum(len(f) for f in data.train.values()),
        "languages": list(data.languages),
        "max_length": int(params["max_length"]),
        "batch_size": int(params["batch_size"]),
        "teacher_epochs": int(params["teacher_epochs"]),
        "precision": str(params["teacher_precision"]),
        "steps": steps,
        "warmup_steps": warmup,
        "target_rows": target_rows,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "teachers": rows,
    }


def markdown(result: dict[str, object]) -> str:
    """The result as a Markdown table, one row per candidate."""
    lines = [
        f"Comet `{result['profile']}` teacher work ({result['train_rows']} train rows of "
        f"{', '.join(result['languages'])}, batch {result['batch_size']}, max length {result['max_length']}, "
        f"{result['teacher_epochs']} epochs, precision {result['precision']}, {result['torch_threads']} threads)",
        "",
        "| teacher | weights | layers x hidden | parameters (M) | s / step | ms / forward row | projected min | "
        "x first |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["teachers"]:
        lines.append(
            f"| {r['teacher']} | {r['weights']} | {r['layers']} x {r['hidden']} | {r['parameters_m']:.0f} | "
            f"{r['step_seconds']:.2f} | {r['forward_row_ms']:.1f} | {r['projected_minutes']:.1f} | "
            f"{r['projected_vs_first']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`workbench bench teachers [--json] [--teachers NAME ...] ...`."""
    from workbench.runner import parse_parameters

    parser = argparse.ArgumentParser(
        prog="workbench bench teachers",
        description=__doc__.splitlines()[0],
        epilog="Candidates by default: " + ", ".join(CANDIDATES),
    )
    parser.add_argument("--teachers", nargs="+", default=list(CANDIDATES), help="teachers to time, in order")
    parser.add_argument("--profile", default="quick", help="the Comet profile whose teacher work is projected")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="Comet parameter")
    parser.add_argument("--steps", type=int, default=8, help="timed optimisation steps per candidate (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps on the median batch first (default 2)")
    parser.add_argument("--target-rows", type=int, default=256, help="corpus rows of the timed forward pass")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    set_up(args.threads)
    result = measure(
        args.teachers,
        args.profile,
        parse_parameters(args.param),
        args.steps,
        args.warmup,
        args.target_rows,
        progress=None if args.json else lambda line: print(line, file=sys.stderr),
    )
    if not result["meaningful"]:
        print("NOTE: figures not meaningful: the smoke profile times a handful of rows", file=sys.stderr)
    print(json.dumps(result) if args.json else markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
