"""Seeds, device choice and a description of the environment: what every run needs to be repeatable.

torch is imported inside the functions that use it: the command line imports this module for its file helpers and
must start in a second, not in the seconds torch takes."""

from __future__ import annotations

import os
import platform
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

PathLike = str | os.PathLike


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels (same seed, same numbers on CPU)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run a block with `count` intra-op torch threads (None: leave as is), restoring the previous count after.

    Small models (heads, probes, student transformers) train far faster on one thread than on two when the
    CPU is shared: the threads spin waiting for each other. Big matrix work (encoding) wants them all.
    """
    import torch

    previous = torch.get_num_threads()
    if count:
        torch.set_num_threads(int(count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (Intel AMX tiles). There bf16 autocast fine-tuned
    MiniLM about 1.3x faster than fp32 (BESSTIE's Linear rows, batch 16, on a 2-core Xeon); a CPU that emulates
    bf16 can run it slower than fp32."""
    import torch

    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # torch's own check (private; absent: no)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:  # pragma: no cover - a build without the check's kernels
        return False


def resolve_precision(precision: str | None, cpu: bool = True) -> str | None:
    """A `TrainConfig.precision` made concrete: 'auto' is 'bf16' autocast on a CPU with native bf16 matrix units
    (`native_bf16`), else 'no' (fp32); any other value is returned as it is."""
    if precision != "auto":
        return precision
    return "bf16" if cpu and native_bf16() else "no"


# the choices of a study's CPU precision parameter (fp16 autocast is for GPUs)
CPU_PRECISIONS = ("auto", "no", "bf16")


def precision_note(precision: str, param: str) -> str:
    """The arithmetic a run's fine-tuning used on this machine, and why, for its notes: e.g. "bf16 autocast
    (ft_precision='auto': this CPU multiplies bf16 matrices in hardware (AMX))". `param` names the parameter."""
    import torch

    cpu = not torch.cuda.is_available()
    resolved = resolve_precision(precision, cpu)
    text = "bf16 autocast" if resolved == "bf16" else "fp32"
    if precision != "auto":
        return f"{text} ({param}={precision!r})"
    if resolved == "bf16":
        why = "this CPU multiplies bf16 matrices in hardware (AMX)"
    else:
        why = "this CPU has no native bf16 matrix units" if cpu else "bf16 is picked on such CPUs only"
    return f"{text} ({param}='auto': {why})"


def autocast(precision: str | None):
    """A context that runs a CPU forward pass in the resolved `precision`: bf16 autocast for 'bf16' (or 'auto' on an
    AMX CPU), nothing otherwise. For inference passes outside `training.fit` (which autocasts through Accelerate)."""
    from contextlib import nullcontext

    import torch

    if resolve_precision(precision, cpu=True) == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


def environment() -> dict[str, object]:
    """Versions and hardware, stored in every results.json."""
    import sklearn
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "device": str(default_device()),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        # how the run was executed: set by the runner's executors and by `accelerate launch` / torch.distributed.run
        "executor": os.environ.get("WORKBENCH_EXECUTOR", "serial"),
        "processes": int(os.environ.get("WORLD_SIZE", "1")),
        "precision": os.environ.get("ACCELERATE_MIXED_PRECISION", "no"),
    }


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write `text` to `path` through a unique temporary file in the same folder and a rename, so that a reader
    (another run, an index page, `--resume`) never sees a half-written file, and two writers never mix."""
    import tempfile

    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".partial")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def project_root() -> Path:
    """The repository the package was installed from (editable install: it holds `notebooks/`), else the current
    folder: where interactive runs keep their reports."""
    source = Path(__file__).resolve().parents[1]
    return source if (source / "notebooks").is_dir() and (source / "workbench").is_dir() else Path.cwd()


@contextmanager
def atomic_directory(target: PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `target`; when the block succeeds it replaces `target` whole, so a
    reader never sees a half-written model folder and a failure leaves the previous one in place."""
    import shutil
    import tempfile

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial"))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.{os.getpid()}.old")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
