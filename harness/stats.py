"""Summary statistics for repetitions: mean, sample standard deviation, Student-t 95% CI."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """Mean, std (n-1) and a two-sided 95% confidence interval of the mean."""

    n: int
    mean: float
    std: float
    ci95_low: float
    ci95_high: float


def summarize(values: list[float]) -> Summary:
    """Summary of the finite values; NaN fields where there are too few of them."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    n = len(finite)
    if n == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan)
    mean = statistics.fmean(finite)
    if n == 1:
        return Summary(1, mean, float("nan"), float("nan"), float("nan"))
    from scipy.stats import t

    std = statistics.stdev(finite)
    half = t.ppf(0.975, n - 1) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)
