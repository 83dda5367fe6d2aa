"""Estimated energy: E = P_static x duration + sum over i of E_i x C_i, power-bounded.

The counts C_i of one step (FLOPs per dtype, bytes per memory category, bytes per
link) are multiplied by a profile's energies E_i and added up into compute, storage and
communication joules; static power times the step's duration gives the static joules.
Every term keeps its count, its energy per unit and the profile's source for it, so a
reader can redo the sum by hand. All of it is an estimate, never a measurement.

The duration is, in order of preference: one the caller measured, or one estimated
from the profile's achievable rates, max(compute time, memory time) + transfer time
(a roofline: compute and memory overlap; optimistic for small batches), or none (then
the static part is 0 and `duration_source` says so).

Power bound: a target cannot draw more than its maximum power (`[max_power]` of the
profile: board power, TDP). Where the dynamic terms over the duration, plus the
profile's idle power, would exceed it, the dynamic terms are scaled down so that they
reach it exactly, and `power_cap` says so (with the uncapped power).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from harness.errors import EnergyHarnessError
from harness.estimate.counting import Counts
from harness.estimate.profiles import ComputeEnergy, Profile, StaticPower
from harness.spec.precision import TF32

PARTS = ("compute", "storage", "communication", "static")
PJ = 1e-12
DURATION_MEASURED = "measured"
DURATION_ROOFLINE = "roofline estimate from the profile's rates"
DURATION_NONE = "none: no measured duration and the profile has no rates; static part is 0"


@dataclass(frozen=True)
class Term:
    """One E_i x C_i term of the sum."""

    part: str  # compute | storage | communication | static
    name: str  # what is counted, e.g. "fp32 FLOPs", "hbm bytes: weights"
    count: float  # C_i, in `unit`
    unit: str  # FLOP, byte or s
    joules_per_unit: float  # E_i (for static: the power in W = J/s)
    source: str
    cap_factor: float = 1.0  # < 1 when the power cap scaled this (dynamic) term down

    @property
    def energy_j(self) -> float:
        """E_i x C_i in joules (times the power cap's factor, 1 when not capped)."""
        return self.count * self.joules_per_unit * self.cap_factor

    def scaled(self, factor: float) -> Term:
        """The same term for `factor` times the count (per sample: 1 / batch size)."""
        return dataclasses.replace(self, count=self.count * factor)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "part": self.part,
            "name": self.name,
            "count": self.count,
            "unit": self.unit,
            "joules_per_unit": self.joules_per_unit,
            "energy_j": self.energy_j,
            "cap_factor": self.cap_factor,
            "source": self.source,
        }


@dataclass(frozen=True)
class PowerCap:
    """The bound on an estimate's power: the profile's maximum power and what the counts
    implied. `factor` < 1 when the dynamic terms were scaled down to reach the bound."""

    max_power_w: float
    uncapped_power_w: float  # dynamic terms / duration + the profile's idle power
    factor: float
    source: str

    @property
    def capped(self) -> bool:
        """True when the counts implied more than the maximum power."""
        return self.factor < 1.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "capped": self.capped,
            "max_power_w": self.max_power_w,
            "uncapped_power_w": self.uncapped_power_w,
            "factor": self.factor,
            "source": self.source,
        }


@dataclass(frozen=True)
class EnergyEstimate:
    """An estimated energy broken into terms; per step or, once scaled, per sample."""

    profile: str
    memory_level: str
    terms: tuple[Term, ...]
    duration_s: float | None
    duration_source: str
    power_cap: PowerCap | None = None  # None: no maximum power in the profile, or no duration
    notes: tuple[str, ...] = ()

    @property
    def breakdown_j(self) -> dict[str, float]:
        """Joules per part: compute, storage, communication, static."""
        out = dict.fromkeys(PARTS, 0.0)
        for term in self.terms:
            out[term.part] += term.energy_j
        return out

    @property
    def energy_j(self) -> float:
        """Total estimated joules."""
        return float(sum(t.energy_j for t in self.terms))

    @property
    def static(self) -> Term | None:
        """The static term (power in `joules_per_unit`, W), None without a duration."""
        return next((t for t in self.terms if t.part == "static"), None)

    @property
    def implied_power_w(self) -> float | None:
        """Estimated joules / duration (W); None without a duration."""
        if not self.duration_s:
            return None
        return self.energy_j / self.duration_s

    def scaled(self, factor: float) -> EnergyEstimate:
        """Every count (and the duration) times `factor`; powers are unchanged."""
        duration = None if self.duration_s is None else self.duration_s * factor
        return dataclasses.replace(
            self, terms=tuple(t.scaled(factor) for t in self.terms), duration_s=duration
        )


def _missing(profile: Profile, what: str, table: str, known: list[str]) -> EnergyHarnessError:
    return EnergyHarnessError(
        f"profile {profile.name!r} ({profile.origin or 'in memory'}) has no energy for {what}; "
        f"it defines {', '.join(known) or 'none'}. Add a [{table}] table to the profile "
        "or choose another profile"
    )


def compute_entry(profile: Profile, dtype: str) -> tuple[ComputeEnergy | None, str]:
    """The profile's energy for FLOPs of `dtype`, and the name they are priced as.

    TF32 is fp32 data on tensor cores: a profile without a `tf32` rate (no tensor cores)
    prices it as fp32. None when the profile lacks the dtype.
    """
    if dtype == TF32 and TF32 not in profile.compute:
        dtype = "fp32"
    return profile.compute.get(dtype), dtype


def roofline_duration_s(counts: Counts, profile: Profile, memory_level: str) -> float | None:
    """max(compute time, memory time) + transfer time from the profile's rates, or None."""
    compute_s = 0.0
    for dtype, flops in counts.flops_by_dtype.items():
        entry, _ = compute_entry(profile, dtype)
        if flops and (entry is None or entry.flops_per_s is None):
            return None
        if flops:
            compute_s += flops / entry.flops_per_s
    level = profile.memory.get(memory_level)
    if counts.bytes and (level is None or level.bytes_per_s is None):
        return None
    memory_s = counts.bytes / level.bytes_per_s if counts.bytes else 0.0
    comm_s = 0.0
    for channel, nbytes in counts.comm_bytes.items():
        entry = profile.communication.get(channel)
        if nbytes and (entry is None or entry.bytes_per_s is None):
            return None
        if nbytes:
            comm_s += nbytes / entry.bytes_per_s
    return max(compute_s, memory_s) + comm_s


def _compute_terms(counts: Counts, profile: Profile) -> tuple[list[Term], list[str]]:
    terms, notes = [], []
    for dtype, flops in sorted(counts.flops_by_dtype.items()):
        if not flops:
            continue
        entry, priced_as = compute_entry(profile, dtype)
        if entry is None:
            raise _missing(profile, f"{dtype} FLOPs", f"compute.{dtype}", list(profile.compute))
        name = f"{dtype} FLOPs" if priced_as == dtype else f"{dtype} FLOPs (priced as {priced_as})"
        if priced_as != dtype:
            notes.append(
                f"profile {profile.name!r} has no {dtype} rate (no tensor cores): "
                f"{dtype} FLOPs priced as {priced_as}"
            )
        terms.append(Term("compute", name, flops, "FLOP", entry.pj_per_flop * PJ, entry.source))
    return terms, notes


def _transfer_terms(counts: Counts, profile: Profile, level: str) -> list[Term]:
    terms = []
    mem = profile.memory[level]
    for category, nbytes in counts.memory_bytes.items():
        if nbytes:
            name = f"{level} bytes: {category}"
            terms.append(Term("storage", name, nbytes, "byte", mem.pj_per_byte * PJ, mem.source))
    for channel, nbytes in counts.comm_bytes.items():
        if not nbytes:
            continue
        entry = profile.communication.get(channel)
        if entry is None:
            raise _missing(
                profile, f"{channel} bytes", f"communication.{channel}", list(profile.communication)
            )
        name = f"{channel} bytes"
        terms.append(
            Term("communication", name, nbytes, "byte", entry.pj_per_byte * PJ, entry.source)
        )
    return terms


def power_cap(
    terms: list[Term], profile: Profile, duration_s: float | None
) -> tuple[list[Term], PowerCap | None]:
    """The dynamic terms bounded by the profile's maximum power over `duration_s`.

    The bound is (max power - the profile's idle power) x duration for the dynamic terms
    together; above it, every dynamic term is scaled by the same factor.
    """
    if profile.max_power is None or not duration_s:
        return terms, None
    dynamic_j = sum(t.energy_j for t in terms)
    limit_j = (profile.max_power.power_w - profile.static.power_w) * duration_s
    factor = min(1.0, limit_j / dynamic_j) if dynamic_j > 0 else 1.0
    cap = PowerCap(
        profile.max_power.power_w,
        dynamic_j / duration_s + profile.static.power_w,
        factor,
        profile.max_power.source,
    )
    return [dataclasses.replace(t, cap_factor=factor) for t in terms], cap


def _duration(
    counts: Counts, profile: Profile, level: str, duration_s: float | None
) -> tuple[float | None, str]:
    if duration_s is not None:
        if duration_s < 0:
            raise EnergyHarnessError(f"duration must be zero or positive, got {duration_s} s")
        return duration_s, DURATION_MEASURED
    duration_s = roofline_duration_s(counts, profile, level)
    return duration_s, DURATION_ROOFLINE if duration_s is not None else DURATION_NONE


def estimate_energy(
    counts: Counts,
    profile: Profile,
    *,
    duration_s: float | None = None,
    memory_level: str | None = None,
    static: StaticPower | None = None,
) -> EnergyEstimate:
    """Estimated joules of the counted work on the profile's target, power-bounded.

    `duration_s` is the measured duration of the same work (for the static part and the
    power bound); `memory_level` overrides the level memory traffic is charged to (a
    what-if); `static` replaces the profile's idle power (e.g. a measured idle baseline).
    Raises EnergyHarnessError when the profile lacks an energy the counts need.
    """
    level = memory_level or profile.memory_level
    if level not in profile.memory:
        raise EnergyHarnessError(
            f"profile {profile.name!r} has no memory level {level!r}; "
            f"levels: {', '.join(profile.memory)}"
        )
    terms, notes = _compute_terms(counts, profile)
    terms += _transfer_terms(counts, profile, level)
    duration_s, source = _duration(counts, profile, level, duration_s)
    terms, cap = power_cap(terms, profile, duration_s)
    if cap is not None and cap.capped:
        notes.append(
            f"power cap: the counts imply {cap.uncapped_power_w:.4g} W over the "
            f"{'measured' if source == DURATION_MEASURED else 'roofline'} duration, above "
            f"the maximum of {cap.max_power_w:.4g} W; dynamic terms scaled by {cap.factor:.3f}"
        )
    if duration_s is not None:
        static = static or profile.static
        name = "static power x duration"
        terms.append(Term("static", name, duration_s, "s", static.power_w, static.source))
    return EnergyEstimate(profile.name, level, tuple(terms), duration_s, source, cap, tuple(notes))
