"""Time and memory of the readers of a large run: `python -m benchmarks.readers`.

Writes two synthetic shard run directories whose measurements.csv files add up to each
size asked for (`--sizes-mb 50 200`), then runs, each in a fresh child process,
`energy-harness merge` (the shards into one run, with its summary and report),
`energy-harness report` and `energy-harness compare` (the merged run and a copy), and
prints each one's wall time and peak resident memory (`ru_maxrss` of that child, from
`os.wait4`). Memory that stays roughly flat from one size to the next is the aim.

The rows are those of a real run on a machine with RAPL: per window, a package and a
dram counter in the total and a core counter outside it, in rounds of every case of a
group, spread over two worker processes; every case's windows are usable. `--harness DIR`
runs the commands with another checkout of the code first on the path (to compare two
versions on the same files). Benchmark scripts sit on top of `harness`.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.rows.columns import CASE_COLUMNS, MEASUREMENT_COLUMNS

MODELS = ("lenet5", "mlp", "resnet8", "tinyvit")
VARIANTS = ("dense", "dense (control)", "magnitude[sparsity=0.5]", "magnitude[sparsity=0.9]")
DOMAINS = (  # probe, domain, in the total, share of the window's energy
    ("rapl", "cpu:package-0", True, 0.8),
    ("rapl", "cpu:dram-0", True, 0.2),
    ("rapl", "cpu:core-0", False, 0.6),
)
SAMPLES = 1024
WINDOWS_PER_WRITE = 50


def case_id(model: str, variant: str) -> str:
    return f"{model}/{variant}/inference/bs64/cpu"


def window_rows(model: str, variant: str, window: int, order: int) -> list[list[str]]:
    """The measurements.csv rows of one window, as the run writes them."""
    energy_j = 3.2 * (1.0 - 0.3 * ("0.9" in variant)) * (1 + 0.01 * ((window * 7) % 5 - 2))
    cells = {
        "run_id": "bench",
        "case_id": case_id(model, variant),
        "model": model,
        "variant": variant,
        "mode": "inference",
        "batch_size": "64",
        "device": "cpu",
        "node": "0",
        "rank": "0",
        "repetition": str(window),
        "source": "counter",
        "start_utc": f"2026-01-0{1 + window % 7}T10:{window % 60:02d}:00.123456+00:00",
        "duration_s": repr(1.0 + 0.001 * (window % 13)),
        "iterations": "16",
        "samples": str(SAMPLES),
        "idle_power_w": "4.25",
        "valid": "true",
        "precision": "fp32",
        "other_cpu_pct": repr(3.0 + window % 9),
        "round": str(window),
        "order_in_round": str(order),
        "cases_in_round": str(len(VARIANTS)),
        "process": str(window % 2),
        "disturbed": "false",
    }
    rows = []
    for probe, domain, in_total, share in DOMAINS:
        energy = energy_j * share
        row = cells | {
            "probe": probe,
            "domain": domain,
            "in_total": "true" if in_total else "false",
            "energy_j": repr(energy),
            "dynamic_energy_j": repr(energy - 4.25 * share),
            "energy_j_per_sample": repr(energy / SAMPLES),
            "note": "counter read from /sys/class/powercap; wraps at max_energy_range_uj",
        }
        rows.append([row.get(column, "") for column in MEASUREMENT_COLUMNS])
    return rows


def write_shard(run_dir: Path, models: tuple[str, ...], size_bytes: int) -> None:
    """A shard run directory whose measurements.csv holds about `size_bytes`."""
    run_dir.mkdir(parents=True)
    with (run_dir / "cases.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, CASE_COLUMNS)
        writer.writeheader()
        for model in models:
            for variant in VARIANTS:
                writer.writerow(_case_row(model, variant))
    with (run_dir / "measurements.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MEASUREMENT_COLUMNS)
        window = 0
        while handle.tell() < size_bytes:
            writer.writerows(
                row
                for w in range(window, window + WINDOWS_PER_WRITE)
                for model in models
                for order, variant in enumerate(VARIANTS)
                for row in window_rows(model, variant, w, order)
            )
            window += WINDOWS_PER_WRITE


def _case_row(model: str, variant: str) -> dict[str, str]:
    return {
        "run_id": "bench",
        "case_id": case_id(model, variant),
        "model": model,
        "dataset": "digits",
        "variant": variant,
        "mode": "inference",
        "batch_size": "64",
        "device": "cpu",
        "precision": "fp32",
        "status": "ok",
        "accuracy": "0.97",
        "measured_source": "counter",
    }


def measure(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) and exit status of one command in a child process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        if code:
            errors.seek(0)
            sys.stderr.write(errors.read().decode(errors="replace")[-2000:])
    child.returncode = code
    return seconds, usage.ru_maxrss / 1024, code


def run_size(size_mb: float, work: Path, env: dict[str, str]) -> None:
    size = int(size_mb * 1e6)
    half = len(MODELS) // 2
    shards = [work / "shard-0", work / "shard-1"]
    write_shard(shards[0], MODELS[:half], size // 2)
    write_shard(shards[1], MODELS[half:], size // 2)
    merged, again = work / "merged", work / "merged-again"
    cli = [sys.executable, "-m", "harness"]
    commands = {
        "merge": [*cli, "merge", *map(str, shards), "-o", str(merged)],
        "report": [*cli, "report", str(merged)],
        "compare": [*cli, "compare", str(merged), str(again)],
    }
    for name, argv in commands.items():
        if name == "compare" and merged.exists():
            shutil.copytree(merged, again)  # two runs of the same size
        seconds, rss_mb, code = measure(argv, env, work)
        mb = (merged / "measurements.csv").stat().st_size / 1e6 if merged.exists() else 0.0
        print(
            f"{size_mb:>6.0f} MB  {name:<8} {seconds:7.1f} s  peak RSS {rss_mb:7.0f} MB"
            f"  (measurements.csv {mb:.0f} MB{'' if code == 0 else f', exit {code}'})",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.readers", description=__doc__)
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[50.0, 200.0])
    parser.add_argument("--harness", type=Path, help="another checkout to run the commands")
    parser.add_argument("--dir", type=Path, help="where to write the runs (a temporary dir)")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.harness:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(args.harness.resolve()), env.get("PYTHONPATH", "")]
        )
    code = [sys.executable, "-c", "import harness; print(harness.__file__)"]
    where = subprocess.run(code, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    where = where.stdout.strip()
    print(f"harness from {where}; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    root = Path(tempfile.mkdtemp(prefix="readers-", dir=args.dir))
    try:
        for size_mb in args.sizes_mb:
            run_size(size_mb, root / f"{size_mb:g}mb", env)
            shutil.rmtree(root / f"{size_mb:g}mb")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
