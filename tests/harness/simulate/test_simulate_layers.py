"""Mapping a model onto SCALE-Sim's layers: padding, groups (depthwise), Linear as a GEMM,
2:4 weights, and the MACs the estimate's counting sees."""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.models import LeNet5
from harness.estimate.counting import count_step
from harness.simulate.layers import map_model


def test_lenet5_maps_to_five_layers_with_the_macs_the_estimate_counts():
    model = LeNet5()
    mapped, analytic = map_model(model, torch.zeros(1, 1, 32, 32))
    assert [(x.name, x.kind) for x in mapped] == [
        ("conv1", "conv"),
        ("conv2", "conv"),
        ("fc1", "linear"),
        ("fc2", "linear"),
        ("fc3", "linear"),
    ]
    assert sum(x.macs for x in mapped) == 416_520  # LeNet-5's MACs (estimate/README.md)
    counts = count_step(model, torch.zeros(1, 1, 32, 32))
    assert 2 * sum(x.macs for x in mapped) == counts.dense_hw.flops  # one definition
    assert {x.kind for x in analytic} == {"ReLU", "MaxPool2d"} and len(analytic) == 6
    fc1 = mapped[2].shape
    assert (fc1.gemm(), fc1.compulsory_words()["filter"]) == ((1, 120, 400), 48_000)


def test_padding_is_added_to_the_input_and_depthwise_is_one_conv_per_channel():
    model = nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 4, 3, stride=2, groups=2)
    )
    mapped, _ = map_model(model, torch.zeros(1, 8, 10, 10))
    dw, grouped = mapped
    assert dw.kind == "depthwise" and dw.repeats == 8
    assert (dw.shape.ifmap_h, dw.shape.channels, dw.shape.filters) == (12, 1, 1)
    assert (dw.shape.ofmap_h, dw.shape.ofmap_w) == (10, 10)
    assert dw.macs == 8 * 10 * 10 * 9  # a depthwise 3x3: 9 MACs per output
    assert grouped.kind == "grouped" and grouped.repeats == 2
    assert (grouped.shape.channels, grouped.shape.filters, grouped.shape.ofmap_h) == (4, 2, 4)


def test_a_two_four_weight_is_marked_and_unstructured_zeros_are_not():
    two_four, unstructured = nn.Linear(64, 32), nn.Linear(32, 64)
    with torch.no_grad():
        two_four.weight.view(32, 16, 4)[:, :, :2] = 0  # 2 of every 4 zero
        mask = torch.rand(64, 32, generator=torch.Generator().manual_seed(0)) < 0.9
        unstructured.weight[mask] = 0  # 90 % zero: fits the pattern, is no 2:4 layer
    mapped, _ = map_model(nn.Sequential(two_four, unstructured), torch.zeros(1, 64))
    assert mapped[0].kind == "linear 2:4" and mapped[0].density == 0.5
    assert (mapped[0].shape.sparsity_n, mapped[0].shape.sparsity_m) == (2, 4)
    assert mapped[1].kind == "linear" and mapped[1].density < 0.2
    assert (mapped[1].shape.sparsity_n, mapped[1].shape.sparsity_m) == (1, 1)
