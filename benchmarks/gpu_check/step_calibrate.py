"""Step 6, calibrate: the small calibration microbenchmarks on the GPU, a fit, and the
errors of that fit on step 5's measured cases, leave-one-out included."""

from __future__ import annotations

import math
import statistics
from typing import Any

from benchmarks.gpu_check.records import OK, SKIPPED, Context, Step


def _count_columns(columns: Any) -> list[str]:
    """The calibration count columns among `columns` (flops*, bytes, comm_bytes*)."""
    counts = []
    for c in map(str, columns):
        if c in ("flops", "bytes") or c.startswith(("flops_", "comm_bytes")):
            if not c.endswith("_per_sample"):
                counts.append(c)
    return counts


def suite_cases_table(cases: Any) -> Any:
    """Step 5's ok cases as a calibration cases table: case, duration_s, energy_j, counts.

    Empty count cells mean none of that kind of work (cases.csv leaves unused dtypes
    empty), so they become 0. A per-dtype `flops_*` split replaces the plain `flops`.
    """
    import pandas as pd

    columns = _count_columns(cases.columns)
    if any(c.startswith("flops_") for c in columns):
        columns = [c for c in columns if c != "flops"]
    if any(c.startswith("comm_bytes_") for c in columns):
        columns = [c for c in columns if c != "comm_bytes"]
    table = pd.DataFrame(
        {
            "case": cases["case_id"].astype(str),
            "duration_s": pd.to_numeric(cases["duration_s"], errors="coerce"),
            "energy_j": pd.to_numeric(cases["energy_j"], errors="coerce"),
        }
    )
    for c in columns:
        table[c] = pd.to_numeric(cases[c], errors="coerce").fillna(0.0)
    return table


def calibration_errors(micro: Any, suite: Any) -> dict[str, Any]:
    """Fit on the microbenchmarks; errors on the suite cases (all figures: estimates).

    - `calibrated_*`: the microbenchmark fit predicting each suite case;
    - `loo_pooled_*`: each suite case predicted by a fit on every microbenchmark row and
      the other suite cases (leave-one-out, `harness.estimate.calibrate.leave_one_out`);
    - `loo_suite_only`: leave-one-out over the suite cases alone, or why it cannot run
      (it needs one more case than coefficients).
    """
    from harness.estimate.calibrate import fit_cases

    fit = fit_cases(micro)
    out: dict[str, Any] = {"microbenchmark_fit": _fit_figures(fit)}
    if suite is None or len(suite) == 0:
        out["cases"] = []
        out["note"] = "no suite case to hold the calibration against"
        return out
    counts = [c for c in suite.columns if c not in ("case", "energy_j")]
    predicted = sum(fit.coefficients.get(c, 0.0) * suite[c] for c in counts)
    unfitted = [c for c in counts if c not in fit.coefficients and suite[c].abs().sum() > 0]
    loo = _loo_pooled(micro, suite)
    alone, out["loo_suite_only"] = _loo_suite_only(suite)
    if unfitted:
        out["calibrated_note"] = (
            f"the microbenchmarks do not exercise {', '.join(unfitted)}: the calibrated "
            "estimate counts that work as free"
        )
    rows = _error_rows(suite, predicted, loo, alone)
    out["cases"] = rows
    out["median_abs_calibrated_error_pct"] = statistics.median(
        abs(r["calibrated_error_pct"]) for r in rows
    )
    out["median_abs_loo_pooled_error_pct"] = statistics.median(
        abs(r["loo_pooled_error_pct"]) for r in rows
    )
    return out


def _fit_figures(fit: Any) -> dict[str, Any]:
    """A calibration fit's coefficients, their units, what it left undetermined, its residual."""
    return {
        "coefficients": fit.coefficients,
        "coefficient_units": {f.column: f"J per {f.unit}" for f in fit.features},
        "undetermined": list(fit.undetermined),
        "rms_residual_pct": fit.rms_residual_pct,
    }


def _loo_pooled(micro: Any, suite: Any) -> Any:
    """Leave-one-out over the microbenchmarks and suite cases together; the suite's rows."""
    import pandas as pd

    from harness.estimate.calibrate import leave_one_out

    pooled = pd.concat([micro, suite], ignore_index=True)
    pooled_counts = _count_columns(pooled.columns)
    pooled[pooled_counts] = pooled[pooled_counts].fillna(0.0)
    pooled = pooled[["case", "duration_s", "energy_j", *pooled_counts]]
    return leave_one_out(pooled).iloc[len(micro) :].reset_index(drop=True)


def _loo_suite_only(suite: Any) -> tuple[Any, dict[str, Any]]:
    """(leave-one-out over the suite cases alone or None, its figures or why it cannot run)."""
    from harness.errors import EnergyHarnessError
    from harness.estimate.calibrate import leave_one_out

    try:
        alone = leave_one_out(suite)
    except EnergyHarnessError as exc:
        return None, {"status": SKIPPED, "reason": str(exc)}
    return alone, {"status": OK, "loo_error_pct": list(alone["loo_error_pct"])}


