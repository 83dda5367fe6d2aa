"""Estimated energy = static power x duration + sum of E_i x C_i, checked by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks.models import LeNet5
from harness.errors import EnergyHarnessError
from harness.estimate import (
    count_step,
    effective_weights,
    estimate_energy,
    estimate_model,
    load_profile,
)
from harness.spec.catalog import example_input

TOY_PROFILE = """
[profile]
name = "toy"
description = "round numbers for hand checks"
target = "gpu"
memory_level = "dram"
host_to_device_inputs = true
derivation = "made up for a test"

[compute.fp32]
pj_per_flop = 2.0
flops_per_s = 1.0e9
source = "test"

[memory.dram]
pj_per_byte = 10.0
bytes_per_s = 1.0e9
source = "test"

[memory.sram]
pj_per_byte = 1.0
source = "test"

[communication.host_to_device]
pj_per_byte = 5.0
bytes_per_s = 1.0e8
source = "test"

[static]
power_w = 3.0
source = "test"
"""


@pytest.fixture
def toy_profile(tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text(TOY_PROFILE)
    return load_profile(path)


def test_toy_breakdown_equals_the_hand_computed_sum(toy_profile):
    layer = nn.Linear(4, 3)
    x = torch.randn(2, 4)
    est = estimate_model(layer, x, toy_profile, duration_s=0.01)
    # C_i by hand: 2 samples x 4 x 3 multiply-adds = 48 FLOPs; bytes read and written by
    # addmm: weight 48 + bias 12 + x 32 + out 24 = 116; host-to-device copy of x: 32 B.
    compute_j = 48 * 2.0e-12
    storage_j = 116 * 10.0e-12
    communication_j = 32 * 5.0e-12
    static_j = 3.0 * 0.01
    step = est.energy["dense-hw"]
    assert step.breakdown_j == pytest.approx(
        {
            "compute": compute_j,
            "storage": storage_j,
            "communication": communication_j,
            "static": static_j,
        }
    )
    assert step.energy_j == pytest.approx(compute_j + storage_j + communication_j + static_j)
    report = est.to_dict()
    assert report["energy_j_per_sample"] == pytest.approx(step.energy_j / 2)
    assert report["breakdown_j"]["storage"] == pytest.approx(storage_j / 2)
    assert report["flops_per_sample"] == 24 and report["bytes_per_sample"] == 58
    assert report["kind"] == "estimate" and "not a measurement" in report["label"]
    assert report["duration_source"] == "measured"
    assert sum(t["energy_j"] for t in report["terms_per_sample"]) == pytest.approx(
        report["energy_j_per_sample"]
    )


def test_duration_from_the_profile_rates_when_none_is_measured(toy_profile):
    counts = count_step(nn.Linear(4, 3), torch.randn(2, 4), host_to_device=True).dense_hw
    est = estimate_energy(counts, toy_profile)
    # max(48 FLOP / 1e9, 116 B / 1e9) + 32 B / 1e8
    assert est.duration_s == pytest.approx(116 / 1e9 + 32 / 1e8)
    assert est.breakdown_j["static"] == pytest.approx(3.0 * est.duration_s)
    assert est.duration_source.startswith("roofline")


def test_no_static_part_without_duration_or_rates():
    est = estimate_model(LeNet5(), example_input("lenet5", 1), "horowitz-45nm")
    step = est.energy["dense-hw"]
    assert step.duration_s is None and step.breakdown_j["static"] == 0.0
    assert step.duration_source.startswith("none")


def test_memory_level_what_if_charges_another_level(toy_profile):
    counts = count_step(nn.Linear(4, 3), torch.randn(2, 4)).dense_hw
    dram = estimate_energy(counts, toy_profile, duration_s=0.0).breakdown_j["storage"]
    sram = estimate_energy(counts, toy_profile, duration_s=0.0, memory_level="sram")
    assert sram.breakdown_j["storage"] == pytest.approx(dram / 10)
    with pytest.raises(EnergyHarnessError, match="no memory level 'l3'"):
        estimate_energy(counts, toy_profile, memory_level="l3")


def test_sparse_ideal_estimate_is_lower_for_a_pruned_model():
    from torch.nn.utils import prune

    model = LeNet5()
    for module in (model.conv2, model.fc1):
        prune.random_unstructured(module, "weight", amount=0.8)
    report = estimate_model(model, example_input("lenet5", 1), "horowitz-45nm").to_dict()
    dense = report["accountings"]["dense-hw"]["breakdown_j"]["storage"]
    sparse = report["accountings"]["sparse-ideal"]["breakdown_j"]["storage"]
    weights = effective_weights(model)
    # Weights are read once per inference at 162.5 pJ/byte; activations are not scaled.
    saved_j = 162.5e-12 * sum(w.bytes * (1 - w.density) for w in weights)
    assert saved_j > 0.5 * 162.5e-12 * sum(w.bytes for w in weights)
    assert sparse == pytest.approx(dense - saved_j)
    assert report["accountings"]["nonzero-params"]["nonzero_params"] == sum(
        w.nonzero for w in weights
    )


def test_a_dtype_the_profile_lacks_is_a_user_error(toy_profile):
    counts = count_step(nn.Linear(4, 3).half(), torch.randn(2, 4).half()).dense_hw
    with pytest.raises(EnergyHarnessError, match=r"\[compute.fp16\]"):
        estimate_energy(counts, toy_profile)


def test_interconnect_bytes_need_a_profile_that_prices_them():
    counts = count_step(LeNet5(), example_input("lenet5", 2), mode="training", world_size=2)
    with pytest.raises(EnergyHarnessError, match="interconnect"):
        estimate_energy(counts.dense_hw, load_profile("horowitz-45nm"))
    est = estimate_energy(counts.dense_hw, load_profile("h100-class"))
    assert est.breakdown_j["communication"] > 0
