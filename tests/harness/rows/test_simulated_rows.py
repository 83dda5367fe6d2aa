"""The simulated columns of cases.csv and the headline's three methods: one definition of
the distance between two energies (the estimate error's)."""

from __future__ import annotations

import math

import pytest

from harness.errors import EnergyHarnessError
from harness.report.headline import simulated_answer
from harness.rows.headline import headline
from harness.rows.simulated import simulated_columns
from harness.spec.settings import check_settings

ROW = {"energy_j_per_sample_mean": 2.0e-4, "est_dense_hw_energy_j_per_sample": 1.0e-4}


def test_the_simulation_is_compared_with_measurement_and_estimate_the_same_way():
    cols = simulated_columns(
        {"simulated_accelerator": "edge", "simulated_energy_j_per_sample": 5.0e-5}, ROW
    )
    assert cols["simulated_error_pct"] == pytest.approx(-75.0)  # (0.5 - 2) / 2
    assert cols["simulated_vs_estimate_pct"] == pytest.approx(-50.0)  # (0.5 - 1) / 1
    failed = simulated_columns({"simulated_note": "failed: timeout"}, ROW)
    assert failed["simulated_error_pct"] is None and failed["simulated_note"] == "failed: timeout"


def test_the_headline_says_the_simulated_energy_against_the_other_two():
    rows = [
        {"status": "ok", "estimate_error_pct": "10", "simulated_accelerator": "edge",
         "simulated_error_pct": "-80", "simulated_vs_estimate_pct": "-60"},
        {"status": "ok", "estimate_error_pct": "20", "simulated_accelerator": "edge",
         "simulated_error_pct": "-90", "simulated_vs_estimate_pct": "-70"},
    ]  # fmt: skip
    h = headline([], rows)
    assert h.simulated_error.n == 2 and h.simulated_error.median_pct == -85
    assert h.simulated_accelerator == "edge"
    text = simulated_answer(h)
    assert text.startswith("the SIMULATED energy on edge (SCALE-Sim, one sample): -85 % ")
    assert "(median of 2 case(s), -90 % to -80 %) against the" in text
    assert text.endswith(
        "-65 % (median of 2 case(s), -70 % to -60 %) against the ESTIMATED energy (dense-hw)"
    )
    without = headline([], [{"status": "ok", "estimate_error_pct": "10"}])
    assert without.simulated_error.n == 0 and math.isnan(without.simulated_error.median_pct)


@pytest.mark.parametrize("value", [["a", "b"], [1]])
def test_a_suite_simulates_on_one_named_accelerator(value):
    assert check_settings("s.toml", {"simulate": ["edge-systolic-64"]}).simulate == (
        "edge-systolic-64",
    )
    with pytest.raises(EnergyHarnessError, match="s.toml: suite.simulate: give one accelerator"):
        check_settings("s.toml", {"simulate": value})
