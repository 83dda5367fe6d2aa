"""Simulated layers cached on disk, keyed by the layer's shape, the accelerator's array
(what SCALE-Sim is given) and SCALE-Sim's version. One JSON file per key, written
whole (temporary file, then renamed), so an interrupted run leaves no half entry.

The folder is `<prepared-model cache>/simulate` ($ENERGY_HARNESS_CACHE, else
results/cache) unless given.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from pathlib import Path
from typing import Any

from harness.prepare.cache_dir import default_cache_dir


def scalesim_version() -> str:
    """The installed SCALE-Sim's version ("" when it is not installed)."""
    try:
        return importlib.metadata.version("scalesim")
    except importlib.metadata.PackageNotFoundError:
        return ""


class LayerCache:
    """Results of simulated layers by (layer shape, simulator config)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir() / "simulate"
        self.version = scalesim_version()

    def key(self, config: dict[str, Any], layer: list[int]) -> str:
        text = json.dumps({"config": config, "layer": layer, "scalesim": self.version})
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _path(self, config: dict[str, Any], layer: list[int]) -> Path:
        return self.folder / f"{self.key(config, layer)}.json"

    def get(self, config: dict[str, Any], layer: list[int]) -> dict[str, float] | None:
        """The cached result, or None (also for an unreadable entry, simulated again)."""
        try:
            return json.loads(self._path(config, layer).read_text(encoding="utf-8"))["result"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, config: dict[str, Any], layer: list[int], result: dict[str, float]) -> None:
        """Store a result; a cache that cannot be written is skipped (results still used)."""
        path = self._path(config, layer)
        record = {"config": config, "layer": layer, "scalesim": self.version, "result": result}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(record), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass
