"""A suite case on its `simulate` accelerator: the simulated columns beside the measured
and estimated ones, training said not simulated, a failure written and not raised, and a
bad accelerator found before anything is measured."""

from __future__ import annotations

import pytest
import torch

from benchmarks.models import LeNet5
from harness.errors import EnergyHarnessError
from harness.run.simulation import simulation_columns
from harness.simulate.accelerators import check_accelerator_setting

EDGE = ("edge-systolic-64",)
ROW = {"energy_j_per_sample_mean": 1.0e-3, "est_dense_hw_energy_j_per_sample": 4.0e-4}


def test_an_inference_case_gets_its_simulated_columns(tmp_path):
    pytest.importorskip("scalesim")
    phases: list[str] = []
    batch = torch.zeros(8, 1, 32, 32)  # a batch: one sample of it is simulated
    cols = simulation_columns(EDGE, "inference", LeNet5(), batch, ROW, tmp_path, phases.append)
    assert cols["simulated_accelerator"] == "edge-systolic-64"
    assert cols["simulated_cycles"] > 0 and cols["simulated_dram_bytes"] >= 61_470
    energy = cols["simulated_energy_j_per_sample"]
    assert cols["simulated_error_pct"] == pytest.approx((energy - 1.0e-3) / 1.0e-3 * 100)
    assert cols["simulated_vs_estimate_pct"] == pytest.approx((energy - 4.0e-4) / 4.0e-4 * 100)
    assert phases[-1] == "simulating on edge-systolic-64: 5/5 layer shapes"
    assert any((tmp_path / "simulate").glob("*.json"))  # under the run's model cache


def test_training_is_not_simulated_and_a_failure_is_written_not_raised(tmp_path):
    training = simulation_columns(EDGE, "training", LeNet5(), None, ROW, None, print)
    assert training["simulated_note"].startswith("not simulated: training")
    assert training["simulated_energy_j_per_sample"] is None
    wrong = torch.zeros(1, 3, 32, 32)  # LeNet-5 takes one channel: the forward pass fails
    failed = simulation_columns(EDGE, "inference", LeNet5(), wrong, ROW, tmp_path, print)
    assert failed["simulated_note"].startswith("failed: RuntimeError: ")
    assert "\n" not in failed["simulated_note"] and failed["simulated_cycles"] is None


def test_a_suite_accelerator_that_does_not_load_names_the_file_and_key():
    check_accelerator_setting("s.toml", ())  # nothing to simulate: nothing to check
    with pytest.raises(EnergyHarnessError, match="^s.toml: suite.simulate: unknown accelerator"):
        check_accelerator_setting("s.toml", ("tpu-v9",))
