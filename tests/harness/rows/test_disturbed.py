"""Disturbed windows: busy and outlier, one definition; the rows keep them, statistics don't."""

from __future__ import annotations

import math

import pytest

from harness.rows.disturbed import busy_reason, outlier_reasons
from harness.rows.repetitions import case_repetitions
from harness.rows.stats import mcnemar_exact_p, paired_ratio_ci95, wilson_ci95


def test_busy_is_above_the_limit_and_says_by_how_much():
    assert busy_reason(48.4, 25.0) == "busy: other processes used 48 % of the CPUs (above 25 %)"
    assert busy_reason(25.0, 25.0) == "" and busy_reason(None, 25.0) == ""


def test_an_outlier_is_three_scaled_mads_and_five_percent_from_the_others():
    steady = {"0": 1.00, "1": 1.01, "2": 0.99, "3": 1.02, "4": 0.98}
    assert outlier_reasons(steady) == {}
    hit = {**steady, "5": 1.30}  # a window slowed by a neighbour
    (label, why), *rest = outlier_reasons(hit).items()
    assert label == "5" and not rest
    assert why.startswith("outlier: +29 % from the median of its case's windows (")
    # windows alike to a fraction of a percent: 3 % off is many MADs, but under the floor
    tight = {str(k): 1.0 + k * 1e-4 for k in range(5)}
    assert outlier_reasons({**tight, "9": 1.03}) == {}
    assert outlier_reasons({**tight, "9": 1.06}).keys() == {"9"}
    assert outlier_reasons({"0": 1.0, "1": 1.0, "2": 1.0, "3": 2.0}) == {}  # too few to judge


def row(rep: int, energy: float, disturbed: str = "", **extra) -> dict[str, str]:
    return {
        "case_id": "c",
        "repetition": str(rep),
        "round": str(rep),
        "process": str(rep // 2),
        "in_total": "true",
        "valid": "true",
        "samples": "100",
        "iterations": "10",
        "duration_s": "0.5",
        "energy_j": str(energy),
        "source": "counter",
        "disturbed": "true" if disturbed else "false",
        "disturbed_reason": disturbed,
        **extra,
    }


def test_disturbed_windows_are_left_out_of_the_figures_with_their_reason():
    rows = [row(0, 1.0), row(1, 5.0, "busy: other processes used 60 % of the CPUs"), row(2, 1.2)]
    (rep,) = case_repetitions(rows).values()
    assert rep.energy_j_per_sample == [0.01, 0.012] and rep.rounds == ["0", "2"]
    assert rep.disturbed == {"1": "busy: other processes used 60 % of the CPUs"}
    assert rep.windows == 3 and not rep.all_disturbed
    assert [t.energy_j for t in rep.totals] == [1.0, 1.2]


def test_a_case_whose_every_window_was_disturbed_keeps_them_and_says_so():
    rows = [row(0, 1.0, "busy: x", other_cpu_pct="60"), row(1, 1.1, "busy: y")]
    (rep,) = case_repetitions(rows).values()
    assert rep.all_disturbed and rep.windows == 2 and len(rep.disturbed) == 2
    assert rep.energy_j_per_sample == pytest.approx([0.01, 0.011])
    assert rep.totals[0].other_cpu_pct == 60.0  # so the case is unstable, and says why


def test_paired_ratio_needs_two_rounds_and_never_goes_below_zero():
    assert paired_ratio_ci95([0.5]) is None
    ratio, low, high = paired_ratio_ci95([0.1, 0.9, 0.05])
    assert 0 < low < ratio < high


def test_wilson_interval_of_an_accuracy_by_hand():
    # 352 of 360 right: p = 0.9778; z = 1.959964
    low, high = wilson_ci95(352, 360)
    z, n, p = 1.959963984540054, 360, 352 / 360
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (low, high) == pytest.approx((centre - half, centre + half))
    assert high < 1 and low > 0.95
    assert wilson_ci95(360, 360)[1] == pytest.approx(1.0) and wilson_ci95(0, 0) != (0, 1)


def test_mcnemar_exact_by_hand():
    # 1 sample only A right, 7 only B right: 2 x P(X <= 1), X ~ Bin(8, 1/2) = 2 x 9/256
    assert mcnemar_exact_p(1, 7) == pytest.approx(18 / 256)
    assert mcnemar_exact_p(7, 1) == mcnemar_exact_p(1, 7)
    assert mcnemar_exact_p(0, 0) == 1.0 and mcnemar_exact_p(3, 3) == 1.0
    assert mcnemar_exact_p(0, 9) < 0.05  # nine samples fixed, none broken


def test_outliers_judged_again_never_eat_the_rest_of_the_windows():
    from harness.run.group import GroupRun

    values = [1.0, 1.01, 0.99, 1.03, 0.97, 1.06, 0.94, 1.6]  # one window hit by a neighbour
    rows = [row(k, v) for k, v in enumerate(values)]
    rows.append(row(8, 5.0, "busy: other processes used 60 % of the CPUs (above 25 %)"))
    group = GroupRun(ctx=None, members={}, rows=rows)  # type: ignore[arg-type]
    marked = []
    for _ in range(4):  # as the runner does after every extra round
        group.mark_outliers()
        marked.append({r["repetition"] for r in group.rows if r["disturbed"] in (True, "true")})
    assert marked[0] == {"7", "8"} and all(m == marked[0] for m in marked)
    assert group.rows[8]["disturbed_reason"].startswith("busy:")  # kept as it was