def _error_rows(suite: Any, predicted: Any, loo: Any, alone: Any) -> list[dict[str, Any]]:
    """Per suite case: measured energy, the calibrated and leave-one-out estimates, errors."""
    rows = []
    for i in range(len(suite)):
        measured = float(suite["energy_j"].iloc[i])
        rows.append(
            {
                "case": suite["case"].iloc[i],
                "measured_energy_j": measured,
                "calibrated_estimate_energy_j": float(predicted.iloc[i]),
                "calibrated_error_pct": 100.0 * (float(predicted.iloc[i]) - measured) / measured,
                "loo_pooled_estimate_energy_j": float(loo["loo_predicted_energy_j"].iloc[i]),
                "loo_pooled_error_pct": float(loo["loo_error_pct"].iloc[i]),
                "loo_suite_only_error_pct": (
                    float(alone["loo_error_pct"].iloc[i]) if alone is not None else None
                ),
            }
        )
    return rows


def step_calibrate(ctx: Context, step: Step) -> None:
    """Step 6: small calibration on the GPU; leave-one-out error of the step-5 cases."""
    reason = ctx.gpu_skip_reason(needs_cuda=True)
    if reason:
        step.skip(reason)
        return
    calibrate_against_suite(ctx, step, "cuda")


def calibrate_against_suite(ctx: Context, step: Step, device_name: str) -> None:
    """Small microbenchmarks on `device_name`, a fit, and its errors on `ctx.suite_cases`."""
    try:
        from harness.estimate.microbench import (  # noqa: F401  (has calibration landed?)
            plan_microbenchmarks,
            run_microbenchmarks,
        )
    except ImportError as exc:
        step.skip(f"calibration has not landed ({exc})")
        return
    micro = measure_microbenchmarks(ctx, step, device_name)
    step.figures["microbenchmarks"] = micro.to_dict(orient="records")
    suite = suite_cases_table(ctx.suite_cases) if ctx.suite_cases is not None else None
    result = calibration_errors(micro, suite)
    step.figures.update(result)
    report_fit(step, result)
    report_case_errors(step, result)


def measure_microbenchmarks(ctx: Context, step: Step, device_name: str) -> Any:
    """Plan and run the small microbenchmarks on `device_name`; the rows with valid
    energy, as a calibration cases table (case, duration_s, energy_j, counts)."""
    import torch

    from harness.estimate.microbench import plan_microbenchmarks, run_microbenchmarks
    from harness.measure.meter import EnergyMeter
    from harness.measure.probes import load_probes

    b = ctx.budget
    device = torch.device(device_name)
    probes = ctx.measuring_probes()
    step.figures["probes"] = probes
    benches = plan_microbenchmarks(device, small=True)
    step.say(
        f"calibrate --small on {device}: idle {b.calibrate_idle_s:g} s + {len(benches)} "
        f"microbenchmarks x {b.calibrate_rounds} round(s) of {b.calibrate_seconds:g} s, "
        f"probes {', '.join(probes)}"
    )

    def show(row: dict[str, Any]) -> None:
        step.say(
            f"  measured {row['case']}: {row['duration_s']:.2f} s, {row['energy_j']:.2f} J "
            f"({row['energy_source']})"
        )

    with EnergyMeter(load_probes(probes)) as meter:
        table = run_microbenchmarks(
            meter,
            device,
            benches,
            seconds=b.calibrate_seconds,
            idle_s=b.calibrate_idle_s,
            rounds=b.calibrate_rounds,
            on_row=show,
        )
    bad = table["energy_j"].isna() | (table["energy_j"] <= 0)
    if bad.any():
        step.note(f"dropped microbenchmark rows without valid energy: {list(table.case[bad])}")
    micro = table[~bad].reset_index(drop=True)
    return micro[["case", "duration_s", "energy_j", *_count_columns(micro.columns)]]


def report_fit(step: Step, result: dict[str, Any]) -> None:
    """Print the fit's coefficients and residual, and note what it could not cover."""
    fit = result["microbenchmark_fit"]
    for column, value in fit["coefficients"].items():
        step.say(f"estimate (fit): {column}: {value:.4g} {fit['coefficient_units'][column]}")
    step.say(f"fit rms residual over the microbenchmarks: {fit['rms_residual_pct']:.1f} %")
    if result.get("calibrated_note"):
        step.note(result["calibrated_note"])
    loo_alone = result.get("loo_suite_only", {})
    if loo_alone.get("status") == SKIPPED:
        step.note(f"leave-one-out over the suite cases alone: {loo_alone['reason']}")


def report_case_errors(step: Step, result: dict[str, Any]) -> None:
    """A table of each suite case's errors; every case needs a leave-one-out error."""
    step.say(
        f"{'case':<48} {'measured J':>11} {'calibrated J':>13} {'err %':>7} "
        f"{'LOO pooled J':>13} {'LOO err %':>9}"
    )
    for r in result["cases"]:
        step.say(
            f"{r['case']:<48} {r['measured_energy_j']:>11.2f} "
            f"{r['calibrated_estimate_energy_j']:>13.2f} {r['calibrated_error_pct']:>+7.1f} "
            f"{r['loo_pooled_estimate_energy_j']:>13.2f} {r['loo_pooled_error_pct']:>+9.1f}"
        )
    if result["cases"]:
        step.say(
            f"median |error|: calibrated {result['median_abs_calibrated_error_pct']:.1f} %, "
            f"leave-one-out (pooled) {result['median_abs_loo_pooled_error_pct']:.1f} %"
        )
    step.check(
        "leave-one-out error computed for every measured suite case",
        bool(result["cases"])
        and all(math.isfinite(r["loo_pooled_error_pct"]) for r in result["cases"]),
        f"{len(result['cases'])} case(s)" if result["cases"] else result.get("note", ""),
    )
