"""Counting FLOPs, bytes and transfers of a step, and the sparse accountings."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from benchmarks.models import LeNet5
from harness.errors import EnergyHarnessError
from harness.estimate.accounting import effective_weights, nonzero_params
from harness.estimate.counting import count_step
from harness.spec.catalog import build_model, example_input

# LeNet-5 by hand, multiply-adds per sample (a multiply-add is 2 FLOPs):
CONV1_MACS = 28 * 28 * 6 * 25  # 6 maps of 28x28, each a 1x5x5 window
CONV2_MACS = 10 * 10 * 16 * 150  # 16 maps of 10x10, each a 6x5x5 window
FC_MACS = 400 * 120 + 120 * 84 + 84 * 10
LENET5_FLOPS = 2 * (CONV1_MACS + CONV2_MACS + FC_MACS)


def test_lenet5_inference_flops_equal_the_hand_count():
    counts = count_step(LeNet5(), example_input("lenet5", 3))
    assert LENET5_FLOPS == 833_040
    assert counts.dense_hw.flops == 3 * LENET5_FLOPS
    assert counts.dense_hw.flops_by_op == {
        "aten.convolution": 3 * 2 * (CONV1_MACS + CONV2_MACS),
        "aten.addmm": 3 * 2 * FC_MACS,
    }
    assert counts.dense_hw.flops_by_dtype == {"fp32": 3 * LENET5_FLOPS}


def test_lenet5_training_flops_are_forward_plus_both_gradients_but_the_input_one():
    # Backward computes weight and input gradients (2x forward) for every layer except
    # conv1, whose input needs no gradient.
    counts = count_step(LeNet5(), example_input("lenet5", 2), mode="training")
    per_sample = 3 * LENET5_FLOPS - 2 * CONV1_MACS
    assert counts.dense_hw.flops == 2 * per_sample


def test_depthwise_convolution_backward_is_not_overcounted():
    model = nn.Sequential(nn.Conv2d(4, 16, 1), nn.Conv2d(16, 16, 3, padding=1, groups=16))
    x = torch.randn(2, 4, 8, 8)
    fwd1 = 2 * 2 * 8 * 8 * 16 * 4
    fwd2 = 2 * 2 * 8 * 8 * 16 * 9
    assert count_step(model, x).dense_hw.flops == fwd1 + fwd2
    # conv1: weight gradient only; conv2: input and weight gradients.
    assert count_step(model, x, mode="training").dense_hw.flops == 2 * fwd1 + 3 * fwd2


def test_linear_bytes_follow_the_stated_traffic_model():
    layer = nn.Linear(4, 3)
    counts = count_step(layer, torch.randn(2, 4))
    # addmm reads bias (12 B) and weight (48 B) as weights, x (32 B) as activations,
    # and writes the 2x3 output (24 B).
    assert counts.dense_hw.memory_bytes == {"weights": 60.0, "activations": 56.0}
    assert counts.dense_hw.comm_bytes == {}


def test_training_adds_gradients_optimizer_state_and_ring_all_reduce():
    layer = nn.Linear(4, 3)  # 60 bytes of parameters
    counts = count_step(
        layer, torch.randn(2, 4), mode="training", optimizer="sgd-momentum", world_size=4
    )
    memory = counts.dense_hw.memory_bytes
    assert memory["gradients"] >= 60  # weight (48 B) and bias (12 B) gradients written
    assert memory["optimizer"] == 5 * 60  # read p, g, m; write p, m
    assert counts.dense_hw.comm_bytes == {"interconnect": 2 * 3 / 4 * 60}
    adam = count_step(layer, torch.randn(2, 4), mode="training", optimizer="adam")
    assert adam.dense_hw.memory_bytes["optimizer"] == 7 * 60
    assert "interconnect" not in adam.dense_hw.comm_bytes  # one rank: no all-reduce


def test_host_to_device_counts_inputs_and_labels():
    x = example_input("lenet5", 4)
    inference = count_step(LeNet5(), x, host_to_device=True)
    assert inference.dense_hw.comm_bytes == {"host_to_device": 4 * 32 * 32 * 4}
    training = count_step(LeNet5(), x, mode="training", host_to_device=True)
    assert training.dense_hw.comm_bytes == {"host_to_device": 4 * 32 * 32 * 4 + 4 * 8}


def _prune_all(model: nn.Module, amount: float) -> nn.Module:
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            prune.l1_unstructured(module, "weight", amount=amount)
    return model


@pytest.mark.parametrize("amount", [0.5, 0.9])
def test_sparse_ideal_scales_with_density_and_dense_hw_does_not_change(amount):
    torch.manual_seed(0)
    dense = LeNet5()
    x = example_input("lenet5", 2)
    before = count_step(dense, x)
    pruned = _prune_all(LeNet5(), amount)
    after = count_step(pruned, x)
    assert after.dense_hw.flops == before.dense_hw.flops
    assert after.dense_hw.memory_bytes == before.dense_hw.memory_bytes
    # Every counted FLOP of LeNet-5 multiplies a weight, all pruned by `amount`.
    assert after.sparse_ideal.flops == pytest.approx((1 - amount) * before.dense_hw.flops)
    weights = {w.name: w for w in effective_weights(pruned)}
    assert weights["fc1.weight"].kind == "pruned"
    assert weights["fc1.weight"].density == pytest.approx(1 - amount)
    weight_bytes = sum(w.bytes * w.density for w in weights.values())
    assert after.sparse_ideal.memory_bytes["weights"] == pytest.approx(weight_bytes)
    assert (
        after.sparse_ideal.memory_bytes["activations"]
        == before.dense_hw.memory_bytes["activations"]
    )
    # The model itself is left as it was: still reparametrised, still on the CPU.
    assert hasattr(pruned.fc1, "weight_orig")
    assert pruned.fc1.weight_orig.device.type == "cpu"


def test_sparse_training_scales_weight_gradients_and_optimizer_too():
    torch.manual_seed(0)
    x = example_input("lenet5", 2)
    dense = count_step(LeNet5(), x, mode="training")
    model = _prune_all(LeNet5(), 0.75)
    sparse = count_step(model, x, mode="training").sparse_ideal
    density = {w.name: w.density for w in effective_weights(model)}
    # Per sample: 3 x forward per layer (forward, input and weight gradients), 2 x for conv1.
    layer_flops = {
        "conv1.weight": 2 * 2 * CONV1_MACS,
        "conv2.weight": 3 * 2 * CONV2_MACS,
        "fc1.weight": 3 * 2 * 400 * 120,
        "fc2.weight": 3 * 2 * 120 * 84,
        "fc3.weight": 3 * 2 * 84 * 10,
    }
    assert sum(layer_flops.values()) * 2 == dense.dense_hw.flops
    expected = 2 * sum(density[name] * flops for name, flops in layer_flops.items())
    assert sparse.flops == pytest.approx(expected)
    assert 0.24 < density["conv1.weight"] < 0.26  # l1_unstructured rounds per layer
    for category in ("gradients", "optimizer"):
        ratio = sparse.memory_bytes[category] / dense.dense_hw.memory_bytes[category]
        assert 0.25 < ratio < 0.27  # weights at 25 %, biases (about 1 %) dense


class SmallLeNet5(LeNet5):
    """LeNet-5 with half the channels and units: what structured pruning leaves."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 5)
        self.conv2 = nn.Conv2d(3, 8, 5)
        self.fc1 = nn.Linear(8 * 5 * 5, 60)
        self.fc2 = nn.Linear(60, 42)
        self.fc3 = nn.Linear(42, 10)


def test_structured_pruning_lowers_both_accountings():
    x = example_input("lenet5", 2)
    full, small = count_step(LeNet5(), x), count_step(SmallLeNet5(), x)
    for accounting in ("dense_hw", "sparse_ideal"):
        big, little = getattr(full, accounting), getattr(small, accounting)
        assert little.flops < 0.5 * big.flops
        assert little.bytes < big.bytes
    assert small.dense_hw.flops == small.sparse_ideal.flops  # no zeros left inside


def test_nonzero_params_proxy_counts_effective_weights():
    torch.manual_seed(0)
    model = _prune_all(LeNet5(), 0.9)
    proxy = nonzero_params(model)
    assert proxy.params == 61_706
    biases = 6 + 16 + 120 + 84 + 10
    assert proxy.nonzero_params == pytest.approx(biases + 0.1 * (61_706 - biases), abs=5)


def test_int8_dynamic_linear_counts_int8_flops_and_one_byte_weights():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torch.ao.quantization.quantize_dynamic(
            build_model("mlp").eval(), {nn.Linear}, dtype=torch.qint8
        )
    counts = count_step(model, example_input("mlp", 2))
    macs = 784 * 300 + 300 * 100 + 100 * 10  # LeNet-300-100 on 28x28 inputs
    assert counts.dense_hw.flops_by_dtype == {"int8": 2 * 2 * macs}
    assert counts.dense_hw.memory_bytes["weights"] == macs * 1 + 4 * (300 + 100 + 10)
    assert counts.counted_on == "cpu" and counts.notes
    with pytest.raises(EnergyHarnessError, match="inference only"):
        count_step(model, example_input("mlp", 2), mode="training")


def test_transformer_attention_is_counted():
    # seq 128, d 256, ff 1024, 4 layers: QKV, scores, weighted sum, out proj, FF, head.
    per_layer = 2 * 128 * (256 * 768 + 128 * 256 + 128 * 256 + 256 * 256 + 2 * 256 * 1024)
    counts = count_step(build_model("transformer"), example_input("transformer", 1))
    assert counts.dense_hw.flops == 4 * per_layer + 2 * 256 * 10
    assert counts.counted_on == "meta"


def test_bad_arguments_are_user_errors():
    with pytest.raises(EnergyHarnessError, match="unknown mode"):
        count_step(LeNet5(), example_input("lenet5", 1), mode="serving")
    with pytest.raises(EnergyHarnessError, match="unknown optimizer"):
        count_step(LeNet5(), example_input("lenet5", 1), mode="training", optimizer="lion")
    with pytest.raises(EnergyHarnessError, match="world size"):
        count_step(LeNet5(), example_input("lenet5", 1), world_size=0)


class CpuTensorInForward(nn.Module):
    """Makes a CPU tensor in its forward: it cannot run on the meta device."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc(x * torch.full((4,), 2.0)))


def test_a_model_that_cannot_go_to_meta_is_run_for_real_without_touching_the_rng():
    model, x = CpuTensorInForward(), torch.randn(2, 4)
    state = torch.get_rng_state()
    counts = count_step(model, x, mode="training")  # dropout draws random numbers
    assert counts.counted_on == "cpu" and "meta device" in counts.notes[0]
    # forward 2x4x3 MACs, backward weight gradient only (x needs no gradient): 2 x 48
    assert counts.dense_hw.flops == 48 + 48
    assert torch.equal(torch.get_rng_state(), state)
