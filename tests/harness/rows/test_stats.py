"""The one statistics module: intervals that respect positive quantities, CV, Holm."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.rows.stats import holm_adjust, summarize

NOISY = [0.65, 6.8, 10.0, 0.65, 0.64]  # mJ per sample, five windows beside other jobs


def student_t(values: list[float]) -> tuple[float, float]:
    x = np.array(values)
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return x.mean() - half, x.mean() + half


def test_the_interval_of_a_positive_quantity_never_goes_below_zero():
    assert student_t(NOISY)[0] < 0  # what the summary printed before: -1.43 .. 13.1
    s = summarize(NOISY)
    assert 0 < s.ci95_low < s.mean < s.ci95_high
    # modified Cox by hand: logs have mean m and variance v; exp(m + v/2 +- t sqrt(...))
    logs = np.log(NOISY)
    m, v = logs.mean(), logs.var(ddof=1)
    half = stats.t.ppf(0.975, 4) * math.sqrt(v / 5 + v * v / 8)
    assert (s.ci95_low, s.ci95_high) == pytest.approx(
        (math.exp(m + v / 2 - half), math.exp(m + v / 2 + half))
    )


def test_steady_repetitions_get_the_student_t_interval():
    steady = [1.00, 1.02, 0.98, 1.01, 0.99]
    s = summarize(steady)
    low, high = student_t(steady)
    width = high - low
    assert s.ci95_low == pytest.approx(low, abs=0.01 * width)
    assert s.ci95_high == pytest.approx(high, abs=0.01 * width)
    assert s.cv_pct == pytest.approx(np.std(steady, ddof=1) / np.mean(steady) * 100)


def test_the_interval_covers_the_mean_of_skewed_energies_95_times_in_100():
    rng = np.random.default_rng(7)
    true_mean = math.exp(0.5**2 / 2)  # log-normal, sigma 0.5: a noisy machine
    hits = sum(
        s.ci95_low <= true_mean <= s.ci95_high
        for s in (summarize(list(rng.lognormal(0.0, 0.5, 5))) for _ in range(2000))
    )
    assert 0.93 <= hits / 2000 <= 0.97  # the Student-t interval covers 0.92 here


def test_values_that_are_not_all_positive_keep_the_student_t_interval():
    values = [-0.1, 0.2, 0.4]  # energy above idle can be negative
    s = summarize(values)
    assert (s.ci95_low, s.ci95_high) == pytest.approx(student_t(values))
    assert math.isnan(summarize([-0.2, 0.1]).cv_pct)  # no CV around a mean <= 0


def test_too_few_values_have_no_interval_and_no_cv():
    s = summarize([1.0, math.nan, None])
    assert s.n == 1 and math.isnan(s.ci95_low) and math.isnan(s.cv_pct)


def test_holm_adjusts_each_p_value_for_the_tests_done_together():
    # sorted: 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> kept at 0.06 (monotone)
    assert holm_adjust([0.04, None, 0.01, 0.03]) == pytest.approx([0.06, None, 0.03, 0.06])
    assert holm_adjust([0.9, 0.8]) == [1.0, 1.0]
    assert holm_adjust([]) == []
