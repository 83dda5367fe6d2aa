"""A small finished run written by hand (cases.csv, measurements.csv, a timeline and an
environment), for the report's tests and the browser test."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from harness.rows.columns import CASE_COLUMNS, MEASUREMENT_COLUMNS
from harness.rows.csvfile import CsvAppender, read_rows

EVIL = "<script>alert(1)</script>"
PNG_RE = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')

# (model, variant, mode, accuracy, J/sample, source) -> cases c1..c7, all status ok; their
# 95 % intervals in cases.csv are the mean -10 % .. +10 %
CASES = [
    ("lenet5", "dense", "inference", 0.990, 2.0e-3, "counter"),
    ("lenet5", "magnitude-90", "inference", 0.970, 1.9e-3, "counter"),  # dominated by c3
    ("lenet5", "int8", "inference", 0.985, 1.0e-3, "counter"),
    ("lenet5", "structured", "inference", 0.950, 0.8e-3, "counter"),
    ("lenet5", "dense", "training", 0.990, 6.0e-3, "counter"),
    ("lenet5", "magnitude-50", "training", 0.980, 7.0e-3, "counter"),  # c5 better within noise
    ("lenet5", "int8", "training", 0.970, 5.0e-3, "model"),
]
SAMPLES = 64
START = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)


def at(seconds: float) -> str:
    """The run's clock: `seconds` after START, UTC ISO-8601."""
    return (START + timedelta(seconds=seconds)).isoformat()


def domain_rows(case_id: str, per_sample: float, source: str, rep: int) -> list[dict]:
    """In-total rows whose energies add up to per_sample x SAMPLES, plus a non-total row."""
    base = {"run_id": "run1", "case_id": case_id, "repetition": rep, "samples": SAMPLES}
    base |= {"in_total": True, "valid": True, "duration_s": 1.0}
    if source == "model":
        parts = [("model", "cpu:model", 0.8), ("model", "ram:model", 0.2)]
    else:
        parts = [("rapl", "cpu:package-0", 0.7), ("rapl", "cpu:dram-0", 0.3)]
    rows = [
        {**base, "probe": p, "domain": d, "source": source, "energy_j": per_sample * s * SAMPLES}
        for p, d, s in parts
    ]
    rows.append({**base, "probe": "rapl", "domain": "cpu:core-0", "in_total": False})
    rows[-1] |= {"source": "counter", "energy_j": 1e6}  # a child zone: never added
    return rows


# the simulated columns an inference case gets on a suite's `simulate` accelerator:
# SIMULATED energy per sample is this fraction of the case's measured mean
SIMULATED_FRACTION = 0.25


def simulated_row(row: dict) -> dict:
    """`row` (a cases.csv row of an inference case) with its simulated columns."""
    from harness.rows.simulated import simulated_columns

    figures = {
        "simulated_accelerator": "edge-systolic-64",
        "simulated_energy_j_per_sample": row["energy_j_per_sample_mean"] * SIMULATED_FRACTION,
        "simulated_sparse_ideal_energy_j_per_sample": 1e-5,
        "simulated_cycles": 4393,
    }
    return row | simulated_columns(figures, row)


def make_run(
    run_dir: Path, *, timeline: bool = True, environment: bool = True, simulated: bool = False
) -> Path:
    run_dir.mkdir(parents=True)
    measurements = CsvAppender(run_dir / "measurements.csv", MEASUREMENT_COLUMNS)
    cases = CsvAppender(run_dir / "cases.csv", CASE_COLUMNS)
    for i, (model, variant, mode, acc, per_sample, source) in enumerate(CASES, start=1):
        case_id = f"c{i}"
        meta = {"model": model, "variant": variant, "mode": mode, "batch_size": SAMPLES}
        for rep, factor in enumerate((0.99, 1.01)):
            for row in domain_rows(case_id, per_sample * factor, source, rep):
                measurements.append({**row, **meta, "device": "cpu"})
        row = {
            "run_id": "run1",
            "case_id": case_id,
            **meta,
            "dataset": "digits",
            "precision": "fp32",
            "device": "cpu",
            "status": "ok",
            "params_removed": 0.25,
            "accuracy": acc,
            "sparsity": 0.5,
            "measured_source": source,
            "n": 2,
            "est_dense_hw_energy_j_per_sample": 1.5e-3,
            "est_sparse_ideal_energy_j_per_sample": 0.5e-3,
            "est_dense_hw_compute_j": 1.0e-3,
            "est_dense_hw_storage_j": 0.4e-3,
            "est_dense_hw_communication_j": 0.0,
            "est_dense_hw_static_j": 0.1e-3,
            "co2_g_per_1000_samples": per_sample * 1000 / 3.6e6 * 56,
            "started_utc": at(0.25 * i),
            "finished_utc": at(0.25 * i + 0.2),
            "carbon_intensity_g_per_kwh": 56.0,
            "pue": 1.0,
        }
        if i == 5:  # case #5 was measured beside other jobs
            row["stable"] = False
            row["unstable_reason"] = "other processes used up to 48 % of the CPUs <busy>"
        if i != 2:  # case #2: the mean comes from measurements.csv instead
            row["energy_j_per_sample_mean"] = per_sample
            row["energy_j_per_sample_ci95_low"] = per_sample * 0.9
            row["energy_j_per_sample_ci95_high"] = per_sample * 1.1
            if simulated and mode == "inference":
                row = simulated_row(row)
        cases.append(row)
    cases.append(
        {
            "run_id": "run1",
            "case_id": "c8",
            "model": EVIL,
            "variant": "dense",
            "mode": "inference",
            "status": "failed",
            "error": "RuntimeError: CUDA out of memory <b>boom</b>",
        }
    )
    cases.append(
        {
            "run_id": "run1",
            "case_id": "c9",
            "model": "lenet5",
            "dataset": "digits",
            "variant": "semi-structured-2:4",
            "mode": "inference",
            "batch_size": SAMPLES,
            "device": "cpu",
            "precision": "fp32",
            "status": "skipped",
            "error": "variant 'semi-structured-2:4' skipped: 2:4 sparse kernels need a CUDA GPU",
        }
    )
    measurements.close()
    cases.close()
    if timeline:
        t = CsvAppender(
            run_dir / "power_timeline.csv",
            ["time_utc", "elapsed_s", "probe", "domain", "source", "power_w"],
        )
        for k in range(20):
            t.append({"elapsed_s": k * 0.1, "probe": "rapl", "domain": "cpu:package-0"})
            t.append({"elapsed_s": k * 0.1, "probe": "model", "domain": "cpu:model"})
        t.close()
        rows = read_rows(run_dir / "power_timeline.csv")
        with (run_dir / "power_timeline.csv").open("w") as f:  # fill time, source and power
            f.write("time_utc,elapsed_s,probe,domain,source,power_w\n")
            for r in rows:
                source = "model" if r["probe"] == "model" else "counter"
                when = at(float(r["elapsed_s"]))
                f.write(f"{when},{r['elapsed_s']},{r['probe']},{r['domain']},{source},12.5\n")
    if environment:
        env = {
            "hostname": EVIL,
            "cpu": {"model": "Intel Xeon $x^2$ <i>"},
            "gpus": [],
            "probes": [
                {"name": "rapl", "available": True, "source": "counter", "reason": ""},
                {"name": "nvml", "available": False, "reason": "no NVIDIA driver <libnvidia>"},
            ],
            "carbon": {"country": "FRA", "intensity_g_per_kwh": 56.0, "pue": 1.0},
        }
        (run_dir / "environment.json").write_text(json.dumps(env))
    return run_dir


def pngs(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in PNG_RE.findall(text)]
