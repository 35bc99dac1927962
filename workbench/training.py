"""The one training loop: fit / evaluate for any classifier: AdamW, class-weighted cross-entropy, early stopping,
seeds, checkpoints; and what end-to-end fine-tuning needs: warm-up + linear or cosine learning-rate schedules,
torch's fused AdamW kernel, gradient accumulation, frozen embeddings / lower layers, any batch sampler (length-grouped
batches with dynamic padding: `workbench.methods.finetune`).

Batches are either tuples `(*inputs, labels)`, passed to the model as `model(*inputs)`, or mappings with a
`labels` key, passed as `model(**rest)`. The model returns logits (or an object with `.logits`). Three hooks cover
every other objective without a second loop:

- `loss_fn(model, batch) -> loss` replaces the default weighted cross-entropy (contrastive, distillation); it may
  return a list of per-task losses (multitask), whose sum is minimised and whose parts are logged;
- `backward(losses, params) -> diagnostics` replaces `losses.sum().backward()` (PCGrad's gradient surgery);
- `dev_metrics(model, dev) -> {name: value}` replaces `evaluate` on the dev set (per-task metrics).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from workbench.paper_models import dry_run
from workbench.runtime import atomic_directory, resolve_precision, set_seed

LossFn = Callable[[nn.Module, object], torch.Tensor]
Losses = torch.Tensor | Sequence[torch.Tensor]
BackwardFn = Callable[[Losses, Sequence[nn.Parameter]], Mapping[str, float] | None]
DevMetricsFn = Callable[[nn.Module, Dataset], Mapping[str, float]]
StepFn = Callable[[int], None]
SCHEDULES = ("constant", "linear", "cosine")
ADAMW_IMPLEMENTATIONS = ("fused", "foreach", "for-loop")
PRECISIONS = (None, "no", "bf16", "fp16", "auto")


@dataclass
class TrainConfig:
    """Everything a training run depends on; stored with its results."""

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 32
    weight_decay: float = 0.01
    patience: int = 3
    seed: int = 0
    weighted_loss: bool = True
    max_grad_norm: float | None = 1.0
    monitor: str = "macro_f1"  # a dev metric to maximise, or "loss": the mean dev loss, minimised
    eval_batch_size: int = 256
    device: str | None = None
    progress: bool = True
    max_steps: int | None = None  # stop after this many optimisation steps (a `--dry-run` takes one)
    # "no", "bf16" or "fp16" (mixed precision via Accelerate); "auto": bf16 on a CPU with native bf16 matrix units
    # (runtime.native_bf16), else "no"; None: $ACCELERATE_MIXED_PRECISION or "no"
    precision: str | None = None
    schedule: str = "constant"  # learning rate: "constant", "linear" (decay to 0) or "cosine", after any warm-up
    warmup_ratio: float = 0.0  # share of the optimisation steps spent warming up linearly from 0 (HF's ceil rule)
    warmup_steps: int | None = None  # warm-up steps; overrides warmup_ratio when set
    grad_accum_steps: int = 1  # micro-batches per optimisation step (the gradient of all their rows at once)
    freeze_embeddings: bool = False  # freeze the Hugging Face encoder's embeddings (see encoders.freeze_encoder)
    freeze_layers: int = 0  # freeze the encoder's lowest N transformer layers
    adamw: str = "fused"  # "fused": torch's fused kernel where it exists for the device/dtype, else "foreach";
    # "foreach" or "for-loop" reproduce the per-parameter arithmetic bitwise (fused differs at rounding, ~1e-7)

    def __post_init__(self):
        checks = {
            "schedule": self.schedule in SCHEDULES,
            "adamw": self.adamw in ADAMW_IMPLEMENTATIONS,
            "grad_accum_steps": isinstance(self.grad_accum_steps, int) and self.grad_accum_steps >= 1,
            "warmup_ratio": 0.0 <= self.warmup_ratio <= 1.0,
            "warmup_steps": self.warmup_steps is None or self.warmup_steps >= 0,
            "freeze_layers": self.freeze_layers >= 0,
            "precision": self.precision in PRECISIONS,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"TrainConfig: invalid {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)} (schedule: "
                f"{'/'.join(SCHEDULES)}; adamw: {'/'.join(ADAMW_IMPLEMENTATIONS)}; grad_accum_steps >= 1; "
                f"0 <= warmup_ratio <= 1; warmup_steps, freeze_layers >= 0; precision: {PRECISIONS})"
            )


@dataclass
class History:
    """Per-epoch records (`epoch`, `train_loss`, `seconds`, `dev_*` metrics) and the epoch whose weights were kept."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = float("-inf")
    _best_state: dict | None = field(default=None, repr=False)
    _stale: int = 0

    def add_epoch(self, model: nn.Module, record: dict[str, float], score: float | None, patience: int) -> bool:
        """Append an epoch's record; keep a copy of the weights when `score` improves (None: no dev set).
        Returns True when `patience` epochs have passed without improvement (time to stop)."""
        epoch = len(self.epochs)
        self.epochs.append(record)
        if score is None:
            return False
        if score > self.best_score:
            self.best_score, self.best_epoch, self._stale = score, epoch, 0
            self._best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            self._stale += 1
        return self._stale >= patience

    def restore_best(self, model: nn.Module) -> None:
        """Load the best epoch's weights into `model` (the last epoch's stay when there was no dev set); eval mode."""
        if self._best_state is not None:
            model.load_state_dict(self._best_state)
        else:
            self.best_epoch = len(self.epochs) - 1
        model.eval()

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.epochs)


