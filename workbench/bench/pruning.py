"""SpAtten benchmark: cascade pruning against the strongest dense model and the usual CPU speed-ups, on BESSTIE.

`workbench bench pruning [--profile quick] [--json] [-p key=value ...]` runs the SpAtten study
(`workbench.studies.spatten`) and prints, in one process and on the same batches (batch 32, real BESSTIE Google
texts, max length 128; interleaved, warm-up, repeats, median): the dense Hugging Face model, every cascade-pruned
schedule, and the peers named by `-p runtimes=[...]` (PyTorch dynamic int8, ONNX Runtime fp32 / int8, the pruned
schedules on the int8 encoder; one that cannot run here is skipped with a message). Accuracy: a linear head on
pooled states, trained on en-AU + en-UK Google train rows (texts also in the evaluation rows removed) and scored on
the official validation rows. The dense reference is the dense pooling (final-layer mean, last-k-layer mean,
all-layer mean, [CLS]) with the best macro-F1 on a dev split of the training rows; every pruned figure is judged
against it. Goals: a pruned schedule >= 2x the dense throughput within 1 macro-F1 point, and pruned + int8 >= 3x.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from workbench.methods.spatten import PruneSchedule, keep_summary
from workbench.profiles import PROFILES as PROFILE_NAMES
from workbench.profiles import ParameterError
from workbench.studies import spatten as study

NOT_MEANINGFUL = "figures not meaningful: a random tiny model (smoke profile) or a dry run; no goal is judged"


def _number(value: object) -> object:
    """JSON-safe: numpy scalars to Python, NaN to None, floats rounded to 4 decimals in the curve."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summary(result: study.SpattenResult) -> dict[str, object]:
    """The benchmark's JSON object: the dense reference (chosen on the dev split) and every dense pooling, the best
    schedule within 1 F1 point of that reference (else the best trade-off, `within_tolerance` false), each peer's
    `<runtime>_seq_per_s` / `<runtime>_macro_f1` (`pruned_int8`: its best schedule), and the goals."""
    shown = result.best if result.best is not None else result.trade_off
    schedules = {s.name: s for s in result.schedules}
    meaningful = result.meaningful
    out: dict[str, object] = {}
    if not meaningful:
        out["note"] = NOT_MEANINGFUL
    out.update(
        meaningful=meaningful,
        dense_reference=result.dense_reference,
        dense_macro_f1=result.dense_macro_f1,
        dense_dev_macro_f1=float(result.reference["dev_macro_f1"]),
        dense_by_pooling={
            row["pooling"]: {"dev_macro_f1": row["dev_macro_f1"], "macro_f1": row["macro_f1"]}
            for row in study.tables(result)["dense_by_pooling"].to_dict("records")
        },
        dense_seq_per_s=float(result.dense_hf["seq_per_s"]),
        schedule=None,
        pooling=None,
        pruned_seq_per_s=None,
        speedup=None,
        pruned_macro_f1=None,
        within_tolerance=result.best is not None,
        f1_tolerance=study.F1_TOLERANCE,
        target_speedup=study.TARGET_SPEEDUP,
        target_met=result.target_met,
    )
    if shown is not None:
        schedule = schedules[shown["schedule"]]
        out.update(
            schedule=schedule.name,
            schedule_detail=schedule.to_dict(),
            pooling=shown["pooling"],
            pruned_seq_per_s=float(shown["seq_per_s"]),
            speedup=float(shown["speedup"]),
            pruned_macro_f1=float(shown["macro_f1"]),
            flop_ratio=float(shown["flop_ratio"]),
        )
    peers = result.runtimes
    for runtime in study.RUNTIMES:
        rows = peers[peers["runtime"] == runtime] if len(peers) else peers
        if runtime == "pruned_int8" and len(rows):
            best8 = result.best_int8
            if best8 is None:  # none within the tolerance: the most accurate one (faster on a tie)
                best8 = rows.sort_values(["macro_f1", "speedup"], ascending=False).iloc[0]
            rows = rows[rows["config"] == best8["config"]]
            out["pruned_int8_schedule"] = best8["schedule"]
            out["pruned_int8_within_tolerance"] = result.best_int8 is not None
        if len(rows):
            out[f"{runtime}_seq_per_s"] = float(rows["seq_per_s"].iloc[0])
            out[f"{runtime}_speedup"] = float(rows["speedup"].iloc[0])
            out[f"{runtime}_macro_f1"] = float(rows["macro_f1"].iloc[0])
    out["target_speedup_int8"] = study.TARGET_SPEEDUP_INT8
    out["int8_target_met"] = result.int8_target_met
    out["skipped"] = list(result.skipped)
    own_dense = result.throughput[result.throughput["schedule"] == "dense"]
    out["own_dense_seq_per_s"] = float(own_dense["seq_per_s"].iloc[0]) if len(own_dense) else None
    columns = ["schedule", "training", "pooling", "dev_macro_f1", "macro_f1", "accuracy", "flop_ratio", "seq_per_s",
               "speedup"]  # fmt: skip
    out["curve"] = [
        {k: (round(v, 4) if isinstance(v, float) else _number(v)) for k, v in row.items()}
        for row in result.curve[columns].to_dict("records")
    ]
    if len(peers):
        out["runtimes"] = [
            {k: (round(v, 4) if isinstance(v, float) else _number(v)) for k, v in row.items()}
            for row in peers[["runtime", "schedule", "pooling", "macro_f1", "seq_per_s", "speedup"]].to_dict("records")
        ]
    if len(result.finetuned):
        out["finetune"] = [
            {k: (round(v, 4) if isinstance(v, float) else _number(v)) for k, v in row.items()}
            for row in study.tables(result)["finetune"].to_dict("records")
        ]
    throughput = result.throughput
    out["texts_timed"] = int(throughput["texts"].iloc[0])
    out["batch_size"] = int(throughput["batch_size"].iloc[0])
    out["max_length"] = int(throughput["max_length"].iloc[0])
    out["repeats"] = int(throughput["repeats"].iloc[0])
    out["torch_threads"] = int(throughput["torch_threads"].iloc[0])
    out["eval_rows"] = len(result.frames.valid)
    out["train_rows"] = len(result.frames.train)
    out["seconds"] = {k: round(v, 1) for k, v in result.timings.items()}
    return {k: _number(v) for k, v in out.items()}


