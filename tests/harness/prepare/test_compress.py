"""Compression variants and the five-step pipeline on LeNet-5 / digits."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from harness.prepare.cache import ModelCache
from harness.prepare.compress import compress_model
from harness.prepare.hardware import check_supported, semi_structured_layers
from harness.prepare.pipeline import prepare_model
from harness.prepare.pruning import (
    magnitude_prune,
    make_pruning_permanent,
    prunable_weights,
    structured_prune,
    threshold_prune,
    two_four_mask,
)
from harness.prepare.sparsity import sparsity_report
from harness.spec.catalog import build_model, example_input
from harness.spec.variants import VARIANTS, VariantUnsupported, resolve_variant
from probes.errors import EnergyHarnessError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cache(shared_cache):
    return shared_cache


@pytest.fixture(scope="module")
def dense(digits, cache):
    return prepare_model("lenet5", digits, "dense", cache=cache)


@pytest.fixture(scope="module")
def magnitude(digits, cache, dense):
    return prepare_model("lenet5", digits, "magnitude", {"sparsity": 0.9}, cache=cache)


def _prunable_nonzero(model: nn.Module) -> tuple[int, int]:
    weights = [getattr(m, n) for m, n in prunable_weights(model)]
    return sum(w.numel() for w in weights), sum(int(torch.count_nonzero(w)) for w in weights)


def _flops(model: nn.Module, x: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def test_dense_lenet5_reaches_95_percent(dense):
    assert dense.accuracy >= 0.95
    assert dense.report.sparsity == 0.0
    assert dense.report.total_params == dense.report.nonzero_params == 61_706
    assert dense.report.dense_bytes == 4 * 61_706


def test_magnitude_90_keeps_exactly_the_target_and_accuracy(dense, magnitude):
    total, nonzero = _prunable_nonzero(magnitude.model)
    assert total == 61_470  # conv and linear weights of LeNet-5
    assert nonzero == total - round(0.9 * total) == 6_147  # after fine-tuning: no regrowth
    assert magnitude.report.prunable_nonzero == nonzero
    assert magnitude.report.sparsity == pytest.approx(0.9, abs=1e-4)
    assert magnitude.accuracy >= dense.accuracy - 0.02
    assert magnitude.dense_accuracy == dense.accuracy
    assert magnitude.report.nonzero_bytes == 4 * magnitude.report.nonzero_params
    assert magnitude.report.dense_bytes == dense.report.dense_bytes
    assert any("masks kept" in step for step in magnitude.steps)
    assert not list(magnitude.model.buffers())  # masks folded into the weights


def test_the_naive_recipe_regrows_pruned_weights(digits, dense):
    params = {"sparsity": 0.9, "keep_masks": False, "fine_tune_epochs": 1}
    naive = compress_model(dense.model, "magnitude", params, digits)
    total, nonzero = _prunable_nonzero(naive.model)
    assert nonzero > 2 * 6_147  # zeroed, retrained freely: most weights are back
    _, dense_nonzero = _prunable_nonzero(dense.model)
    assert dense_nonzero == total  # and the dense model was not touched


def test_threshold_has_the_classic_semantics_on_a_hand_made_tensor():
    layer = nn.Linear(4, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.05, -0.2, 0.1, -0.0999], [-0.1, 0.3, 0.0, 1e-4]]))
        layer.bias.copy_(torch.tensor([0.01, -0.05]))
    model = nn.Sequential(layer, nn.BatchNorm1d(2))
    threshold_prune(model, 0.1)
    make_pruning_permanent(model)
    expected = torch.tensor([[0.0, -0.2, 0.1, 0.0], [-0.1, 0.3, 0.0, 0.0]])
    assert torch.equal(layer.weight.detach(), expected)  # |w| < t -> 0, |w| == t kept
    assert torch.equal(layer.bias.detach(), torch.tensor([0.01, -0.05]))  # biases untouched
    assert torch.equal(model[1].weight.detach(), torch.ones(2))  # norm scales untouched
    report = sparsity_report(model)
    assert (report.prunable_params, report.prunable_nonzero) == (8, 4)
    # 4 kept weights, 2 biases, 2 norm scales (norm biases start at 0)
    assert (report.total_params, report.nonzero_params) == (14, 8)


def test_threshold_variant_zeroes_exactly_the_small_weights(digits, dense):
    compressed = compress_model(
        dense.model, "threshold", {"threshold": 0.05, "fine_tune_epochs": 0}, digits
    )
    for (d_mod, name), (c_mod, _) in zip(
        prunable_weights(dense.model), prunable_weights(compressed.model), strict=True
    ):
        before, after = getattr(d_mod, name), getattr(c_mod, name)
        assert torch.equal(after, torch.where(before.abs() < 0.05, 0.0, before))


def test_threshold_pipeline_reports_its_sparsity(digits, cache, dense):
    pruned = prepare_model(
        "lenet5", digits, "threshold", {"threshold": 0.05, "fine_tune_epochs": 1}, cache=cache
    )
    small = sum(int((getattr(m, n).abs() < 0.05).sum()) for m, n in prunable_weights(dense.model))
    assert pruned.report.prunable_nonzero == 61_470 - small  # masks kept while fine-tuning
    assert 0.3 < pruned.report.sparsity < 0.99
    assert pruned.accuracy >= dense.accuracy - 0.05


def test_structured_removes_channels_params_and_flops(digits, cache, dense):
    pruned = prepare_model("lenet5", digits, "structured", {"ratio": 0.5}, cache=cache)
    model = pruned.model
    assert (model.conv1.out_channels, model.conv2.out_channels) == (3, 8)
    assert model.fc3.out_features == 10  # the classifier keeps its classes
    assert pruned.report.total_params < dense.report.total_params / 3
    assert pruned.report.reference_params == dense.report.total_params
    assert pruned.report.params_removed > 0.6
    x = example_input("lenet5", 4)
    assert _flops(model, x) < 0.6 * _flops(dense.model, x)
    assert model(x).shape == (4, 10)
    assert pruned.accuracy > 0.85  # three fine-tuning epochs recover most of it


@pytest.mark.parametrize("name", ["mobilenet_v2", "transformer"])
def test_structured_pruning_handles_coupled_layers(name):
    model = build_model(name).eval()
    x = example_input(name, 1)
    before = sum(p.numel() for p in model.parameters())
    structured_prune(model, x, 0.25)
    assert sum(p.numel() for p in model.parameters()) < before
    with torch.no_grad():
        assert model(x).shape == (1, 10)


def test_structured_refuses_to_prune_away_classes():
    class HeadFirst(nn.Module):  # the classifier is registered before the body
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(8, 3)
            self.body = nn.Linear(4, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.body(x)))

    with pytest.raises(VariantUnsupported, match=r"output shape from \(1, 3\)"):
        structured_prune(HeadFirst(), torch.randn(1, 4), 0.5)


def test_semi_structured_is_skipped_on_cpu_with_a_reason(digits, tmp_path):
    empty_cache = ModelCache(tmp_path)
    with pytest.raises(VariantUnsupported) as info:
        prepare_model("lenet5", digits, "semi-structured-2:4", cache=empty_cache)
    assert isinstance(info.value, EnergyHarnessError)
    assert info.value.variant == "semi-structured-2:4"
    assert "CUDA" in info.value.reason and "cpu" in info.value.reason
    assert not list(tmp_path.iterdir())  # skipped before any training


def test_semi_structured_picks_linear_layers_the_kernels_accept():
    layers = semi_structured_layers(build_model("transformer"))
    # 4 encoder layers x (256 -> 1024, 1024 -> 256); not the 10-class head, not out_proj
    assert layers == [f"encoder.layers.{i}.linear{j}" for i in range(4) for j in (1, 2)]
    assert semi_structured_layers(build_model("lenet5")) == []  # 120x400, 84x120, 10x84


def test_two_four_mask_keeps_the_two_largest_of_every_four():
    weight = torch.tensor([[0.1, -0.9, 0.3, 0.2, 5.0, 4.0, -3.0, 0.0]])
    mask = two_four_mask(weight)
    assert mask.tolist() == [[False, True, True, False, True, True, False, False]]
    big = two_four_mask(torch.randn(64, 128))
    assert big.reshape(-1, 4).sum(dim=1).eq(2).all()
    with pytest.raises(EnergyHarnessError, match="multiple of 4"):
        two_four_mask(torch.randn(2, 6))


def test_int8_dynamic_runs_on_cpu(digits, cache, dense):
    quantized = prepare_model("lenet5", digits, "int8-dynamic", cache=cache)
    kinds = {type(m).__module__ for m in quantized.model.modules()}
    assert "torch.ao.nn.quantized.dynamic.modules.linear" in kinds
    out = quantized.model(example_input("lenet5", 2))
    assert out.shape == (2, 10) and quantized.device.type == "cpu"
    assert quantized.accuracy >= dense.accuracy - 0.02
    # 58,920 linear weights at 1 byte; convolutions and all biases at 4 bytes
    assert quantized.report.dense_bytes == 58_920 + 4 * (61_706 - 58_920)
    assert quantized.report.total_params == 61_706


def test_int8_is_skipped_on_a_gpu_device():
    with pytest.raises(VariantUnsupported, match="CPU only"):
        check_supported("int8-dynamic", "cuda")


def test_magnitude_prune_is_global():
    model = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 10))
    with torch.no_grad():
        model[0].weight.fill_(0.01)
        model[1].weight.copy_(torch.arange(1, 101, dtype=torch.float32).reshape(10, 10))
    magnitude_prune(model, 0.5)
    assert torch.count_nonzero(model[0].weight) == 0  # all small weights were in layer 0
    assert torch.count_nonzero(model[1].weight) == 100


@pytest.mark.parametrize(
    ("variant", "params", "message"),
    [
        ("prune-it", {}, "unknown variant 'prune-it'; known variants: dense"),
        ("magnitude", {"amount": 0.5}, "unknown parameter.*amount.*known: sparsity"),
        ("magnitude", {"sparsity": 1.0}, "sparsity must be in"),
        ("structured", {"ratio": "half"}, "ratio must be a float"),
        ("threshold", {"keep_masks": 1}, "keep_masks must be a bool"),
        ("threshold", {"fine_tune_epochs": True}, "fine_tune_epochs must be a int"),
        ("int8-dynamic", {"bits": 4}, "unknown parameter.*bits.*known: none"),
    ],
)
def test_bad_variant_parameters_name_the_key(variant, params, message):
    with pytest.raises(EnergyHarnessError, match=message):
        resolve_variant(variant, params)


def test_every_variant_has_a_description_and_defaults_resolve():
    for name, variant in VARIANTS.items():
        assert variant.description
        assert resolve_variant(name) == dict(variant.defaults)
    assert resolve_variant("magnitude", {"sparsity": 1 / 2})["sparsity"] == 0.5
