"""Fixtures shared by the harness tests that train models."""

from __future__ import annotations

import pytest
import torch

from benchmarks.data import load_dataset
from harness.cache import ModelCache


@pytest.fixture(scope="module")
def one_thread():
    """Small models train as fast on one thread, and a loaded machine cannot stall them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One model cache for the session: the dense LeNet-5 is trained once for all files."""
    return ModelCache(tmp_path_factory.getbasetemp() / "shared-model-cache")
