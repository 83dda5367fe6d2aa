"""The statistics of repetitions, in one place: summary, confidence intervals, tests.

Used by the case rows (cases.csv), the report and `compare` alike. Intervals are 95 %
two-sided. A summary of fewer than two finite values has no spread and no interval
(NaN fields), and says so through `n`.

Energy, time and power are positive: their interval never goes below zero. It is the
modified Cox interval for the mean of a log-normal quantity (Olsson 2005, "Confidence
intervals for the mean of a log-normal distribution", J. Statistics Education 13(1)):
with y = log(x), mean m and variance s2 of y over n values,

    exp(m + s2/2 +- t(0.975, n-1) x sqrt(s2/n + s2^2 / (2 (n-1))))

On steady repetitions (a few % spread) it is the Student-t interval of the mean to
within a fraction of its width; on noisy ones it widens upwards instead of reaching
below zero. Values that are not all positive (energy above idle can be negative) get
the Student-t interval of the mean.
"""

from __future__ import annotations

import functools
import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.05
CI_METHOD = "modified Cox on log values (positive quantities); Student t otherwise"
RATIO_CI_METHOD = "delta method on log(B/A), Welch-Satterthwaite df"
MULTIPLE_TESTS = "Holm"


@dataclass(frozen=True)
class Summary:
    """Mean, std (n-1) and a two-sided 95% confidence interval of the mean."""

    n: int
    mean: float
    std: float
    ci95_low: float
    ci95_high: float

    @property
    def cv_pct(self) -> float:
        """Coefficient of variation, std / mean x 100 (NaN with n < 2 or mean <= 0)."""
        if self.n < 2 or not self.mean > 0:
            return math.nan
        return self.std / self.mean * 100


def finite_values(values: Sequence[float | None]) -> list[float]:
    """The finite values, in order (None and NaN left out)."""
    return [v for v in values if v is not None and math.isfinite(v)]


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; NaN for n < 2)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = statistics.fmean(values)
    if n < 2:
        return mean, math.nan
    return mean, statistics.stdev(values)


def _t975(df: float) -> float:
    from scipy.stats import t

    return float(t.ppf(1 - ALPHA / 2, df))


def positive_mean_ci95(values: list[float]) -> tuple[float, float]:
    """95% CI of the mean of positive values: modified Cox on their logs (never <= 0)."""
    n = len(values)
    logs = [math.log(v) for v in values]
    m, s = mean_std(logs)
    s2 = s * s
    half = _t975(n - 1) * math.sqrt(s2 / n + s2 * s2 / (2 * (n - 1)))
    return math.exp(m + s2 / 2 - half), math.exp(m + s2 / 2 + half)


def summarize(values: Sequence[float | None]) -> Summary:
    """Summary of the finite values; NaN fields where there are too few of them."""
    finite = finite_values(values)
    n = len(finite)
    mean, std = mean_std(finite)
    if n < 2:
        return Summary(n, mean, math.nan, math.nan, math.nan)
    if all(v > 0 for v in finite):
        low, high = positive_mean_ci95(finite)
    else:
        half = _t975(n - 1) * std / math.sqrt(n)
        low, high = mean - half, mean + half
    return Summary(n, mean, std, low, high)


