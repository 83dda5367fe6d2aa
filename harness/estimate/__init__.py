"""Analytic energy estimate, E = P_static x duration + sum of E_i x C_i, and calibration.

- `counting`: FLOPs per operator and dtype, memory and transfer bytes of one step.
- `accounting`: effective weights; `dense-hw`, `sparse-ideal`, `nonzero-params`.
- `profiles`: per-operation energies of a target (TOML, every value with its source).
- `energy`: counts x profile -> compute, storage, communication and static joules.
- `model`: `estimate_model`, the one call for a prepared model.
- `calibrate`, `microbench`: fit a machine's profile to measured energy.
"""

from __future__ import annotations

from harness.lazy import lazy_exports

# Public names -> the module that defines them. Loaded on first use, so importing
# `harness.estimate` (and the CLI) does not import torch.
_WHERE = {
    "ACCOUNTINGS": "names",
    "DENSE_HW": "names",
    "NONZERO_PARAMS": "names",
    "SPARSE_IDEAL": "names",
    "ESTIMATE_LABEL": "names",
    "effective_weights": "accounting",
    "nonzero_params": "accounting",
    "Counts": "counting",
    "StepCounts": "counting",
    "count_step": "counting",
    "EnergyEstimate": "energy",
    "Term": "energy",
    "estimate_energy": "energy",
    "ModelEstimate": "model",
    "estimate_model": "model",
    "Profile": "profiles",
    "builtin_profiles": "profiles",
    "load_profile": "profiles",
    "write_profile": "profiles",
}
__getattr__ = lazy_exports(__name__, _WHERE)


__all__ = [
    "ACCOUNTINGS",
    "DENSE_HW",
    "ESTIMATE_LABEL",
    "NONZERO_PARAMS",
    "SPARSE_IDEAL",
    "Counts",
    "EnergyEstimate",
    "ModelEstimate",
    "Profile",
    "StepCounts",
    "Term",
    "builtin_profiles",
    "count_step",
    "effective_weights",
    "estimate_energy",
    "estimate_model",
    "load_profile",
    "nonzero_params",
    "write_profile",
]
