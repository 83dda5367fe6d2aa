"""Calibration workflows: fit a profile to a finished suite run, or to microbenchmarks
measured on this machine. They return what they found; `energy-harness calibrate` prints it.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError
from harness.estimate.calibrate import FitResult, fit_cases, fit_to_profile, leave_one_out
from harness.estimate.error import estimate_error_pct
from harness.estimate.profiles import write_profile
from harness.measure.sources import energy_label
from harness.spec.variants import CONTROL_LABEL
from probes.base import Probe


def default_profile_path(name: str) -> Path:
    """Where a calibrated profile goes unless the user says: results/calibration/NAME.toml."""
    return Path("results") / "calibration" / f"{name}.toml"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def coefficients(fit: FitResult) -> dict[str, dict[str, object]]:
    """Fitted coefficients, JSON-ready: W for static power, pJ per unit otherwise."""
    out = {}
    for f in fit.features:
        value = fit.coefficients[f.column]
        spread = fit.stderr_pct(f.column)
        out[f.column] = {
            "part": f.part,
            "key": f.key,
            "value": value * (1 if f.part == "static" else 1e12),
            "unit": "W" if f.part == "static" else f"pJ/{f.unit}",
            "stderr_pct": None if spread is None or math.isnan(spread) else spread,
        }
    return out


@dataclass(frozen=True)
class RunCalibration:
    """A fit to a suite run's cases and each case's leave-one-out error."""

    run_dir: Path
    fit: FitResult
    loo: Any  # DataFrame: case, energy_j, fitted/LOO predicted energy, errors in %
    sources: set[str]
    dropped: list[str]
    profile_path: Path | None

    @property
    def median_abs_loo_error_pct(self) -> float:
        return float(self.loo["loo_error_pct"].abs().median())


def _read_cases(run_dir: Path) -> tuple[Any, list[str]]:
    """cases.csv of a run with a valid energy_j, and the names of the cases dropped (the
    A/A control, dense measured a second time, is not fitted twice)."""
    import pandas as pd

    path = run_dir / "cases.csv"
    if not path.is_file():
        raise EnergyHarnessError(
            f"no cases.csv in {run_dir}; give the directory of a finished suite run "
            "(cases.csv needs duration_s, energy_j and count columns flops, bytes, comm_bytes)"
        )
    try:
        cases = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise EnergyHarnessError(f"cannot read {path}: {exc}") from exc
    if "case" not in cases and "case_id" in cases:  # a suite run names its cases case_id
        cases["case"] = cases["case_id"]
    if "variant" in cases:  # the A/A control is dense measured again: not a case to fit
        cases = cases[cases["variant"] != CONTROL_LABEL].reset_index(drop=True)
    if "energy_j" not in cases:
        return cases, []
    energy = pd.to_numeric(cases["energy_j"], errors="coerce")
    bad = energy.isna() | (energy <= 0)
    names = cases["case"] if "case" in cases else cases.index
    if len(cases) and bad.all():
        zero = int((energy == 0).sum())
        raise EnergyHarnessError(
            f"{path}: no case has an energy_j above zero ({zero} of {len(cases)} are zero, "
            "the others empty): there is no measured energy to fit; run the suite where a "
            "probe measures energy (`energy-harness probes`), then calibrate from that run"
        )
    return cases[~bad].reset_index(drop=True), [str(c) for c in names[bad]]


def calibrate_from_run(
    run_dir: Path, out: Path | None, *, target: str, flops_dtype: str, memory_level: str
) -> RunCalibration:
    """Fit on a run's cases.csv, leave-one-out error per case; write a profile to `out`."""
    import pandas as pd

    cases, dropped = _read_cases(run_dir)
    fit = fit_cases(cases, flops_dtype=flops_dtype, memory_level=memory_level)
    loo = leave_one_out(cases, flops_dtype=flops_dtype, memory_level=memory_level)
    loo["fitted_energy_j"] = fit.rows["fitted_energy_j"].to_numpy()
    if "estimated_energy_j" in cases.columns:
        est = pd.to_numeric(cases["estimated_energy_j"], errors="coerce").to_numpy()
        loo["prior_estimate_error_pct"] = [
            math.nan if error is None else error
            for error in map(estimate_error_pct, est, loo["energy_j"])
        ]
    sources = set(cases["energy_source"].astype(str)) if "energy_source" in cases else set()
    written = None
    if out is not None:
        label = energy_label(sources) if sources else "of unrecorded source"
        profile = fit_to_profile(
            fit,
            name=out.stem,
            description=f"fitted to the suite run {run_dir.name}",
            target=target,
            host_to_device_inputs=target == "gpu",
            provenance=f"{len(cases)} cases of the suite run {run_dir} (energy {label}), "
            f"fitted {_now()}",
            extra_fit={"loo_error_pct": [float(x) for x in loo["loo_error_pct"]]},
        )
        written = write_profile(
            profile, out, header=f"Written by energy-harness calibrate --from {run_dir}"
        )
    return RunCalibration(run_dir, fit, loo, sources, dropped, written)


