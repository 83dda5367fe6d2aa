"""The `small_array` fixture: a 16 x 16 output-stationary accelerator file in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
from sim_arrays import small_accelerator


@pytest.fixture
def small_array(tmp_path: Path) -> Path:
    return small_accelerator(tmp_path)
