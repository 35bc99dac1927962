"""Multitask training: PCGrad gradient surgery (Yu et al., NeurIPS 2020) and a fit loop for multi-output models.

PCGrad: for the parameters that every task's loss reaches (the shared ones), when two task gradients conflict
(negative dot product) project each onto the normal plane of the other, g_i <- g_i - (g_i . g_j / |g_j|^2) g_j,
visiting the other tasks in random order, then sum the projected gradients. Parameters that only one task
reaches (its own classifier) keep their plain gradient.

Batches are tuples `(*inputs, labels_task_0, labels_task_1, ...)`; the model returns one logits tensor per task.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from workbench.runtime import default_device
from workbench.training import History, TrainConfig, class_weights, classification_metrics, fit


def project_conflicting(grads: Sequence[torch.Tensor], generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """PCGrad's projection of flat task gradients: each g_i is projected off every g_j it conflicts with
    (checked against the partly projected g_i, in a random order of the other tasks). Sum the result to step."""
    projected = []
    for i, grad in enumerate(grads):
        current = grad.clone()
        for j in torch.randperm(len(grads), generator=generator).tolist():
            if j == i:
                continue
            dot = torch.dot(current, grads[j])
            if dot < 0:  # a negative dot product implies |g_j| > 0
                current = current - dot / grads[j].pow(2).sum() * grads[j]
        projected.append(current)
    return projected


def _averaged_across_processes(grads: Sequence[torch.Tensor | None]) -> tuple[torch.Tensor | None, ...]:
    """Under data parallelism, each task's gradient averaged over the processes before the projection (the
    `autograd.grad` calls bypass DDP's own averaging, so without this the replicas would drift apart)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tuple(grads)
    out = []
    for grad in grads:
        if grad is not None:
            grad = grad.contiguous().clone()
            dist.all_reduce(grad, op=dist.ReduceOp.SUM)
            grad /= dist.get_world_size()
        out.append(grad)
    return tuple(out)


def pcgrad_backward(
    losses: Sequence[torch.Tensor], params: Sequence[nn.Parameter], generator: torch.Generator | None = None
) -> dict[str, float]:
    """Set `.grad` of `params` from several task losses with PCGrad (replacing any existing gradient).

    A parameter counts as shared when every loss reaches it; only those are projected. Returns diagnostics:
    `conflict` (1.0 when some pair of raw shared gradients conflicted, else 0.0) and `cosine` (between the first
    two tasks' shared gradients).
    """
    params = [p for p in params if p.requires_grad]
    per_task = [torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True) for loss in losses]
    per_task = [_averaged_across_processes(grads) for grads in per_task]
    shared = [k for k in range(len(params)) if all(g[k] is not None for g in per_task)]
    for k, param in enumerate(params):
        if k not in shared:
            reached = [g[k] for g in per_task if g[k] is not None]
            param.grad = torch.stack(reached).sum(0) if reached else None
    if not shared:
        return {"conflict": 0.0, "cosine": float("nan")}
    flat = [torch.cat([g[k].reshape(-1) for k in shared]) for g in per_task]
    combined = torch.stack(project_conflicting(flat, generator)).sum(0)
    offset = 0
    for k in shared:
        size = params[k].numel()
        params[k].grad = combined[offset : offset + size].view_as(params[k]).clone()
        offset += size
    conflict = any(torch.dot(flat[a], flat[b]) < 0 for a in range(len(flat)) for b in range(a + 1, len(flat)))
    cosine = torch.nn.functional.cosine_similarity(flat[0], flat[1], dim=0) if len(flat) > 1 else torch.tensor(1.0)
    return {"conflict": float(conflict), "cosine": float(cosine)}


def _task_labels(data: Dataset, num_tasks: int) -> list[np.ndarray]:
    if hasattr(data, "tensors"):
        return [t.numpy() for t in data.tensors[-num_tasks:]]
    items = [data[i] for i in range(len(data))]
    return [np.array([int(item[-num_tasks + t]) for item in items]) for t in range(num_tasks)]


def _split(batch, num_tasks: int):
    return batch[:-num_tasks], batch[-num_tasks:]


@torch.no_grad()
def predict_multitask(
    model: nn.Module, data: Dataset, num_tasks: int = 2, batch_size: int = 256, collate_fn=None
) -> list[np.ndarray]:
    """One logits array per task for every item of `data`, in order (eval mode)."""
    device = next(model.parameters()).device
    model.eval()
    outputs: list[list[torch.Tensor]] = [[] for _ in range(num_tasks)]
    for batch in DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate_fn):
        inputs, _ = _split(batch, num_tasks)
        for store, logits in zip(outputs, model(*(x.to(device) for x in inputs))):
            store.append(logits.float().cpu())
    return [torch.cat(store).numpy() for store in outputs]


def evaluate_multitask(
    model: nn.Module, data: Dataset, num_tasks: int = 2, batch_size: int = 256, collate_fn=None
) -> list[dict[str, float]]:
    """Classification metrics per task."""
    logits = predict_multitask(model, data, num_tasks, batch_size, collate_fn)
    truth = _task_labels(data, num_tasks)
    return [
        classification_metrics(y, out.argmax(-1), labels=list(range(out.shape[1]))) for y, out in zip(truth, logits)
    ]


def fit_multitask(
    model: nn.Module,
    train: Dataset,
    dev: Dataset | None = None,
    config: TrainConfig | None = None,
    *,
    num_tasks: int = 2,
    pcgrad: bool = False,
    collate_fn=None,
    task_names: Sequence[str] | None = None,
) -> History:
    """Train a multi-output model on the sum of per-task (class-weighted) cross-entropies, with or without PCGrad,
    through the one training loop (`workbench.training.fit`): the two variants differ only in its `backward` hook.

    With `dev`, the weights of the epoch with the best mean dev `config.monitor` over tasks (or the lowest summed dev
    loss) are kept (early stopping on `config.patience`). Same seed, same data, same result on CPU.
    """
    config = config or TrainConfig()
    names = list(task_names or [f"task{t}" for t in range(num_tasks)])
    device = torch.device(config.device) if config.device else default_device()
    criteria = []
    for labels in _task_labels(train, num_tasks):
        weight = class_weights(labels, max(int(labels.max()) + 1, 2)).to(device) if config.weighted_loss else None
        criteria.append(nn.CrossEntropyLoss(weight=weight))

    def task_losses(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        inputs, targets = _split(batch, num_tasks)
        return [criterion(out, y) for criterion, out, y in zip(criteria, m(*inputs), targets)]

    def dev_metrics(m: nn.Module, data: Dataset) -> dict[str, float]:
        scores = evaluate_multitask(m, data, num_tasks, config.eval_batch_size, collate_fn)
        out = {f"{name}_macro_f1": s["macro_f1"] for name, s in zip(names, scores)}
        if config.monitor != "loss":
            out[config.monitor] = float(np.mean([s[config.monitor] for s in scores]))
        return out

    generator = torch.Generator().manual_seed(config.seed + 1)

    def pcgrad_step(losses: list[torch.Tensor], params: Sequence[nn.Parameter]) -> dict[str, float]:
        return {"conflict": pcgrad_backward(losses, params, generator)["conflict"]}

    return fit(
        model,
        train,
        dev,
        config,
        loss_fn=task_losses,
        collate_fn=collate_fn,
        backward=pcgrad_step if pcgrad else None,
        dev_metrics=dev_metrics,
        task_names=names,
        desc="epochs (multitask)",
    )
