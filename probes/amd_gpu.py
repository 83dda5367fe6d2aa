"""AMD Instinct and Radeon GPU energy through AMD SMI (`pip install amdsmi`, ROCm >= 6.1).

One domain per visible GPU (`gpu:0`, `gpu:1`, ... in HIP's numbering). Visibility follows
ROCm: `ROCR_VISIBLE_DEVICES` picks among all GPUs first, then `HIP_VISIBLE_DEVICES` (or,
without it, `CUDA_VISIBLE_DEVICES`, which HIP honours too) picks among those; indices or
UUIDs. The order of AMD SMI's processor handles is taken as HIP's order (both follow the
PCI bus order).

Energy: the accumulator of `amdsmi_get_energy_count` times its `counter_resolution` (uJ per
tick, from the library), under the counter rules of `probes.tracks`. The counter is bad on
some firmware (ROCm/amdsmi issue 38, as Zeus records), so when the probe starts it is held
against the socket power over `CHECK_S`; a counter off by more than 3x is not used and the
power (`amdsmi_get_power_info`, W) is sampled and integrated instead.

MI250/MI250X hold two dies (GCDs) per package, seen as two GPUs; the package's power is
reported on the first die and the second reads 0 W (Zeus issue 113). Such a die is never a
measurement: it is left out with a warning that names its partner, whose figure covers both.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from dataclasses import dataclass, field
from typing import Any

from probes.base import SOURCE_COUNTER, Domain, Probe, ProbeOptions, Reading
from probes.errors import EnergyHarnessError
from probes.tracks import CounterTrack, PowerTrack, reading

AMD_UPDATE_PERIOD_S = 0.001  # the SMU refreshes the accumulator about every millisecond
AMD_FROZEN_AFTER_S = 2.0  # a GPU draws tens of watts even when idle
AMD_MIN_WINDOW_S = 0.01
GPU_MAX_POWER_W = 3000.0  # a generous bound when the library states no power cap
CHECK_S = 0.25  # how long the counter is held against the power when the probe starts
CHECK_RATIO = 3.0
NO_PERMISSION = 10  # AMDSMI_STATUS_NO_PERM
POWER_KEYS = ("current_socket_power", "average_socket_power", "socket_power")
VISIBILITY = ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")

LIBRARY_FIX = (
    "AMD SMI cannot load its ROCm library (libamd_smi.so): install ROCm >= 6.1 and make "
    "the library findable (ROCM_PATH, or LD_LIBRARY_PATH=/opt/rocm/lib), with a matching "
    "`pip install amdsmi`"
)
PERMISSION_FIX = (
    "AMD SMI was refused access to the GPU: add the user to the `render` and `video` "
    "groups (`sudo usermod -aG render,video $USER`, then log in again), or run as root"
)


@dataclass
class _AmdGpu:
    domain: str
    handle: Any
    physical_index: int
    name: str
    power_key: str | None  # the key of amdsmi_get_power_info that answers, if any
    resolution_uj: float | None  # the counter's resolution, None without a counter
    max_power_w: float
    use_counter: bool = False
    note: str = ""
    track: CounterTrack | PowerTrack = field(default_factory=lambda: PowerTrack(""))


def _error_code(exc: Exception) -> int | None:
    getter = getattr(exc, "get_error_code", None)
    try:
        return int(getter()) if getter else None
    except (TypeError, ValueError):
        return None


def _import_amdsmi() -> tuple[Any, str | None]:
    """The amdsmi module, or None and why not (it prints when its library is missing)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import amdsmi
    except ImportError:
        return None, "the AMD SMI binding is not installed: pip install 'energy-harness[amd]'"
    except Exception as exc:  # KeyError/OSError: the ROCm library is missing or too old
        return None, f"{LIBRARY_FIX} ({type(exc).__name__}: {exc})"
    return amdsmi, None


def select_visible(count: int, uuids: list[str], env: dict[str, str]) -> list[int]:
    """Physical indices of the visible GPUs, in HIP's order (ROCR first, then HIP/CUDA)."""
    chosen = list(range(count))
    hip = env.get("HIP_VISIBLE_DEVICES", env.get("CUDA_VISIBLE_DEVICES"))
    for value in (env.get("ROCR_VISIBLE_DEVICES"), hip):
        if value is None:
            continue
        picked = []
        for item in (part.strip() for part in value.split(",")):
            if item.isdigit() and int(item) < len(chosen):
                picked.append(chosen[int(item)])
            else:
                found = [i for i in chosen if item and uuids[i].endswith(item.removeprefix("GPU-"))]
                if len(found) != 1:
                    break  # like the runtime: entries after an invalid one are ignored
                picked.append(found[0])
        chosen = list(dict.fromkeys(picked))
    return chosen