def class_weights(labels: Sequence[int] | np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights n / (k * count_c), k = classes present (sklearn's "balanced"); absent classes get 0."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    present = max(int((counts > 0).sum()), 1)
    weights = np.where(counts > 0, counts.sum() / (present * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[int] | None = None
) -> dict[str, float]:
    """Accuracy, macro-F1, weighted-F1, macro precision and recall (scikit-learn; zero_division=0)."""
    kw = dict(labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", **kw)),
        "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", **kw)),
        "precision": float(precision_score(y_true, y_pred, average="macro", **kw)),
        "recall": float(recall_score(y_true, y_pred, average="macro", **kw)),
    }


def _to(batch, device):
    if isinstance(batch, Mapping):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(v, device) for v in batch)
    return batch.to(device) if torch.is_tensor(batch) else batch


def split_batch(batch) -> tuple[tuple, dict, torch.Tensor]:
    """(positional inputs, keyword inputs, labels) of a tuple or mapping batch."""
    if isinstance(batch, Mapping):
        rest = {k: v for k, v in batch.items() if k != "labels"}
        return (), rest, batch["labels"]
    *inputs, labels = batch
    return tuple(inputs), {}, labels


def logits_of(model: nn.Module, batch) -> torch.Tensor:
    """Run the model on a batch's inputs and return its logits."""
    args, kwargs, _ = split_batch(batch)
    out = model(*args, **kwargs)
    return out.logits if hasattr(out, "logits") else out


def _labels_of(data: Dataset) -> np.ndarray:
    if hasattr(data, "tensors"):
        return data.tensors[-1].numpy()
    return np.array([int(split_batch(data[i])[2]) for i in range(len(data))])


@torch.no_grad()
def predict(model: nn.Module, data: Dataset, batch_size: int = 256, device=None, collate_fn=None) -> np.ndarray:
    """Logits for every item of `data`, in order (eval mode, no gradients)."""
    device = torch.device(device) if device else next(model.parameters()).device
    model.eval()
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate_fn)
    return torch.cat([logits_of(model, _to(b, device)).float().cpu() for b in loader]).numpy()


def evaluate(model: nn.Module, data: Dataset, batch_size: int = 256, collate_fn=None) -> dict[str, float]:
    """Classification metrics of the model's argmax predictions on `data`."""
    logits = predict(model, data, batch_size, collate_fn=collate_fn)
    return classification_metrics(_labels_of(data), logits.argmax(-1), labels=list(range(logits.shape[1])))


