"""Step 2, idle: idle power per GPU over a few seconds from the energy counter (through
the meter), and the counter's observed update period: the smallest time between two
changes of the counter polled at about 1 kHz (median and largest are printed too)."""

from __future__ import annotations

import math
from typing import Any

from benchmarks.gpu_check.nvml_tools import observe_update_period
from benchmarks.gpu_check.records import Context, Step


def step_idle(ctx: Context, step: Step) -> None:
    """Step 2: idle power per GPU (counter, through the meter) and the update period."""
    reason = ctx.gpu_skip_reason()
    if reason:
        step.skip(reason)
        return
    measure_idle_power(ctx, step)
    period = poll_update_period(ctx, step)
    compare_with_probe_assumption(step, period)


def measure_idle_power(ctx: Context, step: Step) -> None:
    """Idle power of every visible GPU through the meter; each must be read and positive."""
    from harness.measure.meter import EnergyMeter
    from harness.measure.probes import load_probes

    idle_s = ctx.budget.idle_s
    step.say(f"measuring idle power for {idle_s:g} s (energy counter) ...")
    with EnergyMeter(load_probes(["nvml"])) as meter:
        idle_w = meter.measure_idle(idle_s)
    step.figures["idle_s"] = idle_s
    step.figures["measured_idle_power_w"] = idle_w
    missing = [d for d in ctx.gpu_domains if d not in idle_w]
    step.check(
        "every visible GPU has an idle reading",
        not missing,
        f"no valid reading for {', '.join(missing)}" if missing else ", ".join(idle_w),
    )
    for domain, power_w in idle_w.items():
        step.say(f"measured idle power {domain}: {power_w:.2f} W")
        step.check(
            f"idle power of {domain} is positive",
            math.isfinite(power_w) and power_w > 0,
            f"{power_w:.2f} W",
        )


def poll_update_period(ctx: Context, step: Step) -> dict[str, Any]:
    """Poll gpu:0's counter, print its update period; it must change and never go back."""
    b = ctx.budget
    step.say(f"polling the energy counter of gpu:0 at {b.poll_hz:g} Hz for {b.poll_s:g} s ...")
    period = observe_update_period(ctx.nvml, ctx.handle, poll_s=b.poll_s, poll_hz=b.poll_hz)
    step.figures["counter_polling"] = period
    rate = period["poll_rate_hz"] or 0.0
    step.say(
        f"{period['polls']} polls ({rate:.0f} Hz achieved), "
        f"{period['counter_changes']} counter changes"
    )
    update_s = period["update_period_s"]
    if update_s is not None:
        step.say(
            f"measured counter update period (smallest interval): {update_s * 1e3:.1f} ms; "
            f"median {period['median_update_interval_s'] * 1e3:.1f} ms, "
            f"largest {period['max_update_interval_s'] * 1e3:.1f} ms"
        )
    step.check(
        "the energy counter changes while polled",
        update_s is not None,
        f"{period['counter_changes']} changes in {period['poll_duration_s']:.2f} s",
    )
    step.check(
        "the energy counter never went backwards",
        not period["counter_went_backwards"],
        "monotonic" if not period["counter_went_backwards"] else "it decreased while polled",
    )
    return period


def compare_with_probe_assumption(step: Step, period: dict[str, Any]) -> None:
    """Note when the counter updates more slowly than the nvml probe assumes."""
    from probes.nvml import NVML_UPDATE_PERIOD_S

    step.figures["probe_assumed_update_period_s"] = NVML_UPDATE_PERIOD_S
    median_s = period["median_update_interval_s"]
    if period["update_period_s"] is not None and median_s > 1.5 * NVML_UPDATE_PERIOD_S:
        step.note(
            f"the counter updates every {median_s * 1e3:.0f} ms "
            f"(median), slower than the {NVML_UPDATE_PERIOD_S * 1e3:.0f} ms the nvml probe "
            "assumes for its short-window warning (probes/nvml.py NVML_UPDATE_PERIOD_S)"
        )
