"""Step 5, gpu suite subset: resnet18, batch 256, inference, dense vs structured vs 2:4 vs
magnitude-90 % through `run_suite` with probes nvml (+ rapl where readable), reduced
repetitions and windows: measured and estimated joules per sample, and the error. Keeps
the measured cases for step 6."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.gpu_check.records import FAILED, OK, SKIPPED, Budget, Context, Step, finite
from harness.spec.variants import CONTROL_LABEL

# Step 5: the resnet18 / batch 256 / inference part of the bundled `gpu` suite, with
# fewer repetitions and shorter windows. Placeholders: repetitions, windows, probes.
SUITE_TEXT = """\
[suite]
name = "gpu-check"
description = "gpu_check step 5: resnet18 at batch 256, inference, four variants"
dataset = "synthetic"
repetitions = {repetitions}
warmup_iterations = 5
min_window_s = {min_window_s}
idle_baseline_s = {idle_s}
timeline_hz = 0.0
seed = 0
train_epochs = 1
finetune_epochs = 0
batch_sizes = [256]
modes = ["inference"]
devices = ["cuda"]
probes = {probes}

[[models]]
name = "resnet18"
variants = [
    "dense",
    {{ name = "structured", ratio = 0.5 }},
    "semi-structured-2:4",
    {{ name = "magnitude", sparsity = 0.9 }},
]
"""


def suite_text(budget: Budget, probes: list[str]) -> str:
    """The TOML of step 5's suite (resnet18, batch 256, inference, four variants)."""
    return SUITE_TEXT.format(
        repetitions=budget.suite_repetitions,
        min_window_s=float(budget.suite_min_window_s),
        idle_s=float(budget.suite_idle_s),
        probes=json.dumps(probes),
    )


def suite_case_figures(run_dir: Path) -> tuple[list[dict[str, Any]], Any]:
    """Per case of a finished run: measured and estimated J/sample; and the ok rows."""
    import pandas as pd

    cases = pd.read_csv(run_dir / "cases.csv")
    gpu_per_sample = _gpu_energy_per_sample(pd.read_csv(run_dir / "measurements.csv"))
    out = []
    for _, row in cases.iterrows():
        per_domain = {
            domain: float(value)
            for (case_id, domain), value in gpu_per_sample.items()
            if case_id == row["case_id"]
        }
        out.append(_case_figures(row, per_domain))
    energy = pd.to_numeric(cases.get("energy_j"), errors="coerce")
    control = cases.get("variant", pd.Series(dtype=str)).astype(str) == CONTROL_LABEL
    ok = cases[(cases["status"] == "ok") & energy.notna() & (energy > 0) & ~control]
    return finite(out), ok.reset_index(drop=True)  # the A/A control is dense again: not fitted


def _gpu_energy_per_sample(measurements: Any) -> Any:
    """Mean J/sample of the valid, undisturbed GPU measurements, by (case_id, domain)."""
    valid = measurements["valid"].astype(str).str.lower() == "true"
    if "disturbed" in measurements:
        valid &= measurements["disturbed"].astype(str).str.lower() != "true"
    gpu = measurements[measurements["domain"].astype(str).str.startswith("gpu:") & valid]
    return gpu.groupby(["case_id", "domain"])["energy_j_per_sample"].mean()


def _case_figures(row: Any, per_domain: dict[str, float]) -> dict[str, Any]:
    """One cases.csv row as step 5's figures; `per_domain`: its GPU J/sample per domain."""
    return {
        "case_id": row["case_id"],
        "variant": row["variant"],
        "status": row["status"],
        "error": row["error"] if isinstance(row["error"], str) else "",
        "measured_source": row.get("measured_source"),
        "repetitions": row.get("n"),
        "measured_energy_j_per_sample": row.get("energy_j_per_sample_mean"),
        "measured_energy_j_per_sample_std": row.get("energy_j_per_sample_std"),
        "measured_dynamic_energy_j_per_sample": row.get("dynamic_energy_j_per_sample_mean"),
        "measured_gpu_energy_j_per_sample": per_domain,
        "estimated_energy_j_per_sample_dense_hw": row.get("est_dense_hw_energy_j_per_sample"),
        "estimated_energy_j_per_sample_sparse_ideal": row.get(
            "est_sparse_ideal_energy_j_per_sample"
        ),
        "estimate_profile": row.get("estimate_profile"),
        "estimate_error_pct": row.get("estimate_error_pct"),
        "latency_s_per_batch": row.get("latency_s_per_batch"),
        "throughput_samples_per_s": row.get("throughput_samples_per_s"),
        "sparsity": row.get("sparsity"),
        "nonzero_params": row.get("nonzero_params"),
    }


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def step_suite(ctx: Context, step: Step) -> None:
    """Step 5: the gpu-suite subset through run_suite; measured vs estimated J/sample."""
    reason = ctx.gpu_skip_reason(needs_cuda=True)
    if reason:
        step.skip(reason)
        return
    from harness.spec.suite import load_suite, parse_suite

    probes = ctx.measuring_probes()
    ctx.suite_probes = probes
    text = suite_text(ctx.budget, probes)
    bundled = {c.case_id for c in load_suite("gpu").cases}
    missing = [c.case_id for c in parse_suite(text, "step 5").cases if c.case_id not in bundled]
    if missing:
        step.note(f"cases not in the bundled gpu suite (did it change?): {', '.join(missing)}")
    measure_suite(ctx, step, text, counters_only=True)


