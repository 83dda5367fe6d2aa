"""The energy of making a model: each preparation step measured with the run's meter.

A step is what makes the model from what it starts with: training for the dense model
(step 1), ranking, pruning or quantising and fine-tuning for a variant (steps 2-4).
Evaluating the test accuracy (step 5) is not part of it: it makes nothing a deployment
needs. The step runs in one window of the same `EnergyMeter` (probes, idle baseline) as
the case's own windows, so its figure is the window's total energy with its source.

The figure is stored in the cache entry's meta when the model is prepared; a model read
back from the cache keeps that figure and says it came from there (`from_cache`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from harness.measure.meter import EnergyMeter, ShortWindowWarning
from harness.measure.sources import combine_sources

T = TypeVar("T")
ORIGIN_RUN, ORIGIN_CACHE = "run", "cache"


@dataclass(frozen=True)
class PrepareEnergy:
    """One preparation step's window: `energy_j` (total of the counted domains),
    `duration_s`, `source` (`counter`, `model`, `counter+model`), `step` (what ran),
    `from_cache` (measured when the cached model was prepared, not in this run)."""

    energy_j: float
    duration_s: float
    source: str
    step: str
    from_cache: bool = False

    @property
    def origin(self) -> str:
        """`run` (measured in this run) or `cache` (the figure stored with the model)."""
        return ORIGIN_CACHE if self.from_cache else ORIGIN_RUN

    def to_meta(self) -> dict[str, Any]:
        """Plain values for the cache entry's meta."""
        return {
            "energy_j": self.energy_j,
            "duration_s": self.duration_s,
            "source": self.source,
            "step": self.step,
        }

    @classmethod
    def from_meta(cls, meta: Any, from_cache: bool) -> PrepareEnergy | None:
        """The figure stored by `to_meta`; None when absent or malformed (a file written
        without a meter, or by an older version)."""
        if not isinstance(meta, Mapping):
            return None
        numbers = [meta.get("energy_j"), meta.get("duration_s")]
        texts = [meta.get("source"), meta.get("step")]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
            return None
        if not all(isinstance(v, str) for v in texts):
            return None
        return cls(float(numbers[0]), float(numbers[1]), texts[0], texts[1], from_cache)

    def cached(self) -> PrepareEnergy:
        """The same figure, as read back from the cache."""
        return replace(self, from_cache=True)


def measure_step(
    meter: EnergyMeter | None, name: str, step: str, run: Callable[[], T]
) -> tuple[T, PrepareEnergy | None]:
    """`run()` inside a window of `meter` named `name`; its result and the step's energy
    (None without a meter). A step shorter than the counters' period (quantising a small
    model) is not warned about: its `duration_s` says how far to trust it."""
    if meter is None:
        return run(), None
    meter.begin_window(name)
    try:
        result = run()
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ShortWindowWarning)
            measurement = meter.end_window(name)
        if meter.measurements and meter.measurements[-1] is measurement:
            meter.measurements.pop()  # the meter's list is for the case windows
    energy = PrepareEnergy(
        measurement.total_energy_j, measurement.duration_s, measurement.total_source, step
    )
    return result, energy


def total_energy(parts: list[PrepareEnergy | None]) -> tuple[float, str]:
    """The sum of preparation steps and what it is made of; NaN when one is unknown."""
    if not parts or any(p is None for p in parts):
        return math.nan, ""
    known = [p for p in parts if p is not None]
    return sum(p.energy_j for p in known), combine_sources(p.source for p in known)