class AmdSmiProbe(Probe):
    """Energy per visible AMD GPU: the validated energy counter, else sampled socket power."""

    name = "amdsmi"
    source = SOURCE_COUNTER
    learns = True  # whether each counter is used is decided at start: its domain note changes
    min_window_s = AMD_MIN_WINDOW_S

    def __init__(self, options: ProbeOptions | None = None) -> None:
        super().__init__(options)
        self._gpus: list[_AmdGpu] = []
        self._warnings: list[str] = []
        self._smi: Any = None
        self._checked = False
        self._reason = self._discover()

    def _discover(self) -> str | None:
        smi, why = _import_amdsmi()
        if smi is None:
            return why
        try:
            smi.amdsmi_init()
        except Exception as exc:
            if _error_code(exc) == NO_PERMISSION:
                return f"{PERMISSION_FIX} ({exc})"
            return f"AMD SMI did not start ({exc}): no amdgpu driver or AMD GPU on this machine"
        self._smi = smi
        try:
            handles = list(smi.amdsmi_get_processor_handles())
            uuids = [self._uuid(h) for h in handles]
            visible = select_visible(len(handles), uuids, dict(os.environ))
            for hip_index, physical in enumerate(visible):
                self._add_gpu(f"gpu:{hip_index}", handles[physical], physical)
        except smi.AmdSmiException as exc:
            if _error_code(exc) == NO_PERMISSION:
                return f"{PERMISSION_FIX} ({exc})"
            return f"AMD SMI query failed: {exc}"
        if self._gpus:
            return None
        if self._warnings:
            return "no visible AMD GPU can be measured: " + "; ".join(self._warnings)
        names = ", ".join(v for v in VISIBILITY if v in os.environ)
        return "AMD SMI sees no GPU" + (f" ({names} may hide them all)" if names else "")

    def _uuid(self, handle: Any) -> str:
        try:
            return str(self._smi.amdsmi_get_gpu_device_uuid(handle))
        except Exception:
            return ""

    def _add_gpu(self, domain: str, handle: Any, physical: int) -> None:
        smi = self._smi
        name = str(smi.amdsmi_get_gpu_asic_info(handle).get("market_name", "AMD GPU"))
        power = smi.amdsmi_get_power_info(handle)
        power_key = next((k for k in POWER_KEYS if isinstance(power.get(k), int)), None)
        if "MI250" in name and power_key is not None and power[power_key] == 0:
            partner = physical - 1 if physical % 2 else physical + 1
            self._warnings.append(
                f"amdsmi: {domain} ({name}, AMD SMI index {physical}) is left out: it is the "
                "second die of an MI250 package, which reports 0 W because the package's "
                f"power is reported on its partner die (AMD SMI index {partner}); measure "
                "with the partner visible, whose figure covers both dies"
            )
            return
        try:
            resolution = float(smi.amdsmi_get_energy_count(handle)["counter_resolution"])
        except (smi.AmdSmiException, KeyError, TypeError, ValueError):
            resolution = None
        if power_key is None and not resolution:
            self._warnings.append(
                f"amdsmi: {domain} ({name}) is left out: AMD SMI answers neither its energy "
                "counter nor its socket power; a newer ROCm may expose them"
            )
            return
        gpu = _AmdGpu(domain, handle, physical, name, power_key, resolution or None, 0.0)
        gpu.max_power_w = self._max_power_w(handle)
        if "MI250" in name:
            gpu.note = f"MI250 package: covers both dies (AMD SMI {physical} and {physical + 1})"
        self._gpus.append(gpu)

    def _max_power_w(self, handle: Any) -> float:
        try:
            cap_uw = self._smi.amdsmi_get_power_cap_info(handle)["max_power_cap"]
            return 2.0 * cap_uw / 1e6 if cap_uw > 0 else GPU_MAX_POWER_W
        except Exception:
            return GPU_MAX_POWER_W

    # -- contract --------------------------------------------------------------------
    def unavailable_reason(self) -> str | None:
        return self._reason

    def warnings(self) -> list[str]:
        return list(self._warnings)

    def domains(self) -> list[Domain]:
        out = []
        for gpu in self._gpus:
            method = "energy counter" if gpu.use_counter else "integrated power samples"
            if not self._checked:
                method = "energy counter if it passes the check at start, else power samples"
            note = f"{gpu.name} (AMD SMI index {gpu.physical_index}), {method}"
            note += f"; {gpu.note}" if gpu.note else ""
            out.append(Domain(gpu.domain, SOURCE_COUNTER, gpu.domain, None, note))
        return out

    def start(self) -> None:
        if self._reason or self._loop is not None:
            return
        with self._lock:
            if not self._checked:
                self._check_counters()
            now = time.monotonic()
            for gpu in self._gpus:
                self._read_gpu(gpu, now)
        if any(not g.use_counter for g in self._gpus):
            interval_s = 1.0 / max(self.options.sample_hz, 0.1)
            self._start_loop("amdsmi-power", interval_s, self._sample)

    def _energy_uj(self, gpu: _AmdGpu) -> float:
        count = self._smi.amdsmi_get_energy_count(gpu.handle)
        ticks = count.get("energy_accumulator", count.get("power", 0))
        return ticks * float(count["counter_resolution"])

    def _power_w(self, gpu: _AmdGpu) -> float:
        value = self._smi.amdsmi_get_power_info(gpu.handle)[gpu.power_key]
        if not isinstance(value, int):
            raise EnergyHarnessError(f"AMD SMI answers {value!r} for {gpu.power_key}")
        return float(value)

    def _check_counters(self) -> None:
        """Hold each counter against the socket power over CHECK_S (counters that some
        firmware gets wrong are not used); a GPU without power reading keeps its counter."""
        with_counter = [g for g in self._gpus if g.resolution_uj]
        start = {g.domain: (self._energy_or_none(g), self._power_or_none(g)) for g in with_counter}
        t0 = time.monotonic()
        if any(p is not None for _, p in start.values()):
            time.sleep(CHECK_S)
        elapsed_s = time.monotonic() - t0
        for gpu in with_counter:
            energy0_uj, power0_w = start[gpu.domain]
            power1_w, energy1_uj = self._power_or_none(gpu), self._energy_or_none(gpu)
            if energy0_uj is None or energy1_uj is None:
                continue  # the counter does not answer: power samples
            counted_j = (energy1_uj - energy0_uj) / 1e6
            if power0_w is None or power1_w is None:
                gpu.use_counter = True
                continue
            expected_j = (power0_w + power1_w) / 2 * elapsed_s
            ratio = counted_j / expected_j if expected_j > 0 else float("inf")
            gpu.use_counter = 1 / CHECK_RATIO <= ratio <= CHECK_RATIO
            if not gpu.use_counter:
                self._warnings.append(
                    f"amdsmi: {gpu.domain} ({gpu.name}): its energy counter gave "
                    f"{counted_j:.3g} J where the socket power gives {expected_j:.3g} J over "
                    f"{elapsed_s:.2f} s (firmware known to miscount); its power is sampled "
                    "instead"
                )
        for gpu in self._gpus:
            gpu.track = self._track(gpu)
        self._checked = True

    def _energy_or_none(self, gpu: _AmdGpu) -> float | None:
        try:
            return self._energy_uj(gpu)
        except (self._smi.AmdSmiException, KeyError, TypeError, ValueError):
            return None

    def _power_or_none(self, gpu: _AmdGpu) -> float | None:
        if gpu.power_key is None:
            return None
        try:
            return self._power_w(gpu)
        except (self._smi.AmdSmiException, EnergyHarnessError):
            return None

    @staticmethod
    def _track(gpu: _AmdGpu) -> CounterTrack | PowerTrack:
        label = f"{gpu.domain} ({gpu.name})"
        if not gpu.use_counter:
            return PowerTrack(f"{label} socket power", max_power_w=gpu.max_power_w)
        return CounterTrack(
            f"{label} energy counter",
            unit_j=(gpu.resolution_uj or 1.0) * 1e-6,
            max_power_w=gpu.max_power_w,
            update_period_s=AMD_UPDATE_PERIOD_S,
            frozen_after_s=AMD_FROZEN_AFTER_S,
        )

    def _read_gpu(self, gpu: _AmdGpu, now: float) -> None:
        try:
            if gpu.use_counter:
                count = self._smi.amdsmi_get_energy_count(gpu.handle)
                ticks = count.get("energy_accumulator", count.get("power", -1))
                gpu.track.advance(int(ticks), now)  # type: ignore[union-attr]
            else:
                gpu.track.add(self._power_w(gpu), now)  # type: ignore[union-attr]
        except (self._smi.AmdSmiException, EnergyHarnessError, KeyError) as exc:
            gpu.track.fail(f"AMD SMI could not read {gpu.domain} ({gpu.name}): {exc}")

    def _sample(self) -> None:
        with self._lock:
            now = time.monotonic()
            for gpu in self._gpus:
                if not gpu.use_counter:
                    self._read_gpu(gpu, now)

    def read(self) -> Reading:
        if self._reason:
            raise EnergyHarnessError(f"amdsmi probe unavailable: {self._reason}")
        if not self._checked:
            raise EnergyHarnessError("the amdsmi probe reads after start(): call start() first")
        with self._lock:
            now = time.monotonic()
            for gpu in self._gpus:
                self._read_gpu(gpu, now)
            energy = {g.domain: g.track.energy_j for g in self._gpus}
            return reading(now, energy, {g.domain: g.track for g in self._gpus})

    def info(self) -> dict[str, object]:
        return {
            "gpus": [
                {
                    "domain": g.domain,
                    "name": g.name,
                    "amdsmi_index": g.physical_index,
                    "energy_counter": g.use_counter if self._checked else None,
                    "counter_resolution_uj": g.resolution_uj,
                    "power_reading": g.power_key,
                    "max_power_w_assumed": g.max_power_w,
                }
                for g in self._gpus
            ],
            "update_period_s": AMD_UPDATE_PERIOD_S,
            "sample_hz": self.options.sample_hz,
        }
