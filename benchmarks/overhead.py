"""Cost of one begin+end window pair, per probe: `python -m benchmarks.overhead`.

Prints microseconds per pair (median and 95th percentile over many pairs) beside the
floor measured in the same run: the bare reads one rapl window needs (each counter of a
fake four-zone powercap tree read twice with `os.pread` on a descriptor kept open, as
sysfs allows), and the ratio of each figure to that floor. Rows:

- the floor itself;
- `other_cpu_pct` sampling alone (two samples of `harness.measure.load.MachineLoad`: part
  of every window below);
- rapl over the fake tree (static counters in RAM), which measures the probe's own file
  reading and the meter's bookkeeping;
- nvml over a fake NVML whose calls return at once (the probe's and meter's bookkeeping);
- amdsmi over a fake AMD SMI whose calls return at once (one GPU, its energy counter);
- hwmon over a fake amd_energy device (two socket counters);
- jetson over a fake INA3221 hwmon folder (three rails, current x voltage, read afresh);
- bmc over a Redfish server on 127.0.0.1 (a window reads the held samples: no request);
- every probe available on this machine.

The fake counters advance between blocks (untimed), so that no probe sees a frozen
counter and takes the invalid path (`benchmarks.overhead_fakes`).

Blocks of pairs of each row are interleaved, so that a neighbour's load spreads over all
of them alike. Benchmark scripts sit on top of `harness`, unlike the model and data
modules of this package, which `harness` imports.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path

from benchmarks.overhead_fakes import (
    Counters,
    fake_amdsmi_probe,
    fake_bmc_probe,
    fake_hwmon_probe,
    fake_jetson_probe,
)
from harness.measure.load import MachineLoad
from harness.measure.meter import EnergyMeter, ShortWindowWarning
from harness.measure.probes import load_probes
from probes.base import Probe, ProbeOptions
from probes.nvml import NvmlProbe
from probes.rapl import RaplProbe

FAKE_ZONES = [
    ("intel-rapl:0", "package-0"),
    ("intel-rapl:0:0", "core"),
    ("intel-rapl:0:1", "uncore"),
    ("intel-rapl:0:2", "dram"),
]
BLOCKS = 10  # interleaved blocks per row


def fake_powercap_tree(root: Path, counters: Counters | None = None) -> Path:
    """A four-zone powercap tree (one package) under `root`; `counters` advance them."""
    counters = counters or Counters()
    for zone_id, name in FAKE_ZONES:
        zone = root / zone_id
        zone.mkdir(parents=True)
        (zone / "name").write_text(name + "\n")
        counters.add(zone / "energy_uj")
        (zone / "max_energy_range_uj").write_text("262143328850\n")
    return root


def fake_nvml() -> types.ModuleType:
    """A `pynvml` stand-in with one GPU whose calls return at once (a static counter)."""
    mod = types.ModuleType("pynvml")
    mod.NVMLError = type("NVMLError", (Exception,), {})  # type: ignore[attr-defined]
    calls: dict[str, Callable[..., object]] = {
        "nvmlInit": lambda: None,
        "nvmlSystemGetDriverVersion": lambda: "fake",
        "nvmlDeviceGetCount": lambda: 1,
        "nvmlDeviceGetHandleByIndex": lambda i: i,
        "nvmlDeviceGetUUID": lambda h: "GPU-fake",
        "nvmlDeviceGetName": lambda h: "fake GPU",
        "nvmlDeviceGetTotalEnergyConsumption": lambda h: 123456789,
        "nvmlDeviceGetPowerUsage": lambda h: 100000,
        "nvmlDeviceGetMigMode": lambda h: (0, 0),
    }
    for name, call in calls.items():
        setattr(mod, name, call)
    return mod


def fake_nvml_probe() -> Probe:
    """The nvml probe over `fake_nvml()` (the real module, if any, is put back)."""
    real = sys.modules.get("pynvml")
    sys.modules["pynvml"] = fake_nvml()
    try:
        return NvmlProbe()
    finally:
        if real is None:
            del sys.modules["pynvml"]
        else:
            sys.modules["pynvml"] = real


def floor_pair(root: Path) -> Callable[[], None]:
    """The bare reads of one rapl window: every counter twice, pread on open descriptors."""
    fds = [os.open(root / zone_id / "energy_uj", os.O_RDONLY) for zone_id, _ in FAKE_ZONES]

    def pair() -> None:
        for _ in range(2):
            for fd in fds:
                int(os.pread(fd, 32, 0))

    return pair


def load_pair() -> Callable[[], None]:
    """Two `other_cpu_pct` samples, as a window takes them."""
    load = MachineLoad()

    def pair() -> None:
        load.other_cpu_pct(load.sample(), load.sample())

    return pair


def window_pair(meter: EnergyMeter) -> Callable[[], None]:
    """One begin_window + end_window of `meter`; results are dropped as they come."""

    def pair() -> None:
        meter.begin_window("w")
        meter.end_window("w")
        meter.measurements.clear()

    return pair


def costs_us(
    rows: dict[str, Callable[[], None]], pairs: int, between: Callable[[], None] | None = None
) -> dict[str, list[float]]:
    """Microseconds of each call, rows measured in interleaved blocks; `between` runs
    before each block, untimed. The windows are empty on purpose: their ShortWindowWarning
    is not shown."""
    costs: dict[str, list[float]] = {name: [] for name in rows}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortWindowWarning)
        _measure(rows, pairs, costs, between or (lambda: None))
    return costs


def _measure(
    rows: dict[str, Callable[[], None]],
    pairs: int,
    costs: dict[str, list[float]],
    between: Callable[[], None],
) -> None:
    for _ in range(BLOCKS):
        for name, pair in rows.items():
            between()
            out = costs[name]
            for _ in range(max(1, pairs // BLOCKS)):
                t0 = time.perf_counter()
                pair()
                out.append((time.perf_counter() - t0) * 1e6)


def median_p95(values: list[float]) -> tuple[float, float]:
    """Median and 95th percentile."""
    ordered = sorted(values)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def window_pair_us(probe: Probe, pairs: int) -> tuple[float, float]:
    """Median and p95 of one begin_window + end_window pair of `probe`, in microseconds."""
    with EnergyMeter([probe]) as meter:
        return median_p95(costs_us({"window": window_pair(meter)}, pairs)["window"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000, help="window pairs per row")
    args = parser.parse_args()
    meters: list[EnergyMeter] = []
    counters = Counters()
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=shm) as tmp, fake_bmc_probe() as bmc:
        root = fake_powercap_tree(Path(tmp) / "powercap", counters)
        rows = {"floor (8 x pread, fake tree)": floor_pair(root)}
        rows["other_cpu_pct (2 samples)"] = load_pair()
        probes = [("rapl (fake 4-zone tree)", RaplProbe(ProbeOptions(powercap_root=root)))]
        probes.append(("nvml (fake, instant NVML)", fake_nvml_probe()))
        probes.append(("amdsmi (fake, instant)", fake_amdsmi_probe()))
        probes.append(("hwmon (fake amd_energy)", fake_hwmon_probe(Path(tmp) / "hw", counters)))
        probes.append(("jetson (fake 3 rails)", fake_jetson_probe(Path(tmp) / "jetson")))
        probes.append(("bmc (local Redfish)", bmc))
        probes += [(probe.name, probe) for probe in load_probes(None)]
        for name, probe in probes:
            meters.append(EnergyMeter([probe]).__enter__())
            rows[name] = window_pair(meters[-1])
        costs = costs_us(rows, args.pairs, counters.advance)
        for meter in meters:
            meter.close()
    floor_us = statistics.median(costs[next(iter(rows))])
    print(f"{'':<30} {'median_us':>10} {'p95_us':>10} {'x floor':>8}   (one begin+end window)")
    for name, values in costs.items():
        median_us, p95_us = median_p95(values)
        print(f"{name:<30} {median_us:>10.1f} {p95_us:>10.1f} {median_us / floor_us:>8.1f}")


if __name__ == "__main__":
    main()