@torch.no_grad()
def mean_loss(model: nn.Module, data: Dataset, loss_fn: LossFn, batch_size: int = 256, collate_fn=None) -> float:
    """Mean of `loss_fn(model, batch)` over `data` in eval mode, weighted by batch size: the smooth early-stopping
    signal (`monitor="loss"`) for dev sets so small that their F1 moves in steps of a point."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, seen = 0.0, 0
    for batch in DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate_fn):
        batch = _to(batch, device)
        n = len(next(iter(batch.values())) if isinstance(batch, dict) else batch[0])
        total, seen = total + float(loss_fn(model, batch)) * n, seen + n
    model.train(was_training)
    return total / max(seen, 1)


def monitored_score(record: dict[str, float], monitor: str) -> float:
    """The number early stopping maximises: a dev metric from `record`, or minus the dev loss."""
    return -record["dev_loss"] if monitor == "loss" else record[f"dev_{monitor}"]


def batch_size_of(batch) -> int:
    """Rows in a tuple or mapping batch."""
    return len(split_batch(batch)[2])


def total_loss(losses: Losses) -> torch.Tensor:
    """The minimised objective: a scalar loss, or the sum of per-task losses."""
    return torch.stack(list(losses)).sum() if isinstance(losses, (list, tuple)) else losses.sum()


def train_step(
    model: nn.Module,
    batch,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    params: Sequence[nn.Parameter],
    max_grad_norm: float | None = None,
    backward: BackwardFn | None = None,
    accelerator=None,
) -> tuple[torch.Tensor, Mapping[str, float]]:
    """One optimisation step (forward, backward or the `backward` hook, clipping, update); returns the detached
    loss (one per task for a multitask objective) and the hook's diagnostics. `fit` and step timings share it.

    A `backward` hook receives the per-task losses as `loss_fn` returned them: separate graphs, so a task's loss
    reaches only the parameters it uses (PCGrad needs that to tell shared parameters from task-specific ones). Under
    data parallelism the hook's forward runs without DDP's gradient sync: the hook averages across processes itself.
    With an `accelerator`, the forward runs under its autocast (mixed precision) and the backward through it."""
    sync = accelerator.no_sync(model) if (accelerator and backward and accelerator.num_processes > 1) else nullcontext()
    with sync:
        with accelerator.autocast() if accelerator else nullcontext():
            losses = loss_fn(model, batch)
        optimizer.zero_grad()
        if backward:
            diagnostics = backward(losses, params) or {}
        else:
            (accelerator.backward if accelerator else torch.Tensor.backward)(total_loss(losses))
            diagnostics = {}
    if max_grad_norm:
        (accelerator.clip_grad_norm_ if accelerator else nn.utils.clip_grad_norm_)(params, max_grad_norm)
    optimizer.step()
    detached = torch.stack([x.detach() for x in losses]) if isinstance(losses, (list, tuple)) else losses.detach()
    return detached.float(), diagnostics


def accumulation_step(
    model: nn.Module,
    batches: Sequence[object],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    params: Sequence[nn.Parameter],
    max_grad_norm: float | None = None,
    accelerator=None,
) -> list[torch.Tensor]:
    """One optimisation step over several micro-batches (gradient accumulation): each micro-batch's loss is weighted
    by its share of the rows, so that for a mean-reduced loss the summed gradient is the gradient of one batch of all
    the rows (class-weighted cross-entropy normalises by the weights instead, so there it is close, not equal).
    Returns each micro-batch's detached loss(es). Under data parallelism only the last backward synchronises."""
    rows = [batch_size_of(batch) for batch in batches]
    total = sum(rows)
    distributed = accelerator is not None and accelerator.num_processes > 1
    optimizer.zero_grad()
    out = []
    for i, (batch, n) in enumerate(zip(batches, rows)):
        sync = accelerator.no_sync(model) if distributed and i < len(batches) - 1 else nullcontext()
        with sync:
            with accelerator.autocast() if accelerator else nullcontext():
                losses = loss_fn(model, batch)
            (accelerator.backward if accelerator else torch.Tensor.backward)(total_loss(losses) * (n / total))
        detached = torch.stack([x.detach() for x in losses]) if isinstance(losses, (list, tuple)) else losses.detach()
        out.append(detached.float())
    if max_grad_norm:
        (accelerator.clip_grad_norm_ if accelerator else nn.utils.clip_grad_norm_)(params, max_grad_norm)
    optimizer.step()
    return out


def _fused_adamw_supported(params: Sequence[nn.Parameter]) -> bool:
    """Whether torch has the fused AdamW kernel for every parameter's device and dtype."""
    try:
        from torch.optim.optimizer import _get_fused_kernels_supported_devices

        devices = set(_get_fused_kernels_supported_devices())
    except ImportError:  # a torch without the helper: the devices fused AdamW has had since 2.4
        devices = {"cuda", "cpu"}
    dtypes = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    return bool(params) and all(
        p.device.type in devices and p.dtype in dtypes and not p.is_sparse and type(p) in (nn.Parameter, torch.Tensor)
        for p in params
    )


def make_optimizer(params: Sequence[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with `config.lr` and `config.weight_decay`, in the implementation `config.adamw` names: "fused" (one
    kernel pass over every parameter; on a CPU several times faster than the per-parameter loop for a
    transformer) where torch has it for the parameters' device and dtype, else "foreach"."""
    impl = config.adamw
    if impl == "fused" and not _fused_adamw_supported(params):
        impl = "foreach"
    flags = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}}[impl]
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, **flags)


