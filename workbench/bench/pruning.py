"""SpAtten benchmark: accuracy (BESSTIE Google sentiment) against measured throughput over keep schedules.

`workbench bench pruning [--profile quick] [--json] [-p key=value ...]` runs the SpAtten study
(`workbench.studies.spatten`) and prints its best schedule beside the dense model. It measures, in one process, the
dense Hugging Face model and the cascade-pruned forward pass on the same batches (batch 32, real BESSTIE texts, max
length 128), interleaved so that load from other processes hits both alike; warm-up, repeats, median. Accuracy: a
linear head on the pooled final states, trained on en-AU + en-UK Google train rows (texts also in the evaluation rows
removed) and scored on the official validation rows, on dense features (pruning applied afterwards) or on features
computed with the schedule's pruning on (pruning-aware training of the head).
"""

from __future__ import annotations

import argparse
import json
import sys

from workbench.methods.spatten import PruneSchedule, keep_summary
from workbench.profiles import PROFILES as PROFILE_NAMES
from workbench.profiles import ParameterError
from workbench.studies import spatten as study


def summary(result: study.SpattenResult) -> dict[str, object]:
    """The benchmark's JSON object: the best schedule within 1 F1 point, its throughput and F1 beside dense."""
    curve, best, throughput = result.curve, result.best, result.throughput
    schedules = {s.name: s for s in result.schedules}
    out: dict[str, object] = {
        "schedule": None,
        "dense_seq_per_s": float(result.dense_hf["seq_per_s"]),
        "pruned_seq_per_s": None,
        "speedup": None,
        "dense_macro_f1": result.dense_macro_f1,
        "pruned_macro_f1": None,
        "f1_tolerance": study.F1_TOLERANCE,
        "target_met": result.target_met,
    }
    if best is not None:
        schedule = schedules[best["schedule"]]
        out.update(
            schedule=schedule.name,
            schedule_detail=schedule.to_dict(),
            pruned_seq_per_s=float(best["seq_per_s"]),
            speedup=float(best["speedup"]),
            pruned_macro_f1=float(best["macro_f1"]),
            flop_ratio=float(best["flop_ratio"]),
        )
    own_dense = throughput[throughput["schedule"] == "dense"]
    out["own_dense_seq_per_s"] = float(own_dense["seq_per_s"].iloc[0]) if len(own_dense) else None
    out["curve"] = [
        {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
        for row in curve[
            ["schedule", "training", "macro_f1", "accuracy", "flop_ratio", "seq_per_s", "speedup"]
        ].to_dict("records")
    ]
    out["texts_timed"] = int(throughput["texts"].iloc[0])
    out["batch_size"] = int(throughput["batch_size"].iloc[0])
    out["max_length"] = int(throughput["max_length"].iloc[0])
    out["repeats"] = int(throughput["repeats"].iloc[0])
    out["torch_threads"] = int(throughput["torch_threads"].iloc[0])
    out["eval_rows"] = len(result.frames.valid)
    out["train_rows"] = len(result.frames.train)
    out["seconds"] = {k: round(v, 1) for k, v in result.timings.items()}
    return out


def _table(result: dict[str, object]) -> str:
    lines = [
        f"dense (Hugging Face): {result['dense_seq_per_s']:.1f} seq/s, macro-F1 {result['dense_macro_f1']:.4f}",
        f"own forward, keep 1.0: {result['own_dense_seq_per_s']:.1f} seq/s",
    ]
    if result["schedule"]:
        lines.append(
            f"best within {result['f1_tolerance'] * 100:.1f} F1 point: {result['schedule']} "
            f"({keep_summary(PruneSchedule(**result['schedule_detail']))}): "
            f"{result['pruned_seq_per_s']:.1f} seq/s, speed-up {result['speedup']:.2f}x "
            f"(FLOP ratio {result['flop_ratio']:.2f}x), macro-F1 {result['pruned_macro_f1']:.4f}"
        )
    else:
        lines.append("no pruned schedule kept macro-F1 within the tolerance")
    lines.append("")
    lines.append(f"{'schedule':<24}{'training':<15}{'macro_f1':>9}{'flops x':>9}{'seq/s':>9}{'speedup':>9}")
    for row in result["curve"]:
        lines.append(
            f"{row['schedule']:<24}{row['training']:<15}{row['macro_f1']:>9.4f}{row['flop_ratio']:>9.2f}"
            f"{row['seq_per_s']:>9.1f}{row['speedup']:>9.2f}"
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
    result = summary(study.run(params, progress=not args.json))
    result["profile"] = args.profile
    if args.json:
        print(json.dumps(result))
    else:
        print(_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
