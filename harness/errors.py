"""Re-export of the project's exception type (defined in `probes.errors`)."""

from __future__ import annotations

from probes.errors import EnergyHarnessError

__all__ = ["EnergyHarnessError"]
