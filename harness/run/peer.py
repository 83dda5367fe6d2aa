"""The optional peer figure: codecarbon's own tracker over the same case (`--peer codecarbon`).

Its energy is recorded beside ours, labelled `peer`, so users see how the usual tool
compares. It runs fully offline (OfflineEmissionsTracker, no file, no API).
"""

from __future__ import annotations

import logging

from harness.errors import EnergyHarnessError
from harness.rows.carbon import J_PER_KWH

PEERS = ("codecarbon",)


class CodecarbonPeer:
    """`with CodecarbonPeer("FRA") as peer: ...` then `peer.energy_j` (codecarbon's figure)."""

    def __init__(self, country_iso_code: str | None = None) -> None:
        self.country = country_iso_code or "USA"
        self.energy_j: float | None = None
        self._tracker = None

    def __enter__(self) -> CodecarbonPeer:
        try:
            from codecarbon import OfflineEmissionsTracker
        except ImportError as exc:
            raise EnergyHarnessError("--peer codecarbon needs codecarbon installed") from exc
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        self._tracker = OfflineEmissionsTracker(
            country_iso_code=self.country,
            output_methods=[],  # no file, no API: the figure is read from the tracker
            log_level="error",
            measure_power_secs=1,
            allow_multiple_runs=True,
        )
        self._tracker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        tracker, self._tracker = self._tracker, None
        if tracker is None:
            return
        tracker.stop()
        data = getattr(tracker, "final_emissions_data", None)
        if data is not None:
            self.energy_j = float(data.energy_consumed) * J_PER_KWH