@dataclass(frozen=True)
class MachineCalibration:
    """A fit to microbenchmark windows measured on this machine, and the profile written."""

    device: str
    windows: Any  # DataFrame of the valid windows
    fit: FitResult
    sources: set[str]
    dropped: list[str]
    profile_path: Path
    probes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return energy_label(self.sources)


def calibrate_machine(
    probes: list[Probe],
    device_name: str | None,
    out: Path | None,
    *,
    seconds: float,
    idle_s: float,
    rounds: int,
    name: str | None,
    small: bool,
    on_start: Callable[[str, int], None] | None = None,
    on_row: Callable[[dict[str, object]], None] | None = None,
) -> MachineCalibration:
    """Measure idle and microbenchmark windows with `probes`, fit, write a profile."""
    import torch

    from harness.estimate.microbench import (
        achieved_rates,
        plan_microbenchmarks,
        run_microbenchmarks,
    )
    from harness.measure.meter import EnergyMeter

    device = torch.device(device_name or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EnergyHarnessError("--device cuda: no CUDA device is available; use --device cpu")
    host = socket.gethostname()
    name = name or f"calibrated-{host}-{device.type}"
    benches = plan_microbenchmarks(device, small=small)
    if on_start is not None:
        on_start(str(device), len(benches))
    with EnergyMeter(probes) as meter:
        table = run_microbenchmarks(
            meter, device, benches, seconds=seconds, idle_s=idle_s, rounds=rounds, on_row=on_row
        )
    bad = table["energy_j"].isna() | (table["energy_j"] <= 0)
    if bad.all():
        raise EnergyHarnessError(
            "no microbenchmark window got a valid energy reading; check `energy-harness probes`"
        )
    dropped = list(table.loc[bad, "case"])
    table = table[~bad].reset_index(drop=True)
    sources = set(table["energy_source"].astype(str))
    fit = fit_cases(table, memory_level="dram" if device.type == "cpu" else "device-memory")
    device_text = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    probe_names = [p.name for p in probes]
    profile = fit_to_profile(
        fit,
        name=name,
        description=f"calibrated on {host} ({device_text})",
        target="gpu" if device.type == "cuda" else "cpu",
        host_to_device_inputs=device.type == "cuda",
        provenance=f"{len(table)} microbenchmark windows on {host} ({device_text}) at {_now()}, "
        f"probes {', '.join(probe_names)}, energy {energy_label(sources)}",
        rates=achieved_rates(table),
        extra_fit={"energy_source": sorted(sources), "dropped_windows": dropped},
    )
    written = write_profile(
        profile,
        out or default_profile_path(name),
        header=f"Written by energy-harness calibrate on {host}",
    )
    return MachineCalibration(str(device), table, fit, sources, dropped, written, probe_names)
