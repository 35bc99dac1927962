"""Where parallel runs execute: a local process pool, a Ray cluster or a Dask cluster (Ray and Dask are optional
extras: `pip install -e ".[ray]"` / `".[dask]"`). Each run is one `runner.run_notebook` call in its own worker, with
a thread budget of its own (cores / workers) and the data, cache and Hugging Face folders passed through."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

Call = tuple  # (notebook, profile, parameters, reports, resume, kernel)
PASSED_THROUGH = (
    "WORKBENCH_DATA",
    "WORKBENCH_CACHE",
    "WORKBENCH_DRY_RUN",
    "HF_HOME",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "WORKBENCH_TRACK",
    "WORKBENCH_TRACK_URI",
)


def thread_budget(workers: int) -> int:
    """Intra-op threads per run so that the runs together use the machine's cores once."""
    return max(1, (os.cpu_count() or 1) // max(workers, 1))


def run_environment(workers: int) -> dict[str, str]:
    """What every worker's kernel needs: the data / cache / HF settings (folders made absolute) and its thread
    budget."""
    env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
    for key in ("WORKBENCH_DATA", "WORKBENCH_CACHE", "HF_HOME"):
        if key in env:
            env[key] = os.path.abspath(env[key])
    threads = str(thread_budget(workers))
    return {**env, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def _run(call: Call, env: dict[str, str], executor: str = "process"):
    os.environ.update({**env, "WORKBENCH_EXECUTOR": executor})  # the notebook's kernel inherits it
    from workbench.runner import run_notebook

    notebook, profile, parameters, reports, resume, kernel = call
    return run_notebook(notebook, profile, parameters, reports, resume, kernel, progress=False)


def _ordered(futures: dict, finished: Callable, wait: Callable) -> list:
    outcomes = [None] * len(futures)
    for future, index in wait(futures):
        outcomes[index] = finished(future)
    return outcomes


def process_pool(calls: Sequence[Call], workers: int, address: str | None, finished: Callable) -> list:
    """Runs on a local pool of `workers` processes (spawned: no state shared with this one)."""
    import multiprocessing

    if address:
        raise ValueError("--address needs --executor ray or dask")
    env = run_environment(workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_run, call, env, "process"): i for i, call in enumerate(calls)}
        return _ordered(futures, lambda f: finished(f.result()), lambda fs: ((f, fs[f]) for f in as_completed(fs)))


def ray_cluster(calls: Sequence[Call], workers: int, address: str | None, finished: Callable) -> list:
    """Runs as Ray tasks: on an existing cluster (`address`) or a local one of `workers` CPUs; one GPU per run when
    the cluster has GPUs; paths, data, cache and HF folders travel in the runtime environment."""
    try:
        import ray
    except ImportError:
        raise ValueError('--executor ray needs Ray: pip install -e ".[ray]"') from None
    env = run_environment(workers)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=address,
            num_cpus=None if address else workers,
            runtime_env={"env_vars": env},
            include_dashboard=False,
            log_to_driver=False,
        )
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(num_cpus=thread_budget(workers) if not address else 1, num_gpus=gpus)(_run)
        refs = {task.remote(call, env, "ray"): i for i, call in enumerate(calls)}

        def wait(pending: dict):
            left = list(pending)
            while left:
                done, left = ray.wait(left, num_returns=1)
                yield done[0], pending[done[0]]

        return _ordered(refs, lambda ref: finished(ray.get(ref)), wait)
    finally:
        if started_here:
            ray.shutdown()


def dask_cluster(calls: Sequence[Call], workers: int, address: str | None, finished: Callable) -> list:
    """Runs as Dask futures: on an existing scheduler (`address`) or a local cluster of `workers` processes."""
    try:
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_completed
    except ImportError:
        raise ValueError('--executor dask needs Dask: pip install -e ".[dask]"') from None
    env = run_environment(workers)
    cluster = (
        None
        if address
        else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    )
    with Client(address or cluster) as client:
        futures = {client.submit(_run, call, env, "dask", pure=False): i for i, call in enumerate(calls)}
        try:
            return _ordered(
                futures, lambda f: finished(f.result()), lambda fs: ((f, fs[f]) for f in dask_completed(list(fs)))
            )
        finally:
            if cluster is not None:
                cluster.close()
