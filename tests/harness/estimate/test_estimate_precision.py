"""Precision paths, the power bound, a measured static power and seeded untrained variants,
checked against hand arithmetic and the profiles' datasheet figures."""

from __future__ import annotations

import pytest
import torch
from test_estimate_energy import TOY_PROFILE
from torch import nn

from harness.errors import EnergyHarnessError
from harness.estimate import count_step, estimate_energy, estimate_model, load_profile
from harness.estimate.profiles import StaticPower
from harness.prepare.untrained import untrained_variant
from harness.spec.catalog import build_model, example_input

RESNET18_FLOPS = 3.627e9  # per 224x224 sample: 2 x torchvision's 1.814 G multiply-adds


@pytest.fixture
def toy(tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text(TOY_PROFILE + '\n[max_power]\npower_w = 3.5\nsource = "test"\n')
    return load_profile(path)


def _linear_step(precision: str, mode: str = "inference"):
    layer = nn.Linear(4, 3)
    return count_step(layer, torch.randn(2, 4), precision=precision, mode=mode).dense_hw


def test_precision_changes_what_a_step_counts_by_hand():
    # Linear(4 -> 3), batch 2: 2 x 4 x 3 multiply-adds = 48 FLOPs whatever the precision
    fp32, tf32, bf16 = (_linear_step(p) for p in ("fp32", "tf32", "bf16"))
    assert fp32.flops_by_dtype == {"fp32": 48} and tf32.flops_by_dtype == {"tf32": 48}
    assert bf16.flops_by_dtype == {"bf16": 48}
    # fp32: weight 12 x 4 B + bias 3 x 4 B; x 8 x 4 B + out 6 x 4 B
    assert fp32.memory_bytes == {"weights": 60, "activations": 56} == tf32.memory_bytes
    # bf16: 2 B each, plus autocast's cast of the 12-element fp32 weight (read 4 + write 2)
    assert bf16.memory_bytes == {"weights": 30 + 12 * 6, "activations": 28}
    training = _linear_step("bf16", mode="training")
    # the bf16 weight and bias gradients (30 B) plus the fp32 accumulation of the weight's
    # (12 x 6 B); the optimizer moves fp32 master weights: 5 x 60 B (SGD with momentum)
    assert training.memory_bytes["gradients"] == 30 + 12 * 6
    assert training.memory_bytes["optimizer"] == 5 * 60


def test_resnet18_on_h200_is_priced_per_precision_path():
    h200 = load_profile("h200-class")
    model, batch = build_model("resnet18"), example_input("resnet18", 256)
    est = {p: estimate_model(model, batch, h200, precision=p) for p in ("fp32", "tf32", "bf16")}
    figures = {p: e.to_dict() for p, e in est.items()}
    for precision, d in figures.items():
        assert d["precision"] == precision
        (dtype,) = d["flops_by_dtype_per_sample"]
        assert dtype == precision
        assert d["flops_per_sample"] == pytest.approx(RESNET18_FLOPS, rel=0.001)
        # compute = FLOPs x the datasheet-derived energy of that path
        pj = h200.compute[precision].pj_per_flop
        assert d["breakdown_j"]["compute"] == pytest.approx(d["flops_per_sample"] * pj * 1e-12)
    assert [h200.compute[p].pj_per_flop for p in ("fp32", "tf32", "bf16")] == [10.7, 1.46, 0.73]
    fp32_j, bf16_j = figures["fp32"]["energy_j_per_sample"], figures["bf16"]["energy_j_per_sample"]
    assert fp32_j > 3 * bf16_j  # tensor cores: several times cheaper than CUDA-core fp32
    assert fp32_j > figures["tf32"]["energy_j_per_sample"] > bf16_j


def test_tf32_on_a_profile_without_tensor_cores_is_priced_as_fp32():
    horowitz = load_profile("horowitz-45nm")
    est = estimate_energy(_linear_step("tf32"), horowitz)
    (compute,) = [t for t in est.terms if t.part == "compute"]
    assert compute.name == "tf32 FLOPs (priced as fp32)"
    assert compute.energy_j == pytest.approx(48 * 2.3e-12)
    assert any("no tf32 rate" in note for note in est.notes)


def test_the_implied_power_never_exceeds_the_maximum(toy):
    counts = count_step(nn.Linear(4, 3), torch.randn(2, 4), host_to_device=True).dense_hw
    # dynamic energy by hand: 48 FLOP x 2 pJ + 116 B x 10 pJ + 32 B (host copy) x 5 pJ
    dynamic_j = (48 * 2 + 116 * 10 + 32 * 5) * 1e-12
    slow = estimate_energy(counts, toy, duration_s=1e-8)  # 0.14 W + 3 W static < 3.5 W
    assert slow.power_cap is not None and not slow.power_cap.capped
    assert slow.energy_j == pytest.approx(dynamic_j + 3.0 * 1e-8)
    fast = estimate_energy(counts, toy, duration_s=1e-9)  # 1.416 W + 3 W > 3.5 W: capped
    cap = fast.power_cap
    assert cap.capped and cap.max_power_w == 3.5
    assert cap.uncapped_power_w == pytest.approx(dynamic_j / 1e-9 + 3.0)
    assert cap.factor == pytest.approx((3.5 - 3.0) * 1e-9 / dynamic_j)
    assert fast.energy_j == pytest.approx(3.5 * 1e-9)
    assert fast.implied_power_w == pytest.approx(3.5)
    assert fast.breakdown_j["static"] == pytest.approx(3.0 * 1e-9)  # static is never scaled
    assert any("power cap" in note for note in fast.notes)


def test_resnet50_at_fp32_on_h100_is_capped_at_the_board_power():
    name = "torchvision.models:resnet50"
    d = estimate_model(build_model(name), example_input(name, 256), "h100-class").to_dict()
    cap = d["power_cap"]
    assert cap["capped"] and cap["max_power_w"] == 700.0 and cap["uncapped_power_w"] > 700.0
    assert d["implied_power_w"] == pytest.approx(700.0)
    assert sum(t["energy_j"] for t in d["terms_per_sample"]) == pytest.approx(
        d["energy_j_per_sample"]
    )


def test_a_measured_static_power_replaces_the_profiles(toy):
    counts = _linear_step("fp32")
    idle = StaticPower(0.25, "idle baseline of this run: 0.25 W")
    est = estimate_energy(counts, toy, duration_s=0.01, static=idle)
    assert est.breakdown_j["static"] == pytest.approx(0.25 * 0.01)
    assert est.static.source.startswith("idle baseline")
    guessed = estimate_energy(counts, toy, duration_s=0.01)
    assert guessed.breakdown_j["static"] == pytest.approx(3.0 * 0.01)


def test_an_untrained_pruned_model_is_the_same_call_after_call():
    def sparse_flops(seed: int) -> float:
        model, batch, _ = untrained_variant("lenet5", "magnitude", 1, {"sparsity": 0.9}, seed=seed)
        return count_step(model, batch).sparse_ideal.flops

    torch.manual_seed(5)
    expected_next = torch.rand(1)
    torch.manual_seed(5)
    first = sparse_flops(0)
    assert torch.equal(torch.rand(1), expected_next)  # the caller's random state is kept
    assert [sparse_flops(0), sparse_flops(0)] == [first, first]
    assert sparse_flops(1) != first  # the seed decides which weights are pruned


def test_a_variant_with_its_own_format_refuses_another_precision():
    with pytest.raises(EnergyHarnessError, match="own number format"):
        untrained_variant("mlp", "int8-dynamic", 1, precision="bf16")