def _table(result: dict[str, object]) -> str:
    lines = []
    lines.append(
        f"dense reference (best dev-split pooling): {result['dense_reference']}, macro-F1 "
        f"{result['dense_macro_f1']:.4f} (dev {result['dense_dev_macro_f1']:.4f}); Hugging Face fp32 "
        f"{result['dense_seq_per_s']:.1f} seq/s; own forward at keep 1.0 {result['own_dense_seq_per_s']:.1f} seq/s"
    )
    lines.append(
        "dense by pooling: "
        + ", ".join(
            f"{p} {v['macro_f1']:.4f} (dev {v['dev_macro_f1']:.4f})" for p, v in result["dense_by_pooling"].items()
        )
    )
    if result["schedule"]:
        label = (
            f"best within {result['f1_tolerance'] * 100:.1f} F1 point"
            if result["within_tolerance"]
            else "no schedule within the tolerance; best trade-off"
        )
        lines.append(
            f"{label}: {result['schedule']} ({keep_summary(PruneSchedule(**result['schedule_detail']))}; "
            f"pooling {result['pooling']}): {result['pruned_seq_per_s']:.1f} seq/s, speed-up {result['speedup']:.2f}x "
            f"(FLOP ratio {result['flop_ratio']:.2f}x), macro-F1 {result['pruned_macro_f1']:.4f}"
        )
    for runtime in study.RUNTIMES:
        if f"{runtime}_seq_per_s" in result:
            which = f" ({result['pruned_int8_schedule']})" if runtime == "pruned_int8" else ""
            lines.append(
                f"{runtime}{which}: {result[f'{runtime}_seq_per_s']:.1f} seq/s, speed-up "
                f"{result[f'{runtime}_speedup']:.2f}x, macro-F1 {result[f'{runtime}_macro_f1']:.4f}"
            )
    for row in result.get("finetune", []):
        lines.append(
            f"fine-tuning, {row['training']} ({row['schedule']}, {row['pooling']}): macro-F1 {row['macro_f1']:.4f} "
            f"(dev {row['dev_macro_f1']:.4f}), speed-up {row['speedup']:.2f}x"
        )
    lines += result["skipped"]
    if result["meaningful"]:
        lines.append(
            f"goal >= {result['target_speedup']:g}x within 1 point: {'met' if result['target_met'] else 'not met'}; "
            f"pruned + int8 >= {result['target_speedup_int8']:g}x: "
            + {True: "met", False: "not met", None: "not run"}[result["int8_target_met"]]
        )
    lines.append("")
    lines.append(
        f"{'schedule':<24}{'training':<15}{'pooling':<13}{'dev F1':>8}{'macro_f1':>9}{'flops x':>9}{'seq/s':>9}"
        f"{'speedup':>9}"
    )
    for row in result["curve"]:
        lines.append(
            f"{row['schedule']:<24}{row['training']:<15}{row['pooling']:<13}{row['dev_macro_f1']:>8.4f}"
            f"{row['macro_f1']:>9.4f}{row['flop_ratio']:>9.2f}{row['seq_per_s']:>9.1f}{row['speedup']:>9.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`workbench bench pruning [--profile quick] [--json] [-p key=value ...]`."""
    parser = argparse.ArgumentParser(prog="workbench bench pruning", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=PROFILE_NAMES)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="override a study parameter (YAML)"
    )
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"parameter {item!r} is not of the form key=value")
        overrides[key.strip()] = value  # decoded (YAML) and checked by PROFILES.resolve
    params = study.PROFILES.resolve(args.profile, **overrides)
    if not study.is_meaningful(params):  # the first line, before the run starts
        print(f"NOTE: {NOT_MEANINGFUL}", file=sys.stderr if args.json else sys.stdout, flush=True)
    result = summary(study.run(params, progress=not args.json))
    result["profile"] = args.profile
    if args.json:
        print(json.dumps(result))
    else:
        print(_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