def measure_suite(ctx: Context, step: Step, text: str, *, counters_only: bool) -> None:
    """Run a suite (TOML `text`) with run_suite and report each case of its cases.csv.

    Step 5 passes the resnet18 subset; a test passes a tiny CPU suite to exercise the
    plumbing. `counters_only`: check that every measured total came from counters.
    """
    run_dir = run_suite_here(ctx, step, text)
    rows, ok = suite_case_figures(run_dir)
    step.figures["cases"] = rows
    ctx.suite_cases = ok
    print_cases(step, rows)
    check_cases(step, rows, counters_only=counters_only)


def run_suite_here(ctx: Context, step: Step, text: str) -> Path:
    """Run the suite under `ctx.run_dir` (else a new temporary folder); its run folder."""
    from rich.console import Console

    from harness.run.options import RunOptions
    from harness.run.runner import run_suite
    from harness.spec.suite import parse_suite

    suite = parse_suite(text, "gpu_check step 5")
    probes = list(suite.settings.probes)
    base = ctx.run_dir or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    step.figures["run_dir"] = str(base / "run")
    step.figures["probes"] = probes
    step.figures["suite_toml"] = text
    s = suite.settings
    step.say(
        f"{len(suite.cases)} cases, {s.repetitions} repetition(s), windows >= "
        f"{s.min_window_s:g} s, probes {', '.join(probes)}; run in {base / 'run'}"
    )
    return run_suite(
        suite,
        RunOptions(cache_dir=base / "cache"),
        out=base / "run",
        console=Console(file=sys.stdout, width=120),
    )


def print_cases(step: Step, rows: list[dict[str, Any]]) -> None:
    """A table of the cases: measured, GPU and estimated J/sample, and the error."""
    step.say(
        f"{'variant':<28} {'status':<8} {'measured J/sample':>18} {'gpu J/sample':>13} "
        f"{'estimated J/sample':>19} {'error %':>8}"
    )
    for r in rows:
        gpu_j = sum(r["measured_gpu_energy_j_per_sample"].values()) or None
        step.say(
            f"{r['variant']:<28} {r['status']:<8} "
            f"{_fmt(r['measured_energy_j_per_sample'], '.4g'):>18} {_fmt(gpu_j, '.4g'):>13} "
            f"{_fmt(r['estimated_energy_j_per_sample_dense_hw'], '.4g'):>19} "
            f"{_fmt(r['estimate_error_pct'], '+.1f'):>8}"
        )
        if r["status"] != OK:
            step.say(f"  {r['variant']}: {r['status']}: {r['error']}")
    step.note(
        "measured = the run's total (in-total domains, source in measured_source); "
        "estimated = the dense-hw analytic estimate (est_dense_hw_energy_j_per_sample); "
        "error % = estimate_error_pct of cases.csv (dynamic vs dynamic when an idle "
        "baseline was measured)"
    )


def check_cases(step: Step, rows: list[dict[str, Any]], *, counters_only: bool) -> None:
    """No case failed; with `counters_only`, every measured total came from counters."""
    failed = [r["variant"] for r in rows if r["status"] == FAILED]
    skipped = [f"{r['variant']} ({r['error']})" for r in rows if r["status"] == SKIPPED]
    if skipped:
        step.note("skipped cases: " + "; ".join(skipped))
    step.check("no case failed", not failed, ", ".join(failed) or f"{len(rows)} cases")
    sources = sorted({str(r["measured_source"]) for r in rows if r["status"] == OK})
    if counters_only:
        step.check(
            "measured totals come from hardware counters",
            bool(sources) and all(s == "counter" for s in sources),
            "measured_source: " + (", ".join(sources) or "none"),
        )
