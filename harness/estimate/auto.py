"""`estimate_profile = "auto"`: the profile that fits the machine a case runs on, and why.

- A CUDA device: the bundled profile of its GPU class, from the name the driver reports
  (the name NVML gives): H200 -> h200-class, H100 -> h100-class, A100 -> a100-class,
  Orin -> jetson-orin-class; another GPU gets h100-class and a note saying so.
- The CPU: `x86-server-cpu`'s per-operation energies, scaled to this CPU: its maximum
  power is the CPU's TDP (from the same table the model probe uses, else 4 W per logical
  CPU), its static power the bundled profile's idle share of TDP (80 of 270 W) times that
  TDP, its rates scaled by logical CPUs / 64 (the bundled socket's 32 cores x 2 threads).
  In a suite with an idle baseline the static power is the measured one instead.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from harness.estimate.profiles import ComputeEnergy, Profile, StaticPower, load_profile
from probes.model import cpu_model_name, cpu_tdp_w

PROFILE_BY_GPU = (
    ("H200", "h200-class"),
    ("H100", "h100-class"),
    ("A100", "a100-class"),
    ("Orin", "jetson-orin-class"),
)
FALLBACK_GPU_PROFILE = "h100-class"
CPU_BASE_PROFILE = "x86-server-cpu"
CPU_BASE_THREADS = 64  # x86-server-cpu: 32 cores x 2 hardware threads


@dataclass(frozen=True)
class AutoProfile:
    """The profile `auto` chose and, in one line, which and why."""

    profile: Profile
    note: str


def gpu_profile_name(gpu_name: str) -> tuple[str, str]:
    """The bundled profile for a GPU by its name, and a note saying which and why."""
    for key, profile in PROFILE_BY_GPU:
        if key.lower() in gpu_name.lower():
            return profile, f"auto: GPU {gpu_name!r} -> {profile}"
    return FALLBACK_GPU_PROFILE, (
        f"auto: no bundled profile for GPU {gpu_name!r} -> {FALLBACK_GPU_PROFILE}, the "
        "closest shipped; calibrate a profile for this GPU (`energy-harness calibrate`)"
    )


def _scaled_rate(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def cpu_profile(cpu_name: str, threads: int, tdp_w: float, tdp_source: str) -> AutoProfile:
    """`x86-server-cpu` scaled to a CPU of `threads` logical CPUs and `tdp_w` watts."""
    base = load_profile(CPU_BASE_PROFILE)
    assert base.max_power is not None  # the bundled profile has one
    factor = threads / CPU_BASE_THREADS
    idle_share = base.static.power_w / base.max_power.power_w
    described = f"{cpu_name or 'unknown CPU'}, {threads} logical CPUs, TDP {tdp_w:g} W"
    static = StaticPower(
        idle_share * tdp_w,
        f"assumption: {CPU_BASE_PROFILE}'s idle share of its TDP "
        f"({base.static.power_w:g} of {base.max_power.power_w:g} W) x this CPU's TDP "
        f"{tdp_w:g} W ({tdp_source})",
    )
    profile = dataclasses.replace(
        base,
        name=f"{CPU_BASE_PROFILE}@{tdp_w:g}W",
        description=f"{CPU_BASE_PROFILE} per-operation energies on this CPU ({described})",
        derivation=base.derivation
        + f"\nScaled to this machine ({described}): maximum power = TDP; static power = "
        f"{idle_share:.3f} x TDP; rates x {threads}/{CPU_BASE_THREADS}; energies per "
        "operation unchanged.\n",
        compute={
            k: ComputeEnergy(v.pj_per_flop, v.source, _scaled_rate(v.flops_per_s, factor))
            for k, v in base.compute.items()
        },
        memory={
            k: dataclasses.replace(v, bytes_per_s=_scaled_rate(v.bytes_per_s, factor))
            for k, v in base.memory.items()
        },
        static=static,
        max_power=StaticPower(tdp_w, f"TDP of this CPU: {tdp_source}"),
        origin=f"{CPU_BASE_PROFILE} scaled by `auto`",
    )
    note = f"auto: CPU {described} ({tdp_source}) -> {CPU_BASE_PROFILE} scaled to it"
    return AutoProfile(profile, note)


def auto_profile(device: str) -> AutoProfile:
    """The profile that fits `device` (cpu, cuda, cuda:N) on this machine."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        name, note = gpu_profile_name(torch.cuda.get_device_name(torch.device(device)))
        return AutoProfile(load_profile(name), note)
    threads = os.cpu_count() or 1
    cpu_name = cpu_model_name()
    tdp_w, source = cpu_tdp_w(cpu_name, threads)
    return cpu_profile(cpu_name, threads, tdp_w, source)
