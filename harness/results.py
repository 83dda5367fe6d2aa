"""Run directories and their CSV files: stable columns with units, rows appended at once.

A run directory holds `measurements.csv` (one row per case x repetition x domain),
`cases.csv` (one row per case), `environment.json`, and optionally
`power_timeline.csv` and `report.html`. Every row is written and flushed as soon as
it exists, so an interrupted run keeps everything it finished.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError

MEASUREMENT_COLUMNS = [
    "run_id",
    "case_id",
    "model",
    "variant",
    "mode",
    "batch_size",
    "device",
    "node",
    "rank",
    "repetition",
    "probe",
    "domain",
    "source",
    "in_total",
    "start_utc",
    "duration_s",
    "iterations",
    "samples",
    "energy_j",
    "idle_power_w",
    "dynamic_energy_j",
    "energy_j_per_sample",
    "valid",
    "note",
]

ACCOUNTINGS = ("dense-hw", "sparse-ideal", "nonzero-params")
_ESTIMATE_PARTS = ("energy_j_per_sample", "compute_j", "storage_j", "communication_j", "static_j")

CASE_COLUMNS = [
    "run_id",
    "case_id",
    "model",
    "dataset",
    "variant",
    "variant_params",
    "mode",
    "batch_size",
    "device",
    "status",
    "error",
    "accuracy",
    "params",
    "nonzero_params",
    "sparsity",
    "dense_bytes",
    "nonzero_bytes",
    "flops_per_sample",
    "bytes_per_sample",
    "latency_s_per_batch",
    "throughput_samples_per_s",
    "measured_source",
    "n",
    "energy_j_per_sample_mean",
    "energy_j_per_sample_std",
    "energy_j_per_sample_ci95_low",
    "energy_j_per_sample_ci95_high",
    "dynamic_energy_j_per_sample_mean",
    "estimate_profile",
    # estimates per accounting; the `nonzero-params` proxy is the nonzero_params count
    *[f"est_{acc.replace('-', '_')}_{part}" for acc in ACCOUNTINGS[:2] for part in _ESTIMATE_PARTS],
    "estimate_error_pct",
    # one measured window (mean over repetitions) and its counts, for `calibrate --from`
    "iterations",
    "duration_s",
    "energy_j",
    "energy_source",
    "estimated_energy_j",
    "flops",
    *[f"flops_{dtype}" for dtype in ("fp64", "fp32", "fp16", "bf16", "int32", "int8")],
    "bytes",
    "comm_bytes",
    "comm_bytes_host_to_device",
    "comm_bytes_interconnect",
    "co2_g_per_1000_samples",
    "carbon_intensity_g_per_kwh",
    "pue",
    "peer_energy_j_per_sample",
    "started_utc",
    "finished_utc",
    "world_size",  # ddp-training: ranks over all nodes (empty for single-process cases)
]

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


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(float(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class CsvAppender:
    """Appends rows with fixed columns to a CSV, flushing and fsyncing each one."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path = Path(path)
        self.columns = columns
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists:
            with self.path.open(newline="") as handle:
                header = next(csv.reader(handle), [])
            if header != columns:
                raise EnergyHarnessError(
                    f"{self.path} has columns {header[:4]}..., not this version's; "
                    "resume it with the energy-harness version that started it"
                )
        self._handle = self.path.open("a", newline="")
        self._writer = csv.writer(self._handle)
        if not exists:
            self._writer.writerow(columns)
            self._flush()

    def _flush(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def append(self, row: dict[str, Any]) -> None:
        """Write one row now; unknown keys are an error, missing ones are empty."""
        extra = set(row) - set(self.columns)
        if extra:
            raise KeyError(f"unknown columns for {self.path.name}: {sorted(extra)}")
        self._writer.writerow([_cell(row.get(c)) for c in self.columns])
        self._flush()

    def append_many(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.append(row)

    def close(self) -> None:
        self._handle.close()


def read_rows(path: Path) -> list[dict[str, str]]:
    """All rows of a CSV as dicts of strings ([] if the file is absent)."""
    if not Path(path).exists():
        return []
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (a temporary file, then rename)."""
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
