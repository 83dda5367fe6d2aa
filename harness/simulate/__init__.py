"""A model run on a simulated accelerator (SCALE-Sim): cycles, accesses, and energy from
cited per-access costs. See README.md.

- `accelerators`: accelerator profiles (TOML, every value with its source).
- `layers`: Conv2d / Linear calls as SCALE-Sim layer shapes; other layers analytic.
- `formulas`: the ISPASS 2020 analytic runtime, and SCALE-Sim v3's.
- `_runner` / `_worker`: the simulator in a worker process, with a time and memory limit.
- `cache`: simulated layers by shape and accelerator.
- `model`: `simulate_model`, the one call for a model.
"""

from __future__ import annotations

from harness.lazy import lazy_exports

# Loaded on first use: importing `harness.simulate` (and the CLI) does not import torch.
_WHERE = {
    "Accelerator": "accelerators",
    "builtin_accelerators": "accelerators",
    "load_accelerator": "accelerators",
    "LayerCache": "cache",
    "Limits": "_runner",
    "ModelSimulation": "model",
    "SIMULATED_LABEL": "report",
    "simulate_model": "model",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_exports(__name__, _WHERE)
