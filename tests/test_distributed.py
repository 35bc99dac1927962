"""Data parallel training through the one loop: two CPU processes (gloo) train like one; PCGrad stays in sync."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

JOB = Path(__file__).with_name("distributed_job.py")


def _run(out: Path, job: str, processes: int) -> None:
    launcher = (
        [sys.executable]
        if processes == 1
        else [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(processes),
        ]
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, str(JOB), str(out), job], capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    folders = {}
    for processes in (1, 2):
        out = tmp_path_factory.mktemp(f"p{processes}")
        for job in ("fit", "pcgrad"):
            _run(out, job, processes)
        folders[processes] = out
    return folders


def _load(folder: Path, job: str, rank: int) -> dict:
    return torch.load(folder / f"{job}-rank{rank}.pt", weights_only=True)


def test_two_processes_train_like_one(runs):
    one, (a, b) = _load(runs[1], "fit", 0), (_load(runs[2], "fit", r) for r in (0, 1))
    assert a["best_epoch"] == b["best_epoch"] == one["best_epoch"] and a["epochs"] == one["epochs"]
    for key, value in one["state"].items():
        torch.testing.assert_close(a["state"][key], value, atol=1e-6, rtol=0)
        torch.testing.assert_close(b["state"][key], value, atol=1e-6, rtol=0)


def test_pcgrad_replicas_stay_identical_under_data_parallelism(runs):
    a, b = (_load(runs[2], "pcgrad", r) for r in (0, 1))
    assert a["best_epoch"] == b["best_epoch"] and a["epochs"] == b["epochs"] >= 2
    for key, value in a["state"].items():
        assert torch.equal(value, b["state"][key]), f"replicas drifted apart at {key}"
    one = _load(runs[1], "pcgrad", 0)
    for key, value in one["state"].items():  # averaged task gradients: the same steps as one process, to rounding
        torch.testing.assert_close(a["state"][key], value, atol=1e-5, rtol=0)
