"""A thin adapter over pyRAPL, for users who want its figures as a cross-check.

pyRAPL reads the same Intel powercap counters as the `rapl` probe but has no
wraparound handling and no MMIO/psys/AMD support: a counter that wraps inside a window
makes that window invalid (the meter refuses the negative difference). Its figures are
labelled `peer` and never enter totals. Install with `pip install energy-harness[pyrapl]`.
"""

from __future__ import annotations

import time
from typing import Any

from probes.base import SOURCE_PEER, Domain, Probe, ProbeOptions, Reading
from probes.errors import EnergyHarnessError

_KINDS = ("package", "dram")  # pyRAPL's order per socket: (pkg, dram)


class PyRaplProbe(Probe):
    """pyRAPL's package and DRAM counters per socket (Intel only, no wraparound handling)."""

    name = "pyrapl"
    source = SOURCE_PEER
    default = False  # a cross-check: only when asked for by name
    min_window_s = 0.01

    def __init__(self, options: ProbeOptions | None = None) -> None:
        super().__init__(options)
        self._sensor: Any = None
        self._slots: dict[int, str] = {}  # index in pyRAPL's energy list -> domain name
        self._reason: str | None = None
        try:
            import pyRAPL
        except ImportError:
            self._reason = "pyRAPL is not installed: pip install 'energy-harness[pyrapl]'"
            return
        try:
            self._sensor = pyRAPL.Sensor()
            values = self._sensor.energy()
        except Exception as exc:  # pyRAPL raises its own exceptions and PermissionError
            self._reason = (
                f"pyRAPL cannot read the RAPL counters ({type(exc).__name__}: {exc}); "
                "it needs an Intel CPU and read access to /sys/class/powercap/intel-rapl"
            )
            return
        for index, value in enumerate(values):
            if value >= 0:
                self._slots[index] = f"pyrapl:{_KINDS[index % 2]}-{index // 2}"

    def unavailable_reason(self) -> str | None:
        return self._reason

    def domains(self) -> list[Domain]:
        return [
            Domain(name, SOURCE_PEER, "cpu" if "package" in name else "dram", None, "pyRAPL")
            for name in self._slots.values()
        ]

    def read(self) -> Reading:
        if self._reason:
            raise EnergyHarnessError(f"pyrapl probe unavailable: {self._reason}")
        with self._lock:
            values = self._sensor.energy()
            now = time.monotonic()
        return Reading(now, {name: values[i] / 1e6 for i, name in self._slots.items()})
