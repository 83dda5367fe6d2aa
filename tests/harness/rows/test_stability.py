"""When a case's energy per sample is stable, and the words used when it is not."""

from __future__ import annotations

import math

import pytest

from harness.errors import EnergyHarnessError
from harness.rows.stability import StabilityLimits, stability_warning, unstable_reason
from harness.spec.settings import check_settings

LIMITS = StabilityLimits(max_cv_pct=10.0, max_other_cpu_pct=25.0)


def test_steady_repetitions_on_a_quiet_machine_are_stable():
    assert unstable_reason(5, 2.0, 3.0, LIMITS) == ""
    assert unstable_reason(5, 2.0, None, LIMITS) == ""  # load unknown: judged on spread


def test_a_busy_machine_says_how_busy_and_what_to_do():
    reason = unstable_reason(5, 2.0, 48.0, LIMITS)
    assert "other processes used up to 48 % of the CPUs" in reason
    assert "above 25 %" in reason and "quiet machine" in reason
    assert "more repetitions" in reason


def test_a_wide_spread_is_unstable_even_on_a_quiet_machine():
    reason = unstable_reason(5, 87.4, 0.0, LIMITS)
    assert "varied by 87 %" in reason and "over 5 repetitions" in reason
    assert "`repetitions`" in reason


def test_one_repetition_has_no_known_spread():
    assert "spread is unknown" in unstable_reason(1, math.nan, 0.0, LIMITS)


def test_the_warning_comes_from_the_cases_csv_row():
    row = {"case_id": "lenet5/dense/training/bs64/cpu", "stable": "false", "unstable_reason": "x"}
    assert stability_warning(row) == "lenet5/dense/training/bs64/cpu is unstable: x"
    assert stability_warning({**row, "stable": "true"}) is None
    assert stability_warning({"case_id": "old run", "status": "ok"}) is None  # no column


def test_the_limits_are_suite_settings_and_validated():
    settings = check_settings("s.toml", {"stable_max_cv_pct": 5, "stable_max_other_cpu_pct": 50})
    assert StabilityLimits.of(settings) == StabilityLimits(5.0, 50.0)
    with pytest.raises(EnergyHarnessError, match="suite.stable_max_cv_pct: must be positive"):
        check_settings("s.toml", {"stable_max_cv_pct": 0})
    with pytest.raises(EnergyHarnessError, match="stable_max_other_cpu_pct: .*at most 100"):
        check_settings("s.toml", {"stable_max_other_cpu_pct": 150})
