"""Benchmarks: `workbench bench NAME` runs `workbench.bench.NAME.main`."""


def set_up(threads: int | None) -> None:
    """A benchmark's process: torch's intra-op threads (None: torch's default) and transformers' logging at errors
    only (load reports and warnings would bury the figures)."""
    import torch
    import transformers

    if threads:
        torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()
