"""Estimated energy: E = P_static x duration + sum over i of E_i x C_i.

The counts C_i of one step (FLOPs per dtype, bytes per memory category, bytes per
link) are multiplied by a profile's energies E_i and added up into compute, storage and
communication joules; static power times the step's duration gives the static joules.
Every term keeps its count, its energy per unit and the profile's source for it, so a
reader can redo the sum by hand. All of it is an estimate, never a measurement.

The duration is, in order of preference: one the caller measured, or one estimated
from the profile's achievable rates, max(compute time, memory time) + transfer time
(a roofline, optimistic for small batches), or none (then the static part is 0 and
`duration_source` says so).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import EnergyHarnessError
from harness.estimate.counting import Counts
from harness.estimate.profiles import Profile

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

    @property
    def energy_j(self) -> float:
        """E_i x C_i in joules."""
        return self.count * self.joules_per_unit

    def scaled(self, factor: float) -> Term:
        """The same term for `factor` times the count (per sample: 1 / batch size)."""
        return Term(
            self.part, self.name, self.count * factor, self.unit, self.joules_per_unit, self.source
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "part": self.part,
            "name": self.name,
            "count": self.count,
            "unit": self.unit,
            "joules_per_unit": self.joules_per_unit,
            "energy_j": self.energy_j,
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

    def scaled(self, factor: float) -> EnergyEstimate:
        """Every count (and the duration) times `factor`."""
        duration = None if self.duration_s is None else self.duration_s * factor
        return EnergyEstimate(
            self.profile,
            self.memory_level,
            tuple(t.scaled(factor) for t in self.terms),
            duration,
            self.duration_source,
        )


def _missing(profile: Profile, what: str, table: str, known: list[str]) -> EnergyHarnessError:
    return EnergyHarnessError(
        f"profile {profile.name!r} ({profile.origin or 'in memory'}) has no energy for {what}; "
        f"it defines {', '.join(known) or 'none'}. Add a [{table}] table to the profile "
        "or choose another profile"
    )


def roofline_duration_s(counts: Counts, profile: Profile, memory_level: str) -> float | None:
    """max(compute time, memory time) + transfer time from the profile's rates, or None."""
    compute_s = 0.0
    for dtype, flops in counts.flops_by_dtype.items():
        entry = profile.compute.get(dtype)
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


def estimate_energy(
    counts: Counts,
    profile: Profile,
    *,
    duration_s: float | None = None,
    memory_level: str | None = None,
) -> EnergyEstimate:
    """Estimated joules of the counted work on the profile's target.

    `duration_s` is the measured duration of the same work (for the static part);
    `memory_level` overrides the level memory traffic is charged to (a what-if).
    Raises EnergyHarnessError when the profile lacks an energy the counts need.
    """
    level = memory_level or profile.memory_level
    if level not in profile.memory:
        raise EnergyHarnessError(
            f"profile {profile.name!r} has no memory level {level!r}; "
            f"levels: {', '.join(profile.memory)}"
        )
    terms: list[Term] = []
    for dtype, flops in sorted(counts.flops_by_dtype.items()):
        if not flops:
            continue
        entry = profile.compute.get(dtype)
        if entry is None:
            raise _missing(profile, f"{dtype} FLOPs", f"compute.{dtype}", list(profile.compute))
        terms.append(
            Term("compute", f"{dtype} FLOPs", flops, "FLOP", entry.pj_per_flop * PJ, entry.source)
        )
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
        terms.append(
            Term(
                "communication",
                f"{channel} bytes",
                nbytes,
                "byte",
                entry.pj_per_byte * PJ,
                entry.source,
            )
        )
    if duration_s is not None:
        if duration_s < 0:
            raise EnergyHarnessError(f"duration must be zero or positive, got {duration_s} s")
        source = DURATION_MEASURED
    else:
        duration_s = roofline_duration_s(counts, profile, level)
        source = DURATION_ROOFLINE if duration_s is not None else DURATION_NONE
    if duration_s is not None:
        terms.append(
            Term(
                "static",
                "static power x duration",
                duration_s,
                "s",
                profile.static.power_w,
                profile.static.source,
            )
        )
    return EnergyEstimate(profile.name, level, tuple(terms), duration_s, source)
