"""Microbenchmarks for calibration, each measured in its own meter window.

- `idle`: sleep; pins static power.
- `matmul-<dtype>-<n>`: repeated n x n matrix products; compute-bound.
- `copy-<MiB>`: repeated tensor copies on the device; memory-bound.
- `h2d-<MiB>` (CUDA only): pinned host memory to device; host-to-device link.

Counts per call come from `count_callable` on meta tensors of the same shapes (the very
rules the estimate uses), except host-to-device copies, which count their bytes as
transfer only, as `count_step` counts input copies. The rows are a cases table for
`harness.estimate.calibrate.fit_cases`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch

from harness.errors import EnergyHarnessError
from harness.estimate.accounting import dtype_name
from harness.estimate.counting import count_callable

MIB = 1 << 20


@dataclass(frozen=True)
class Microbenchmark:
    """One kind of work: a call to repeat, its counts per call, the count it stresses."""

    name: str
    run: Callable[[], object]
    counts: dict[str, float]  # cases-table columns per call
    stresses: str  # the column whose rate it measures ("" for idle)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _counts_of(fn: Callable[[], object]) -> dict[str, float]:
    counts = count_callable(fn)
    out = {f"flops_{k}": v for k, v in counts.flops_by_dtype.items()}
    out["bytes"] = counts.bytes
    return out


def _matmul(device: torch.device, n: int, dtype: torch.dtype) -> Microbenchmark:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    ma, mb = (torch.empty(n, n, device="meta", dtype=dtype) for _ in range(2))
    name = dtype_name(dtype)
    return Microbenchmark(
        f"matmul-{name}-{n}", lambda: a @ b, _counts_of(lambda: ma @ mb), f"flops_{name}"
    )


def _copy(device: torch.device, mib: int) -> Microbenchmark:
    numel = mib * MIB // 4
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    msrc, mdst = (torch.empty(numel, device="meta") for _ in range(2))
    return Microbenchmark(
        f"copy-{mib}MiB", lambda: dst.copy_(src), _counts_of(lambda: mdst.copy_(msrc)), "bytes"
    )


def _h2d(device: torch.device, mib: int) -> Microbenchmark:
    numel = mib * MIB // 4
    src = torch.randn(numel).pin_memory()
    dst = torch.empty(numel, device=device)
    counts = {"comm_bytes_host_to_device": float(numel * 4)}
    return Microbenchmark(
        f"h2d-{mib}MiB",
        lambda: dst.copy_(src, non_blocking=True),
        counts,
        "comm_bytes_host_to_device",
    )


def plan_microbenchmarks(device: torch.device, *, small: bool = False) -> list[Microbenchmark]:
    """The microbenchmarks for `device` (cpu or cuda); `small` shrinks sizes (for tests)."""
    if device.type == "cuda":
        if small:
            return [_matmul(device, 512, torch.float32), _copy(device, 16), _h2d(device, 8)]
        return [
            _matmul(device, 2048, torch.float32),
            _matmul(device, 8192, torch.float32),
            _matmul(device, 8192, torch.bfloat16),
            _copy(device, 256),
            _copy(device, 1024),
            _h2d(device, 64),
            _h2d(device, 256),
        ]
    if device.type != "cpu":
        raise EnergyHarnessError(f"calibration runs on cpu or cuda, not {device.type!r}")
    if small:
        return [_matmul(device, 128, torch.float32), _copy(device, 4)]
    return [
        _matmul(device, 256, torch.float32),
        _matmul(device, 1024, torch.float32),
        _copy(device, 16),
        _copy(device, 128),
    ]


def _repetitions(bench: Microbenchmark, device: torch.device, seconds: float) -> int:
    """Calls needed to fill `seconds`, from a warm-up and the fastest of at least three
    timed calls: a pause of the machine during one call does not shrink the window."""
    bench.run()
    _sync(device)
    start, calls, fastest_s = time.perf_counter(), 0, math.inf
    while calls < 3 or time.perf_counter() - start < min(0.05, seconds / 10):
        t0 = time.perf_counter()
        bench.run()
        _sync(device)
        fastest_s = min(fastest_s, time.perf_counter() - t0)
        calls += 1
    return max(1, math.ceil(seconds / max(fastest_s, 1e-9)))


def run_microbenchmarks(
    meter,
    device: torch.device,
    benches: list[Microbenchmark],
    *,
    seconds: float = 2.0,
    idle_s: float = 2.0,
    rounds: int = 2,
    on_row: Callable[[dict[str, object]], None] | None = None,
) -> pd.DataFrame:
    """Measure an idle window and every benchmark, `rounds` times each; a cases table.

    `meter` is a started `harness.meter.EnergyMeter`. Each row: case, duration_s,
    energy_j (the meter's total), energy_source (counter, model or both), calls,
    stresses, and the counts of the window. `on_row` sees each row as it is measured.
    """
    if seconds <= 0 or idle_s <= 0 or rounds < 1:
        raise EnergyHarnessError("calibration needs positive --seconds, --idle-s and rounds")
    plan = [(b, _repetitions(b, device, seconds)) for b in benches]
    rows: list[dict[str, object]] = []
    for round_ in range(rounds):
        jobs: list[tuple[str, Callable[[], object], int, dict[str, float], str]] = [
            ("idle", lambda: time.sleep(idle_s), 1, {}, "")
        ]
        jobs += [(b.name, b.run, reps, b.counts, b.stresses) for b, reps in plan]
        for name, run, reps, counts, stresses in jobs:
            with meter.window(f"calibrate:{name}:{round_}") as window:
                for _ in range(reps):
                    run()
            m = window.measurement
            row: dict[str, object] = {
                "case": name,
                "duration_s": m.duration_s,
                "energy_j": m.total_energy_j,
                "energy_source": m.total_source,
                "calls": reps,
                "stresses": stresses,
            }
            row.update({k: v * reps for k, v in counts.items()})
            rows.append(row)
            if on_row is not None:
                on_row(row)
    table = pd.DataFrame(rows)
    count_columns = [c for c in table.columns if c.startswith(("flops_", "bytes", "comm_bytes"))]
    table[count_columns] = table[count_columns].fillna(0.0)
    return table


def achieved_rates(table: pd.DataFrame) -> dict[str, float]:
    """Best rate per stressed column (FLOP/s or byte/s) seen in the benchmark rows."""
    rates: dict[str, float] = {}
    for column, rows in table[table["stresses"] != ""].groupby("stresses"):
        rates[str(column)] = float((rows[column] / rows["duration_s"]).max())
    return rates
