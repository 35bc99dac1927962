"""Shared test fixtures: a data tree in the real formats (built once per session) and the real data when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fixtures import make_fixture_tree


@pytest.fixture(scope="session")
def fixture_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small files in the layout and formats of the real datasets, for every loader and every smoke run."""
    root = make_fixture_tree(tmp_path_factory.mktemp("data"))
    try:
        from fixtures_multimodal import write_multimodal_fixtures
    except ImportError:
        pass
    else:
        write_multimodal_fixtures(root)
    return root


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """`$WORKBENCH_DATA` when it holds the real datasets (it does in CI); otherwise the test is skipped."""
    root = os.environ.get("WORKBENCH_DATA")
    if not root or not (Path(root) / "imdb" / "imdb_50k_aclImdb.csv.gz").is_file():
        pytest.skip("real data not present: set WORKBENCH_DATA to a folder laid out like shared/data")
    return Path(root)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Test models are tiny: one intra-op thread is faster than two, which mostly wait for each other."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Tests never read or write the user's embedding cache."""
    previous = os.environ.get("WORKBENCH_CACHE")
    os.environ["WORKBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if previous is None:
        os.environ.pop("WORKBENCH_CACHE", None)
    else:
        os.environ["WORKBENCH_CACHE"] = previous
