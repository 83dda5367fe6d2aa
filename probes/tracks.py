"""Turning raw energy counters and power samples into joules, and catching the ones that lie.

One definition, shared by every probe:

- `CounterTrack` folds successive raw readings of an energy counter into a running total,
  with the rules that keep a lying counter from becoming energy:
  * a counter that went down is a wrap only when one was possible in the elapsed time at
    the counter's physical bound; otherwise it was reset (a driver reload) and the reading
    is invalid, never a full-range wraparound;
  * a jump that implies a power above the physical bound is invalid;
  * a counter that has not moved for `frozen_after_s` (many update periods) is invalid
    at every reading until it moves again ("frozen energy interface", as some VMs expose).
- `PowerTrack` integrates power samples with the trapezoid rule; a sample above the
  physical bound or one that cannot be taken is an invalid reading.

Both keep `invalid` cumulative (a window is invalid when the count differs between its
readings, see `probes.base.Reading`) and `lost`: after an invalid reading the next valid
one starts afresh, since the energy in between is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

from probes.base import Reading

# Time the source of a counter or sample may lag behind our clock (a late firmware update,
# a writer or reader preempted): added to the elapsed time before a jump is called impossible.
JUMP_SLACK_S = 0.25

FROZEN_REASON = (
    "the counter did not advance for {stalled_s:.2f} s (more than {periods:.0f} update "
    "periods of {period_ms:g} ms): this machine may expose a frozen energy interface, as some "
    "VMs do; measure on bare metal or with another probe"
)


@dataclass
class Track:
    """Validity bookkeeping shared by counters and power integrals."""

    label: str  # what is read, for the reasons (a file, `GPU 0 energy counter`)
    invalid: int = 0
    invalid_reason: str = ""
    lost: bool = False  # the last reading was invalid: the next valid one starts afresh

    def fail(self, reason: str) -> None:
        """This reading is invalid: `reason` says why."""
        self.invalid += 1
        self.invalid_reason = reason
        self.lost = True


@dataclass
class CounterTrack(Track):
    """A cumulative energy counter: raw units of `unit_j` joules, wrapping at `range_units`.

    `range_units` None: the counter does not wrap within a lifetime (64-bit accumulators),
    so any decrease is a reset. `frozen_after_s` None: the counter may rightly rest (a zone
    that can draw 0 W, such as an idle integrated GPU).
    """

    unit_j: float = 1e-6
    range_units: int | None = None
    max_power_w: float = 1000.0
    update_period_s: float = 0.001
    frozen_after_s: float | None = None
    total_units: int = 0
    last_raw: int = -1  # -1: no reading yet
    moved_t: float = 0.0  # when the counter was last seen to change
    frozen: bool = False

    @property
    def energy_j(self) -> float:
        return self.total_units * self.unit_j

    def possible_units(self, elapsed_s: float) -> float:
        """The most the counter can advance in `elapsed_s` at its physical bound."""
        seconds = elapsed_s + self.update_period_s + JUMP_SLACK_S
        return self.max_power_w * seconds / self.unit_j

    def advance(self, raw: int, now: float) -> None:
        """Fold one raw reading taken at `now` (time.monotonic()) into the total."""
        last = self.last_raw
        if last >= 0 and not self.lost and not self.frozen:  # the common cases, kept cheap
            if raw == last:
                if self.frozen_after_s is None or now - self.moved_t <= self.frozen_after_s:
                    return
            elif raw > last:
                delta = raw - last
                if delta <= self.possible_units(now - self.moved_t):
                    self.total_units += delta
                    self.last_raw, self.moved_t = raw, now
                    return
        self._advance_rare(raw, now)

    def _advance_rare(self, raw: int, now: float) -> None:
        if raw < 0:
            self.fail(f"{self.label} read {raw}, not an unsigned counter value")
            return
        if self.last_raw < 0 or self.lost:
            if self.last_raw >= 0:
                self.invalid += 1  # the first valid reading after invalid ones
            self.lost = self.frozen = False
            self._base(raw, now)
            return
        if raw == self.last_raw:
            self._check_frozen(now)
            return
        if self.frozen:  # moving again: the energy over the stall is unknown
            self.frozen = False
            self.invalid += 1
            self._base(raw, now)
            return
        delta = self._delta(raw, now - self.moved_t)
        if delta is not None:
            self.total_units += delta
            self._base(raw, now)

    def _base(self, raw: int, now: float) -> None:
        self.last_raw, self.moved_t = raw, now

    def _check_frozen(self, now: float) -> None:
        stalled_s = now - self.moved_t
        if self.frozen_after_s is None or stalled_s <= self.frozen_after_s:
            return
        self.frozen = True
        self.invalid += 1  # every reading while frozen: no window across it is valid
        self.invalid_reason = f"{self.label}: " + FROZEN_REASON.format(
            stalled_s=stalled_s,
            periods=self.frozen_after_s / self.update_period_s,
            period_ms=self.update_period_s * 1e3,
        )

    def _delta(self, raw: int, elapsed_s: float) -> int | None:
        """Units gained since the last change, or None (and the reading marked invalid)."""
        possible = self.possible_units(elapsed_s)
        if raw > self.last_raw:
            delta = raw - self.last_raw
            if delta <= possible:
                return delta
            self.fail(
                f"{self.label} jumped by {delta * self.unit_j:.6g} J in {elapsed_s:.3f} s, "
                f"i.e. {delta * self.unit_j / max(elapsed_s, 1e-9):.3g} W, above the physical "
                f"bound of {self.max_power_w:.0f} W: an impossible reading"
            )
            return None
        if self.range_units is not None:
            delta = raw + self.range_units - self.last_raw
            if delta <= possible:
                return delta  # a wrap
        self.fail(self._went_back(raw, elapsed_s))
        return None

    def _went_back(self, raw: int, elapsed_s: float) -> str:
        text = f"{self.label} went backwards ({self.last_raw} -> {raw}) after {elapsed_s:.3f} s: "
        if self.range_units is None:
            return text + "the counter does not wrap, so it was reset (a driver reload?)"
        return text + (
            f"too soon for a wrap of {self.range_units * self.unit_j:.6g} J at "
            f"<= {self.max_power_w:.0f} W, so it was reset (a driver reload?), not wrapped"
        )


@dataclass
class PowerTrack(Track):
    """Energy from power samples (W) by the trapezoid rule, or by holding each sample until
    the next (`hold`: for a source that updates in steps, such as a BMC); samples above
    `max_power_w` are impossible readings."""

    max_power_w: float = float("inf")
    hold: bool = False
    energy_j: float = 0.0
    last_power_w: float = -1.0  # -1: no sample yet
    last_t: float = 0.0

    def add(self, power_w: float, now: float) -> None:
        """Fold one power sample taken at `now` (time.monotonic())."""
        if not 0.0 <= power_w <= self.max_power_w:
            self.fail(
                f"{self.label} read {power_w:.6g} W, outside 0..{self.max_power_w:.0f} W "
                "(the physical bound): an impossible reading"
            )
            return
        if self.last_power_w >= 0 and not self.lost:
            mean_w = self.last_power_w if self.hold else (power_w + self.last_power_w) / 2
            self.energy_j += mean_w * (now - self.last_t)
        elif self.lost:
            self.invalid += 1
            self.lost = False
        self.last_power_w, self.last_t = power_w, now

    def energy_at(self, now: float) -> float:
        """The integral up to `now`, holding the last sample (no new sample taken); with
        `hold`, a later sample never makes it smaller."""
        if self.last_power_w < 0 or self.lost:
            return self.energy_j
        return self.energy_j + self.last_power_w * max(0.0, now - self.last_t)


def reading(now: float, energy_j: dict[str, float], tracks: dict[str, Track]) -> Reading:
    """A Reading of `energy_j`, with the invalid counts and reasons of `tracks` by domain."""
    for track in tracks.values():
        if track.invalid:
            break
    else:  # the common case, kept cheap: every window reads twice
        return Reading(now, energy_j)
    bad = {name: t for name, t in tracks.items() if t.invalid}
    return Reading(
        now,
        energy_j,
        {name: t.invalid for name, t in bad.items()},
        {name: t.invalid_reason for name, t in bad.items()},
    )
