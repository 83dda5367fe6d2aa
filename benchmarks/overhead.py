"""Cost of one begin+end window pair, per probe: `python -m benchmarks.overhead`.

Prints microseconds per pair (median and 95th percentile over many pairs) for each
probe available on this machine, and for the rapl probe over a fake powercap tree
(static counters in a temporary folder), which measures the probe's own file reading
and bookkeeping. Benchmark scripts sit on top of `harness`, unlike the model and data
modules of this package, which `harness` imports.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from harness.measure.meter import EnergyMeter
from harness.measure.probes import load_probes
from probes.base import Probe, ProbeOptions
from probes.rapl import RaplProbe

FAKE_ZONES = [
    ("intel-rapl:0", "package-0"),
    ("intel-rapl:0:0", "core"),
    ("intel-rapl:0:1", "uncore"),
    ("intel-rapl:0:2", "dram"),
]


def fake_powercap_tree(root: Path) -> Path:
    """A static four-zone powercap tree (one package) under `root`."""
    for zone_id, name in FAKE_ZONES:
        zone = root / zone_id
        zone.mkdir(parents=True)
        (zone / "name").write_text(name + "\n")
        (zone / "energy_uj").write_text("123456789\n")
        (zone / "max_energy_range_uj").write_text("262143328850\n")
    return root


def window_pair_us(probe: Probe, pairs: int) -> tuple[float, float]:
    """Median and p95 of one begin_window + end_window pair, in microseconds."""
    costs = []
    with EnergyMeter([probe]) as meter:
        for _ in range(pairs):
            t0 = time.perf_counter()
            meter.begin_window("w")
            meter.end_window("w")
            costs.append((time.perf_counter() - t0) * 1e6)
        meter.measurements.clear()
    costs.sort()
    return statistics.median(costs), costs[int(0.95 * (len(costs) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000, help="window pairs per probe")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fake = RaplProbe(ProbeOptions(powercap_root=fake_powercap_tree(Path(tmp))))
        rows.append(("rapl (fake 4-zone tree)", *window_pair_us(fake, args.pairs)))
    for probe in load_probes(None):
        rows.append((probe.name, *window_pair_us(probe, args.pairs)))
    print(f"{'probe':<26} {'median_us':>10} {'p95_us':>10}   (one begin+end window pair)")
    for name, median_us, p95_us in rows:
        print(f"{name:<26} {median_us:>10.1f} {p95_us:>10.1f}")


if __name__ == "__main__":
    main()
