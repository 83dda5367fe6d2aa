"""Where prepared models are cached: `$ENERGY_HARNESS_CACHE`, else `results/cache`.

Torch-free, so the CLI's help can say which folder is in effect.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CACHE_DIR = Path("results") / "cache"
CACHE_DIR_ENV = "ENERGY_HARNESS_CACHE"


def default_cache_dir() -> Path:
    """$ENERGY_HARNESS_CACHE if set, else results/cache."""
    return Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)