def holm_adjust(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of p-values tested together (None stays None).

    The k-th smallest of m p-values becomes max over j <= k of min(1, (m - j + 1) p_(j)),
    which keeps the chance of any false "significant" at or below alpha over all m.
    """
    order = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(order)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def ratio_ci95_log_delta(a: list[float], b: list[float]) -> tuple[float, float] | None:
    """95% CI of mean(b)/mean(a) by the delta method on the log ratio (None if n < 2).

    var(log R) ~= s_a^2/(n_a m_a^2) + s_b^2/(n_b m_b^2), with a Student t quantile at
    Welch-Satterthwaite degrees of freedom, then exponentiated (so the interval is never
    negative and is symmetric in log space).
    """
    from scipy import stats

    n_a, n_b = len(a), len(b)
    if n_a < 2 or n_b < 2:
        return None
    m_a, s_a = mean_std(a)
    m_b, s_b = mean_std(b)
    if m_a <= 0 or m_b <= 0:
        return None
    v_a = s_a**2 / (n_a * m_a**2)  # relative variance of each mean
    v_b = s_b**2 / (n_b * m_b**2)
    ratio = m_b / m_a
    se = math.sqrt(v_a + v_b)
    if se == 0:
        return ratio, ratio
    df = (v_a + v_b) ** 2 / (v_a**2 / (n_a - 1) + v_b**2 / (n_b - 1))
    half = float(stats.t.ppf(0.975, df)) * se
    return ratio * math.exp(-half), ratio * math.exp(half)


def welch_p_value(a: list[float], b: list[float]) -> float | None:
    """Two-sided Welch's t-test p-value (None with n < 2 on a side or no variance at all)."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return None
    if mean_std(a)[1] == 0 and mean_std(b)[1] == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return p if math.isfinite(p) else None


PAIRED_RATIO_CI_METHOD = (
    "paired: geometric mean of the per-round ratios, Student t on their logs (n - 1 df)"
)


def _log_ratios(ratios: Sequence[float]) -> list[float]:
    return [math.log(r) for r in ratios if r is not None and math.isfinite(r) and r > 0]


def paired_ratio_ci95(ratios: Sequence[float]) -> tuple[float, float, float] | None:
    """Geometric mean of paired ratios b_i / a_i and its 95 % interval; None with n < 2.

    Each ratio comes from one round, where both were measured side by side, so whatever
    the machine did in that round falls on both and cancels in the ratio (a paired
    design: Kalibera & Jones, "Rigorous benchmarking in reasonable time", ISMM 2013).
    With d_i = log(r_i), mean m, std s over n rounds:

        exp(m), exp(m -+ t(0.975, n - 1) x s / sqrt(n))

    the Student t interval of the mean log ratio, exponentiated: never below zero,
    symmetric in log space. Non-positive ratios are left out.
    """
    logs = _log_ratios(ratios)
    n = len(logs)
    if n < 2:
        return None
    m, s = mean_std(logs)
    half = _t975(n - 1) * s / math.sqrt(n)
    return math.exp(m), math.exp(m - half), math.exp(m + half)


def paired_ratio_p(ratios: Sequence[float]) -> float | None:
    """Two-sided p that the paired ratios' geometric mean is 1: the one-sample Student t
    test of the mean log ratio (m / (s / sqrt(n)), n - 1 df), the test whose 95 %
    interval `paired_ratio_ci95` is. None with n < 2 or no spread at all."""
    from scipy.stats import t

    logs = _log_ratios(ratios)
    n = len(logs)
    if n < 2:
        return None
    m, s = mean_std(logs)
    if s == 0:
        return None
    return float(2 * t.sf(abs(m) / (s / math.sqrt(n)), n - 1))


def wilson_ci95(successes: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (Wilson 1927, JASA 22(158)); NaN for n = 0.

    Unlike the normal approximation it stays within [0, 1] and is fair near 0 and 1,
    where a test accuracy usually lies.
    """
    if n <= 0:
        return math.nan, math.nan
    from scipy.stats import norm

    z = float(norm.ppf(1 - ALPHA / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """McNemar's exact test: two-sided p that two classifiers on the same test samples are
    equally accurate (McNemar 1947, Psychometrika 12(2)).

    `only_a`: samples only the first got right; `only_b`: only the second. Under the
    null each discordant sample is a fair coin, so p = min(1, 2 x P(X <= min) ) for
    X ~ Binomial(only_a + only_b, 1/2). With no discordant sample p = 1.
    """
    n = only_a + only_b
    if n == 0:
        return 1.0
    from scipy.stats import binom

    return min(1.0, 2 * float(binom.cdf(min(only_a, only_b), n, 0.5)))


_t975_cached = functools.cache(_t975)  # a training predicts once per epoch: quantiles kept


def remaining_sum_ci95(values: list[float], remaining: int) -> tuple[float, float, float]:
    """The sum of `remaining` more values like `values` (e.g. the energy of the epochs
    still to run, from those done): point estimate and 95 % prediction interval
    (NaN bounds with fewer than two values).

    Each future value varies with the values' variance s2 and shares the error of their
    mean: var = remaining x s2 + remaining^2 x s2 / n (a Student-t prediction interval for
    a sum; the lower bound is never below zero). The point estimate is carbontracker's
    (Anthony et al. 2020): remaining x the mean so far.
    """
    finite = finite_values(values)
    n = len(finite)
    mean, std = mean_std(finite)
    point = remaining * mean
    if n < 2 or remaining <= 0:
        bound = point if remaining <= 0 else math.nan
        return point, bound, bound
    half = _t975_cached(n - 1) * std * math.sqrt(remaining + remaining * remaining / n)
    return point, max(0.0, point - half), point + half
