"""Whether a case's figure is steady enough to trust, and what to do when it is not.

A measured case is unstable when

- its energy per sample varied by more than `stable_max_cv_pct` (suite setting, 10 % by
  default) over its repetitions (coefficient of variation, std / mean), or
- other processes used more than `stable_max_other_cpu_pct` (25 % by default) of the
  CPUs during any of its windows (`other_cpu_pct`, see `harness.measure.load`), or
- it has fewer than two repetitions, so its spread is unknown.

`unstable_reason` says which, with the numbers and what to do, in the words the run
summary, the report and `compare` print (from cases.csv's `unstable_reason`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from harness.rows.csvfile import parse_bool
from harness.spec.settings import SuiteSettings

RERUN = "rerun it with more repetitions (suite key `repetitions`)"


@dataclass(frozen=True)
class StabilityLimits:
    """Above these a case is unstable: spread over repetitions, and the machine's load."""

    max_cv_pct: float
    max_other_cpu_pct: float

    @classmethod
    def of(cls, settings: SuiteSettings) -> StabilityLimits:
        """The limits a suite sets (`stable_max_cv_pct`, `stable_max_other_cpu_pct`)."""
        return cls(settings.stable_max_cv_pct, settings.stable_max_other_cpu_pct)


def unstable_reason(
    n: int, cv_pct: float, other_cpu_pct_max: float | None, limits: StabilityLimits
) -> str:
    """Why a case's energy per sample is not a stable figure, and what to do; "" if it is."""
    if n < 2:
        return f"{n} usable repetition, so its spread is unknown: set `repetitions` to 5 or more"
    reasons = []
    busy = other_cpu_pct_max is not None and other_cpu_pct_max > limits.max_other_cpu_pct
    if busy:
        reasons.append(
            f"other processes used up to {other_cpu_pct_max:.0f} % of the CPUs during its "
            f"windows (above {limits.max_other_cpu_pct:g} %): stop them or use a quiet machine"
        )
    if math.isfinite(cv_pct) and cv_pct > limits.max_cv_pct:
        reasons.append(
            f"its energy per sample varied by {cv_pct:.0f} % (coefficient of variation over "
            f"{n} repetitions, above {limits.max_cv_pct:g} %)"
        )
    return "; ".join(reasons + [RERUN]) if reasons else ""


def unstable_reason_of(case_row: Mapping[str, str]) -> str:
    """Why a cases.csv row is unstable; "" when stable (or written before `stable` existed)."""
    if parse_bool(case_row.get("stable"), True):
        return ""
    return case_row.get("unstable_reason") or "marked unstable in cases.csv"


def stability_warning(case_row: Mapping[str, str]) -> str | None:
    """`CASE is unstable: why; what to do` for a cases.csv row, else None."""
    reason = unstable_reason_of(case_row)
    return f"{case_row.get('case_id', '?')} is unstable: {reason}" if reason else None