def warmup_steps_of(config: TrainConfig, total_steps: int) -> int:
    """Warm-up steps: `config.warmup_steps`, else ceil(`warmup_ratio` * total), as the Hugging Face Trainer counts."""
    if config.warmup_steps is not None:
        return int(config.warmup_steps)
    return math.ceil(config.warmup_ratio * total_steps)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    """The learning-rate schedule of `config` over `total_steps` optimisation steps (transformers' own schedules:
    linear warm-up from 0, then constant, linear decay to 0, or half a cosine to 0); None for a constant rate without
    warm-up (the optimizer's rate is left alone)."""
    from transformers import (
        get_constant_schedule_with_warmup,
        get_cosine_schedule_with_warmup,
        get_linear_schedule_with_warmup,
    )

    warmup = warmup_steps_of(config, total_steps)
    if config.schedule == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup) if warmup else None
    make = get_linear_schedule_with_warmup if config.schedule == "linear" else get_cosine_schedule_with_warmup
    return make(optimizer, warmup, max(total_steps, 1))


def _windows(loader, size: int):
    """The loader's batches in groups of `size` (the last group may be shorter)."""
    window = []
    for batch in loader:
        window.append(batch)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def make_accelerator(config: TrainConfig):
    """The Hugging Face Accelerator `fit` runs under: device placement, distributed data parallel when launched with
    several processes (`accelerate launch` / `torch.distributed.run`), mixed precision. Global batches keep
    `config.batch_size` (split across processes), so a run's optimisation does not depend on the process count."""
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.state import AcceleratorState

    cpu = config.device == "cpu" or (config.device is None and not torch.cuda.is_available())
    kwargs = dict(
        cpu=cpu,
        mixed_precision=resolve_precision(config.precision, cpu),
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )
    try:
        return Accelerator(**kwargs)
    except ValueError:  # another precision was set up earlier in this process: keep the processes, change that
        AcceleratorState._reset_state(reset_partial_state=False)
        return Accelerator(**kwargs)


def weighted_cross_entropy(train: Dataset, config: TrainConfig, num_classes: int | None, device) -> LossFn:
    """The default objective: cross-entropy, class-weighted by the training labels when `config.weighted_loss`."""
    labels = _labels_of(train)
    k = num_classes or int(labels.max()) + 1
    weight = class_weights(labels, k).to(device) if config.weighted_loss else None
    criterion = nn.CrossEntropyLoss(weight=weight)

    def loss_fn(m, batch):
        return criterion(logits_of(m, batch), split_batch(batch)[2])

    return loss_fn


