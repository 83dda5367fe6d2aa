"""Step 4, overhead: the cost of one begin+end window pair per available probe, in
microseconds (`benchmarks.overhead.window_pair_us`). Runs without a GPU too; the nvml
part is then recorded as skipped."""

from __future__ import annotations

import sys

from benchmarks.gpu_check.records import SKIPPED, Context, Step


def step_overhead(ctx: Context, step: Step) -> None:
    """Step 4: one begin+end window pair per available probe, in microseconds."""
    from benchmarks.overhead import window_pair_us
    from harness.measure.probes import load_probes

    pairs = ctx.budget.overhead_pairs
    probes = load_probes(None)
    cuda_initialised = "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized()
    step.figures["pairs"] = pairs
    step.figures["cuda_initialised"] = cuda_initialised
    step.figures["window_pair_us"] = {}
    step.say(f"{'probe':<8} {'median_us':>10} {'p95_us':>10}  ({pairs} begin+end pairs)")
    for probe in probes:
        median_us, p95_us = window_pair_us(probe, pairs)
        step.figures["window_pair_us"][probe.name] = {"median_us": median_us, "p95_us": p95_us}
        step.say(f"{probe.name:<8} {median_us:>10.1f} {p95_us:>10.1f}")
    if cuda_initialised:
        step.note("CUDA is initialised: every window edge includes a torch.cuda.synchronize()")
    if "nvml" not in step.figures["window_pair_us"]:
        why = ctx.gpu_skip_reason() or "the nvml probe is not available"
        step.figures["nvml"] = {"status": SKIPPED, "reason": why}
        step.say(f"nvml: skipped: {why}")
    step.check(
        "at least one probe measured",
        bool(step.figures["window_pair_us"]),
        ", ".join(step.figures["window_pair_us"]) or "no probe",
    )
