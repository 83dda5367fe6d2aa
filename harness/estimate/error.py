"""The one definition of an estimate's error against a measurement (no torch).

cases.csv, the run summary, the report (table, footnote and scatter plot) and
`calibrate --from` all use it.
"""

from __future__ import annotations

import math

ESTIMATE_ERROR_DEFINITION = (
    "estimate error = (estimated - measured) / measured x 100, totals against totals: the "
    "dense-hw estimate per sample (static part included) against the measured energy per "
    "sample (mean over repetitions, idle included); negative = the estimate is below the "
    "measurement. With an idle baseline the estimate's static part is the measured idle "
    "power, so both totals hold the same idle energy."
)


def estimate_error_pct(estimated_j: float, measured_j: float) -> float | None:
    """(estimated - measured) / measured x 100, totals against totals (see
    ESTIMATE_ERROR_DEFINITION).

    None where either figure is missing or not finite, or the measured one is zero.
    """
    if estimated_j is None or measured_j is None:
        return None
    if not (math.isfinite(estimated_j) and math.isfinite(measured_j)) or measured_j == 0:
        return None
    return (estimated_j - measured_j) / measured_j * 100
