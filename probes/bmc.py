"""The whole node at the wall: power from the BMC, through Redfish or IPMI DCMI.

One domain, `node:power` (scope `node`): what the server draws, fans, PSU losses and all,
which RAPL and NVML do not see. It is a platform total: the meter adds it alone and shows
the other probes' domains beside it. The BMC is sampled in a background thread (every
`ENERGY_HARNESS_BMC_POLL_S`, 0.5 s by default, gentle on the BMC) and each value is held
until the next (a BMC updates in steps); a window's energy is the held values x time,
never a new request at the window's edges. Settings and credentials: `probes.bmc_access`.

The BMC's update period is learned from the times its value changes (the median interval,
after three changes) and shown in `info()` and the domain note; until then one second is
assumed. Windows shorter than three update periods carry the short-window warning.
"""

from __future__ import annotations

import os
import statistics
import time

from probes.base import SOURCE_COUNTER, Domain, Probe, ProbeOptions, Reading
from probes.bmc_access import (
    ENV_CA_BUNDLE,
    ENV_CHASSIS,
    ENV_IPMI_HOST,
    ENV_URL,
    Dcmi,
    Redfish,
    find_power_resource,
    load_credentials,
    power_watts,
)
from probes.errors import EnergyHarnessError
from probes.tracks import PowerTrack, reading

DOMAIN = "node:power"
ENV_POLL_S = "ENERGY_HARNESS_BMC_POLL_S"
DEFAULT_POLL_S = 0.5
ASSUMED_PERIOD_S = 1.0  # a BMC's usual update period, until the probe has learned its own
MIN_UPDATES = 3  # windows shorter than this many updates are warned about
NODE_MAX_POWER_W = 20000.0  # a generous bound for one server


class BmcProbe(Probe):
    """Node power from the BMC (Redfish, else IPMI DCMI), sampled and held."""

    name = "bmc"
    source = SOURCE_COUNTER
    learns = True  # the update period: in the domain note and min_window_s once learned

    def __init__(self, options: ProbeOptions | None = None) -> None:
        super().__init__(options)
        self.method = ""
        self._redfish: Redfish | None = None
        self._dcmi: Dcmi | None = None
        self._resource = ("", "")
        self._track = PowerTrack("BMC node power", max_power_w=NODE_MAX_POWER_W, hold=True)
        self._last_w: float | None = None
        self._changes_s: list[float] = []  # monotonic times at which the value changed
        self.poll_s = DEFAULT_POLL_S
        try:
            self._reason = self._configure(dict(os.environ))
        except EnergyHarnessError as exc:
            self._reason = str(exc)
            self.close()

    def _configure(self, env: dict[str, str]) -> str | None:
        """Set up Redfish or DCMI and take the first reading; None, or why not."""
        poll = env.get(ENV_POLL_S, "")
        try:
            self.poll_s = float(poll) if poll else DEFAULT_POLL_S
        except ValueError:
            return f"{ENV_POLL_S} must be a number of seconds, got {poll!r}"
        credentials = load_credentials(env)
        if env.get(ENV_URL):
            self._redfish = Redfish(env[ENV_URL], credentials, env.get(ENV_CA_BUNDLE) or None)
            self._resource = find_power_resource(self._redfish, env.get(ENV_CHASSIS))
            self.method = f"Redfish {self._resource[1]} ({self._redfish.base}{self._resource[0]})"
        else:
            self._dcmi = Dcmi(env.get(ENV_IPMI_HOST), credentials)
            problem = self._dcmi.problem()
            if problem:
                return problem
            where = f"over LAN at {self._dcmi.host}" if self._dcmi.host else "local"
            self.method = f"IPMI DCMI power reading ({where})"
        self._take_sample()
        return None

    def _query_w(self) -> float:
        if self._redfish is not None:
            path, kind = self._resource
            watts = power_watts(self._redfish.get(path), kind, self._redfish)
            if watts is None:
                raise EnergyHarnessError(f"{self.method} reports no power now")
            return watts
        assert self._dcmi is not None
        return self._dcmi.power_w()

    def _take_sample(self) -> None:
        """One request to the BMC; its value at the middle of the request."""
        t0 = time.monotonic()
        try:
            watts = self._query_w()
        except EnergyHarnessError as exc:
            with self._lock:
                self._track.fail(f"the BMC did not answer: {exc}")
            if self._last_w is None:
                raise
            return
        now = (t0 + time.monotonic()) / 2
        with self._lock:
            if self._last_w is not None and watts != self._last_w:
                self._changes_s.append(now)
                del self._changes_s[:-32]
            self._last_w = watts
            self._track.add(watts, now)

    # -- contract --------------------------------------------------------------------
    def unavailable_reason(self) -> str | None:
        return self._reason

    def update_period_s(self) -> float | None:
        """The BMC's update period as learned (None until its value changed 3 times)."""
        times = self._changes_s
        gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
        return statistics.median(gaps) if len(gaps) >= MIN_UPDATES - 1 else None

    @property
    def min_window_s(self) -> float:  # type: ignore[override]
        period_s = self.update_period_s() or ASSUMED_PERIOD_S
        return MIN_UPDATES * max(period_s, self.poll_s)

    def domains(self) -> list[Domain]:
        period_s = self.update_period_s()
        period = (
            f"{period_s:.2f} s" if period_s else f"not learned yet ({ASSUMED_PERIOD_S:g} s assumed)"
        )
        note = (
            f"the node at the wall from its BMC, {self.method}; sampled every {self.poll_s:g} s, "
            f"BMC update period {period}"
        )
        return [Domain(DOMAIN, SOURCE_COUNTER, "node", None, note)]

    def start(self) -> None:
        if self._reason or self._loop is not None:
            return
        self._start_loop("bmc-power", self.poll_s, self._take_sample)

    def close(self) -> None:
        super().close()
        if self._redfish is not None:
            self._redfish.close()

    def read(self) -> Reading:
        if self._reason:
            raise EnergyHarnessError(f"bmc probe unavailable: {self._reason}")
        with self._lock:
            now = time.monotonic()
            energy_j = self._track.energy_at(now)
            return reading(now, {DOMAIN: energy_j}, {DOMAIN: self._track})

    def info(self) -> dict[str, object]:
        return {
            "method": self.method,
            "source": "sampled",
            "poll_interval_s": self.poll_s,
            "update_period_s": self.update_period_s(),
            "update_period_assumed_s": ASSUMED_PERIOD_S,
            "dcmi_averaging_s": self._dcmi.averaging_s if self._dcmi else None,
        }
