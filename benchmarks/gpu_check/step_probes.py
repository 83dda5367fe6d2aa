"""Step 1, probes: what `energy-harness probes` lists; the nvml probe is available and
every visible GPU has the total-energy counter. Finds gpu:0's NVML handle for the later
steps."""

from __future__ import annotations

from dataclasses import asdict

from benchmarks.gpu_check.records import NO_GPU, Context, Step


def step_probes(ctx: Context, step: Step) -> None:
    """Step 1: the probe listing; nvml available with the energy counter on every GPU."""
    from harness.measure.probes import load_probes, probe_statuses
    from probes.base import ProbeOptions

    rows = probe_statuses(ProbeOptions())
    step.figures["probes"] = [asdict(r) for r in rows]
    step.say(f"{'probe':<8} {'available':<9} {'source':<8} domains / why not")
    for r in rows:
        detail = ", ".join(r.domains) if r.available else r.reason
        step.say(f"{r.name:<8} {'yes' if r.available else 'no':<9} {r.source:<8} {detail}")
    ctx.rapl_available = any(r.name == "rapl" and r.available for r in rows)
    if ctx.no_gpu_reason:
        step.skip(f"{NO_GPU}: {ctx.no_gpu_reason} (the listing above still ran)")
        return
    nvml_row = next((r for r in rows if r.name == "nvml"), None)
    if nvml_row is None:
        detail = "the nvml probe is not registered (is the project installed?)"
    else:
        detail = "available" if nvml_row.available else nvml_row.reason
    if not step.check("nvml probe available", bool(nvml_row and nvml_row.available), detail):
        return
    (probe,) = load_probes(["nvml"])
    info = probe.info()
    probe.close()
    gpus = list(info.get("gpus", []))
    step.figures["driver_version"] = info.get("driver_version")
    step.figures["gpus"] = gpus
    for gpu in gpus:
        step.say(f"{gpu['domain']}: {gpu['name']} (NVML index {gpu['nvml_index']})")
    counters = [g for g in gpus if g.get("energy_counter")]
    if not step.check(
        "energy counter supported on every visible GPU",
        bool(gpus) and len(counters) == len(gpus),
        f"{len(counters)} of {len(gpus)} GPU(s) answer nvmlDeviceGetTotalEnergyConsumption",
    ):
        return
    ctx.gpu_domains = [g["domain"] for g in gpus]
    ctx.handle = ctx.nvml.nvmlDeviceGetHandleByIndex(int(gpus[0]["nvml_index"]))
