"""Step 3, counter vs instant power: a bf16 matrix-product loop on cuda:0; energy from
the total-energy counter vs the integral of instantaneous power sampled over the same
window. Passes when they agree within 5 % and power was sampled often enough."""

from __future__ import annotations

from typing import Any

from benchmarks.gpu_check.nvml_tools import counter_vs_instant_power
from benchmarks.gpu_check.records import Context, Step

RATIO_TOLERANCE = 0.05  # step 3: counter and integrated power agree within 5 %
MIN_SAMPLE_HZ = 20.0  # step 3: instant power sampled at least this often


class Bf16MatmulLoad:
    """n x n bf16 matrix products on a CUDA device, `per_chunk` per call, one chunk in flight."""

    def __init__(self, n: int, device: str = "cuda:0", per_chunk: int = 8) -> None:
        import torch

        self.torch = torch
        self.a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
        self.b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
        self.c = torch.empty(n, n, device=device, dtype=torch.bfloat16)
        self.per_chunk = per_chunk
        self.flops_per_call = 2.0 * n**3 * per_chunk
        self._previous = None

    def __call__(self) -> None:
        for _ in range(self.per_chunk):
            self.torch.matmul(self.a, self.b, out=self.c)
        event = self.torch.cuda.Event()
        event.record()
        if self._previous is not None:
            self._previous.synchronize()  # keeps one chunk queued: the GPU never idles
        self._previous = event

    def finish(self) -> None:
        """Wait for every queued product."""
        self.torch.cuda.synchronize()
        self._previous = None


def step_counter_vs_power(ctx: Context, step: Step) -> None:
    """Step 3: bf16 loop; counter energy vs integrated instantaneous power, within 5 %."""
    reason = ctx.gpu_skip_reason(needs_cuda=True)
    if reason:
        step.skip(reason)
        return
    b = ctx.budget
    load = Bf16MatmulLoad(b.matmul_n)
    step.say(
        f"bf16 {b.matmul_n}x{b.matmul_n} matrix products on cuda:0: {b.warmup_s:g} s warm-up, "
        f"then a {b.load_s:g} s window; instant power sampled at {b.sample_hz:g} Hz ..."
    )
    result = counter_vs_instant_power(
        ctx.nvml,
        ctx.handle,
        duration_s=b.load_s,
        warmup_s=b.warmup_s,
        sample_hz=b.sample_hz,
        load=load,
        finish=load.finish,
    )
    window_s = result["window_s"]
    result["matmul_n"] = b.matmul_n
    result["measured_bf16_tflops"] = (
        load.flops_per_call * result["load_calls_in_window"] / window_s / 1e12
    )
    step.figures.update(result)
    report_counter_vs_power(step, result)


def report_counter_vs_power(step: Step, result: dict[str, Any]) -> None:
    """Print step 3's figures and run its checks."""
    step.say(f"instant power read with {result['power_method']}")
    if result["power_fallback"]:
        step.note("instant power fell back to nvmlDeviceGetPowerUsage: " + result["power_method"])
    if "measured_bf16_tflops" in result:
        step.say(f"measured bf16 throughput: {result['measured_bf16_tflops']:.0f} TFLOP/s")
    step.say(
        f"window {result['window_s']:.3f} s: measured energy from the counter "
        f"{result['counter_energy_j']:.1f} J ({result['counter_mean_power_w']:.1f} W mean)"
    )
    integrated = result["integrated_power_energy_j"]
    step.say(
        f"measured energy from {result['power_samples_in_window']} instant-power samples "
        f"({result['sample_rate_hz']:.1f} Hz): {integrated:.1f} J "
        f"({result['integrated_mean_power_w']:.1f} W mean)"
    )
    ratio = result["ratio_counter_to_integrated"]
    step.say(f"ratio counter / integrated: {ratio:.4f}" if ratio is not None else "no ratio")
    step.check(
        f"instant power sampled at >= {MIN_SAMPLE_HZ:g} Hz",
        (result["sample_rate_hz"] or 0) >= MIN_SAMPLE_HZ,
        f"{result['sample_rate_hz']:.1f} Hz, {result['sampler_errors']} read errors",
    )
    step.check(
        f"counter and integrated power agree within {RATIO_TOLERANCE:.0%}",
        ratio is not None and abs(ratio - 1.0) <= RATIO_TOLERANCE,
        f"ratio {ratio:.4f}" if ratio is not None else "no power samples in the window",
    )
