"""Launchable entry point for the large fine-tunes: one study's run under `accelerate launch` (or
`torch.distributed.run`), every process running the study and `training.fit` sharing each global batch among them.

    accelerate launch --num_processes 8 --mixed_precision bf16 -m workbench.train 03_besstie --profile paper
    python -m workbench.train 02_comet --profile paper -p languages='[hau]' --reports reports

Only the main process writes the report (`reports/<study>-<profile>-train[-<hash>]/results.json`); results.json
records the executor, the number of processes and the precision.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from workbench.profiles import PROFILES


def main(argv: Sequence[str] | None = None) -> int:
    from workbench.runner import parse_parameters, run_name
    from workbench.studies import study_module

    parser = argparse.ArgumentParser(
        prog="python -m workbench.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("study", help="a study (besstie, comet, ...) or its notebook stem (03_besstie, ...)")
    parser.add_argument("--profile", choices=PROFILES, default="paper")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--reports", default="reports")
    args = parser.parse_args(argv)
    study = study_module(args.study)
    overrides = parse_parameters(args.parameter)
    params = study.PROFILES.resolve(args.profile, **overrides)
    os.environ.setdefault("WORKBENCH_EXECUTOR", "accelerate" if "WORLD_SIZE" in os.environ else "serial")
    result = study.run(params)
    if int(os.environ.get("RANK", "0")) == 0:
        folder = Path(args.reports) / run_name(f"{study.STUDY}-train", args.profile, overrides)
        print(result.save(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
