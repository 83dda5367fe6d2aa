"""`auto`: the profile that fits the machine, and the note that says which."""

from __future__ import annotations

import pytest

from harness.estimate.auto import auto_profile, cpu_profile, gpu_profile_name
from harness.estimate.profiles import load_profile
from probes.model import cpu_model_name, cpu_tdp_w


@pytest.mark.parametrize(
    ("gpu_name", "profile"),
    [
        ("NVIDIA H200", "h200-class"),
        ("NVIDIA H100 80GB HBM3", "h100-class"),
        ("NVIDIA A100-SXM4-80GB", "a100-class"),
        ("Orin (nvgpu)", "jetson-orin-class"),
    ],
)
def test_a_gpu_gets_the_profile_of_its_class(gpu_name, profile):
    name, note = gpu_profile_name(gpu_name)
    assert name == profile and gpu_name in note and profile in note


def test_an_unknown_gpu_gets_the_fallback_and_a_note_saying_so():
    name, note = gpu_profile_name("Tesla V100-SXM2-16GB")
    assert name == "h100-class" and "no bundled profile" in note and "calibrate" in note


def test_a_cpu_gets_the_server_profile_scaled_to_its_tdp():
    base = load_profile("x86-server-cpu")
    chosen = cpu_profile("AMD EPYC", 2, 8.0, "default 4 W per logical CPU x 2")
    p = chosen.profile
    assert p.name == "x86-server-cpu@8W"
    assert p.max_power.power_w == 8.0 and "default 4 W per logical CPU" in p.max_power.source
    assert p.static.power_w == pytest.approx(8.0 * 80 / 270)  # the bundled idle share of TDP
    assert p.static.source.startswith("assumption")
    # energies per operation unchanged, rates scaled by 2 of the bundled 64 threads
    assert p.compute["fp32"].pj_per_flop == base.compute["fp32"].pj_per_flop
    assert p.compute["fp32"].flops_per_s == pytest.approx(base.compute["fp32"].flops_per_s / 32)
    assert p.memory["dram"].bytes_per_s == pytest.approx(base.memory["dram"].bytes_per_s / 32)
    assert "AMD EPYC" in chosen.note and "x86-server-cpu" in chosen.note


def test_auto_on_this_cpu_uses_the_model_probes_tdp():
    import os

    threads = os.cpu_count() or 1
    tdp_w, source = cpu_tdp_w(cpu_model_name(), threads)
    chosen = auto_profile("cpu")
    assert chosen.profile.max_power.power_w == tdp_w
    assert source in chosen.profile.max_power.source
