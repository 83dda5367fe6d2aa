"""Run directories: `results/<run-id>/` with its CSVs, environment and report."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from harness.errors import EnergyHarnessError

RUN_FILES = ("measurements.csv", "cases.csv", "environment.json", "power_timeline.csv")


def new_run_id(now: datetime | None = None) -> str:
    """A sortable run id from the UTC time, e.g. 20261128T190501Z."""
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def create_run_dir(out: Path | None, results_root: Path = Path("results")) -> Path:
    """A fresh run directory: `out` (must be empty or absent) or results/<run-id>[-N]."""
    if out is not None:
        out = Path(out)
        if out.exists() and any(out.iterdir()):
            raise EnergyHarnessError(
                f"--out {out} already holds files; choose an empty directory, or continue "
                f"that run with `energy-harness run --resume {out}`"
            )
        out.mkdir(parents=True, exist_ok=True)
        return out
    base = results_root / new_run_id()
    candidate, n = base, 1
    while True:
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")