def fit(
    model: nn.Module,
    train: Dataset,
    dev: Dataset | None = None,
    config: TrainConfig | None = None,
    *,
    loss_fn: LossFn | None = None,
    collate_fn=None,
    optimizer: torch.optim.Optimizer | None = None,
    num_classes: int | None = None,
    backward: BackwardFn | None = None,
    dev_metrics: DevMetricsFn | None = None,
    task_names: Sequence[str] | None = None,
    desc: str = "epochs",
    batch_sampler=None,
    on_step: StepFn | None = None,
) -> History:
    """Train `model` in place; with `dev`, keep the weights of the best epoch by `config.monitor` and stop after
    `config.patience` epochs without improvement. Same seed, same data, same result on CPU.

    With a multitask `loss_fn` (one loss per task), `task_names` name the logged per-task training losses, and
    `dev_metrics` must return the monitored metric (e.g. the mean macro-F1 over tasks) among its values.
    `batch_sampler` (lists of indices, e.g. `methods.finetune.LengthGroupedBatchSampler`) replaces the seeded
    shuffle; `on_step(steps_done)` is called after every optimisation step (benchmarks time steps with it).
    Training losses stay on the device until the epoch ends: no host synchronisation per step.
    """
    config = config or TrainConfig()
    set_seed(config.seed)
    accum_steps = config.grad_accum_steps
    if backward is not None and accum_steps > 1:
        raise ValueError("gradient accumulation (grad_accum_steps > 1) cannot be combined with a `backward` hook")
    accelerator = make_accelerator(config)
    device = torch.device(config.device) if config.device else accelerator.device
    model.to(device)
    if config.freeze_embeddings or config.freeze_layers:
        from workbench.encoders import freeze_encoder

        freeze_encoder(model, config.freeze_embeddings, config.freeze_layers)
    loss_fn = loss_fn or weighted_cross_entropy(train, config, num_classes, device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = optimizer or make_optimizer(params, config)
    if batch_sampler is not None:
        loader = DataLoader(train, batch_sampler=batch_sampler, collate_fn=collate_fn)
    else:
        generator = torch.Generator().manual_seed(config.seed)
        loader = DataLoader(
            train, batch_size=config.batch_size, shuffle=True, generator=generator, collate_fn=collate_fn
        )
    trained = model
    if accelerator.num_processes > 1:  # DDP: every process sees its share of each global batch, gradients averaged
        trained, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    history = History()
    max_steps = config.max_steps or (1 if dry_run() else None)
    scheduler = None
    if config.schedule != "constant" or config.warmup_steps or config.warmup_ratio:  # needs the loader's length
        planned = config.epochs * math.ceil(len(loader) / accum_steps)
        scheduler = make_scheduler(optimizer, config, min(planned, max_steps) if max_steps else planned)
    done_steps = 0
    bar = tqdm(range(config.epochs), desc=desc, disable=not config.progress)
    for epoch in bar:
        trained.train()
        start, step_losses, step_rows, sums, steps = time.perf_counter(), [], [], {}, 0
        for window in _windows(loader, accum_steps):
            if max_steps is not None and done_steps >= max_steps:
                break
            done_steps += 1
            window = [_to(batch, device) for batch in window]
            if accum_steps == 1:
                losses, diagnostics = train_step(
                    trained, window[0], loss_fn, optimizer, params, config.max_grad_norm, backward, accelerator
                )
                micro = [losses]
            else:
                micro = accumulation_step(
                    trained, window, loss_fn, optimizer, params, config.max_grad_norm, accelerator
                )
                diagnostics = {}
            if scheduler is not None:
                scheduler.step()
            for batch, losses in zip(window, micro):
                if accelerator.num_processes > 1:  # log the global batch's loss, not this process's share
                    losses = accelerator.reduce(losses, reduction="mean")
                step_losses.append(losses)
                step_rows.append(batch_size_of(batch) * accelerator.num_processes)
            steps += 1
            for key, value in diagnostics.items():
                sums[key] = sums.get(key, 0.0) + value
            if on_step is not None:
                on_step(done_steps)
        totals, seen = 0.0, 0  # summed in float64 on the host, in step order: the same numbers as a per-step sum
        for value, n in zip(torch.stack(step_losses).double().cpu().numpy() if step_losses else [], step_rows):
            totals, seen = totals + np.atleast_1d(value) * n, seen + n
        record = {"epoch": epoch}
        if task_names:
            record.update({f"train_loss_{name}": total / max(seen, 1) for name, total in zip(task_names, totals)})
        else:
            record["train_loss"] = float(np.sum(totals)) / max(seen, 1)
        record["seconds"] = time.perf_counter() - start
        record.update({f"{key}_rate": total / max(steps, 1) for key, total in sums.items()})
        score = None
        if dev is not None:
            scores = (
                dev_metrics(model, dev) if dev_metrics else evaluate(model, dev, config.eval_batch_size, collate_fn)
            )
            record.update({f"dev_{k}": v for k, v in scores.items()})
            if config.monitor == "loss":
                record["dev_loss"] = mean_loss(
                    model, dev, lambda m, b: total_loss(loss_fn(m, b)), config.eval_batch_size, collate_fn
                )
            score = monitored_score(record, config.monitor)
        stop = history.add_epoch(model, record, score, config.patience)
        if accelerator.is_main_process:
            from workbench import tracking

            tracking.log_epoch({k: float(v) for k, v in record.items() if k != "epoch"}, step=epoch)
        bar.set_postfix({k: round(v, 4) for k, v in record.items() if k in ("train_loss", f"dev_{config.monitor}")})
        if stop or (max_steps is not None and done_steps >= max_steps):
            break
    history.restore_best(model)
    return history


def save_checkpoint(model: nn.Module, directory: str | Path, config: Mapping[str, object] | None = None) -> Path:
    """Save a model as safetensors, atomically (the folder appears whole or not at all): `save_pretrained` for
    transformers models, else weights + `config.json`."""
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        if hasattr(model, "save_pretrained"):
            model.save_pretrained(tmp)
        else:
            save_model(model, str(tmp / "model.safetensors"))
            (tmp / "config.json").write_text(json.dumps({"class": type(model).__name__, **(config or {})}, indent=2))
    return directory


def load_checkpoint(model: nn.Module, directory: str | Path) -> nn.Module:
    """Load safetensors weights saved by `save_checkpoint` into an already constructed `model` (no pickle)."""
    load_model(model, str(Path(directory) / "model.safetensors"))
    return model.eval()


def config_dict(config: TrainConfig) -> dict[str, object]:
    """The config as a plain dict, for results.json."""
    return asdict(config)
