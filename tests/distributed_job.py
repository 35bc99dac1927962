"""A tiny training job run by tests/test_distributed.py, once as one process and once under torch.distributed.run.

Usage: python tests/distributed_job.py OUT_DIR {fit|pcgrad}. Each process writes its weights and history to
OUT_DIR/<job>-rank<r>.pt.
"""

from __future__ import annotations

import os
import sys

import torch
from torch.utils.data import TensorDataset

from workbench.methods.pcgrad import fit_multitask
from workbench.registry import build
from workbench.training import TrainConfig, fit


def data(n: int = 64, tasks: int = 1) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, 8, generator=g)
    labels = [((x[:, 0, t] + 0.3 * torch.randn(n, generator=g)) > 0).long() for t in range(tasks)]
    return TensorDataset(x, torch.ones(n, 6, dtype=torch.bool), *labels)


def main(out: str, job: str) -> None:
    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", 0))
    config = TrainConfig(
        epochs=6,
        lr=3e-2,
        batch_size=16,
        patience=2,
        seed=0,
        weighted_loss=False,
        progress=False,
        device="cpu",
        monitor="loss",
        max_grad_norm=None,
    )
    if job == "fit":
        torch.manual_seed(0)
        model = build("head", "linear", 8, 2, dropout=0.0, pooling="mean")
        history = fit(model, data(), data(32), config)
    else:
        torch.manual_seed(0)
        model = build("head", "crosstalk", 8, 2, dropout=0.0, channels=8, task_dim=4)
        history = fit_multitask(model, data(tasks=2), data(32, tasks=2), config, pcgrad=True)
    if os.environ.get("DEBUG_DDP"):
        print(rank, [(round(e.get("train_loss", 0), 6), round(e["dev_loss"], 6)) for e in history.epochs])
    torch.save(
        {"state": model.state_dict(), "best_epoch": history.best_epoch, "epochs": len(history.epochs)},
        os.path.join(out, f"{job}-rank{rank}.pt"),
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
