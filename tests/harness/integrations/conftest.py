"""Fixtures of the integration tests."""

from __future__ import annotations

import gc

import pytest


@pytest.fixture
def steady_gc():
    """No collection of the earlier tests' garbage in the middle of a measured training:
    in a long test session, a full collection between two phases takes tens of ms, which
    would land outside every epoch. Objects alive now are frozen (never scanned again)."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
