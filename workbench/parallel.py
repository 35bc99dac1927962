"""Many small experiments of one study at once, in worker processes (joblib's loky pool), one torch thread each.

Small models (MAGE's classifiers, probes) train fastest on one thread, so on one thread a study leaves every other
core idle; `parallel_map` runs its independent experiments side by side instead. Each call sees the same arguments
and seeds as in a serial loop and the results come back in submission order, so a run gives the same numbers
whatever the number of workers (each experiment seeds itself: see `runtime.set_seed`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator

from workbench.runtime import torch_threads

# loky restarts a worker whose resident memory grew by more than 300 MB since its last check (its leak heuristic; a
# trained model's freed buffers often stay with the allocator) and warns; the pending calls go to the new worker,
# so nothing is lost and the results are the same
warnings.filterwarnings("ignore", message="A worker stopped while some jobs were given to the executor")

# what a worker must see as the parent does: dry runs shorten training, the cache and data folders are read
WORKER_ENVIRONMENT = (
    "WORKBENCH_DRY_RUN",
    "WORKBENCH_DATA",
    "WORKBENCH_CACHE",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
)


def resolve_workers(workers: int | None) -> int:
    """`workers`, or with None one per torch thread this process may use (a notebook run under a thread budget,
    e.g. `workbench run-all --workers 2` on 2 cores, gets 1: no oversubscription)."""
    if workers is not None:
        if int(workers) < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        return int(workers)
    import torch

    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


def _call(function: Callable, arguments: tuple, environment: dict[str, str | None], threads: int | None):
    for key, value in environment.items():  # a reused worker may have started under another environment
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    with torch_threads(threads):
        return function(*arguments)


def parallel_map(
    function: Callable, calls: Iterable[tuple], workers: int = 1, threads: int | None = 1
) -> Iterator[object]:
    """`function(*arguments)` for each tuple of `calls`, yielded in order as they finish in order. With `workers`
    1 they run here, one after the other; otherwise in `workers` processes with `threads` torch threads each
    (`function` and its arguments must pickle; large NumPy arrays travel as memory maps, not copies)."""
    calls = list(calls)
    if workers <= 1 or len(calls) <= 1:
        for arguments in calls:
            yield function(*arguments)
        return
    from joblib import Parallel, delayed

    environment = {key: os.environ.get(key) for key in WORKER_ENVIRONMENT}
    # copy-on-write maps: a worker may write to its arrays without touching the parent's
    pool = Parallel(n_jobs=min(workers, len(calls)), backend="loky", return_as="generator", mmap_mode="c")
    yield from pool(delayed(_call)(function, arguments, environment, threads) for arguments in calls)


def how_run(workers: int, calls: int | None = None) -> str:
    """How `parallel_map` runs `calls` calls (None: unknown, at least 2) on `workers`, for a run's notes: "side by
    side in N worker processes" or "one after the other"."""
    processes = workers if calls is None else min(workers, calls)
    return f"side by side in {processes} worker processes" if processes > 1 else "one after the other"


def model_parts(model) -> tuple:
    """A Hugging Face model as (class, config, weights, training flag): what crosses a process boundary in its place.
    A model that has returned its attention maps or hidden states holds the forward hooks transformers installs to
    record them, which do not pickle; `rebuild_model` builds it again, and it installs fresh hooks when it needs them."""
    return type(model), model.config, model.state_dict(), model.training


def rebuild_model(parts: tuple):
    """The model `model_parts` took apart: same class, config and weights, in the same train / eval mode."""
    cls, config, weights, training = parts
    model = cls(config)
    model.load_state_dict(weights)
    return model.train(training)
