"""The simulated columns of a cases.csv row: the simulation's figures and its distance
from the measurement and from the estimate, both by the estimate error's one definition
(`harness.estimate.error`), so the three methods compare the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.estimate.error import estimate_error_pct
from harness.estimate.names import DENSE_HW
from harness.rows.columns import SIMULATED_COLUMNS, estimate_prefix


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def simulated_columns(simulated: Mapping[str, Any], row: Mapping[str, Any]) -> dict[str, Any]:
    """The SIMULATED_COLUMNS of a case from `simulated` (`ModelSimulation.case_columns()`,
    or just a `simulated_note` saying why there is none) and the case's `row` (its
    measured mean and dense-hw estimate per sample)."""
    out: dict[str, Any] = {c: simulated.get(c) for c in SIMULATED_COLUMNS}
    energy = _number(out["simulated_energy_j_per_sample"])
    measured = _number(row.get("energy_j_per_sample_mean"))
    estimated = _number(row.get(estimate_prefix(DENSE_HW) + "energy_j_per_sample"))
    if energy is not None:
        if measured is not None:
            out["simulated_error_pct"] = estimate_error_pct(energy, measured)
        if estimated is not None:
            out["simulated_vs_estimate_pct"] = estimate_error_pct(energy, estimated)
    out["simulated_note"] = out["simulated_note"] or ""
    return out
