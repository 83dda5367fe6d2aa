"""Analytic energy estimate, E = P_static x duration + sum of E_i x C_i, and calibration.

- `counting`: FLOPs per operator and dtype, memory and transfer bytes of one step.
- `accounting`: effective weights; `dense-hw`, `sparse-ideal`, `nonzero-params`.
- `profiles`: per-operation energies of a target (TOML, every value with its source).
- `energy`: counts x profile -> compute, storage, communication and static joules.
- `model`: `estimate_model`, the one call for a prepared model.
- `calibrate`, `microbench`: fit a machine's profile to measured energy.
"""

from __future__ import annotations

from harness.estimate.accounting import (
    ACCOUNTINGS,
    DENSE_HW,
    NONZERO_PARAMS,
    SPARSE_IDEAL,
    effective_weights,
    nonzero_params,
)
from harness.estimate.counting import Counts, StepCounts, count_step
from harness.estimate.energy import EnergyEstimate, Term, estimate_energy
from harness.estimate.model import ESTIMATE_LABEL, ModelEstimate, estimate_model
from harness.estimate.profiles import Profile, builtin_profiles, load_profile, write_profile

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
