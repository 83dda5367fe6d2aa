"""NVIDIA GPU energy through NVML (the official `nvidia-ml-py` binding, `import pynvml`).

One domain per visible GPU (`gpu:0`, `gpu:1`, ... in CUDA's numbering, so `gpu:0` is
what `cuda:0` runs on). Visibility follows `CUDA_VISIBLE_DEVICES` (indices, `GPU-`
UUIDs or unique UUID prefixes).

Where the GPU has the total-energy counter (`nvmlDeviceGetTotalEnergyConsumption`,
millijoules, Volta and newer) it is read directly. Otherwise board power
(`nvmlDeviceGetPowerUsage`, milliwatts) is sampled in a background thread and
integrated with the trapezoid rule.

A GPU that answers NotSupported for both (Jetson-class boards, some vGPUs) cannot be
measured: it is left out with a warning, and the probe is unavailable when no visible
GPU is left. A read that fails makes that GPU's window invalid with the NVML error, and
so does a counter that lies (`probes.tracks`): one reset (it never wraps: 64 bits of
millijoules), one that jumps above twice the GPU's top power limit, one frozen for 5 s.

Update period: NVML refreshes the energy counter and power readings about every
100 ms on current data-centre GPUs, so windows shorter than `min_window_s` (0.1 s)
are mostly quantisation noise; the meter warns about them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from probes.base import SOURCE_COUNTER, Domain, Probe, ProbeOptions, Reading
from probes.errors import EnergyHarnessError
from probes.tracks import CounterTrack, PowerTrack, reading

NVML_UPDATE_PERIOD_S = 0.1
NVML_FROZEN_AFTER_S = 5.0  # 50 updates: a GPU draws tens of watts even when idle
GPU_MAX_POWER_W = 3000.0  # a generous bound per GPU when NVML states no power limit


@dataclass
class _Gpu:
    """One visible GPU and its energy: the counter's track, or its power integral."""

    domain: str
    handle: Any
    physical_index: int
    uuid: str
    name: str
    has_counter: bool
    mig: bool
    track: CounterTrack | PowerTrack = field(default_factory=lambda: PowerTrack(""))

    @property
    def energy_j(self) -> float:
        return self.track.energy_j


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def visible_selectors(env: str | None) -> list[str] | None:
    """CUDA_VISIBLE_DEVICES split into selectors; None means every GPU is visible.

    CUDA stops at the first invalid entry, and so does this parser's caller.
    """
    if env is None:
        return None
    return [item.strip() for item in env.split(",") if item.strip()]


class NvmlProbe(Probe):
    """Energy per visible NVIDIA GPU: the hardware counter, else sampled board power."""

    name = "nvml"
    source = SOURCE_COUNTER
    min_window_s = NVML_UPDATE_PERIOD_S

    def __init__(self, options: ProbeOptions | None = None) -> None:
        super().__init__(options)
        self._gpus: list[_Gpu] = []
        self._reason: str | None = None
        self._warnings: list[str] = []
        self._nvml: Any = None
        self._driver = ""
        self._discover()

    def _discover(self) -> None:
        try:
            import pynvml
        except ImportError:
            self._reason = "the NVML binding is not installed: pip install nvidia-ml-py"
            return
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            self._reason = (
                f"NVML did not start ({_text(exc)}): no NVIDIA driver or GPU on this machine"
            )
            return
        self._nvml = pynvml
        try:
            self._driver = _text(pynvml.nvmlSystemGetDriverVersion())
            self._gpus = self._visible_gpus(pynvml)
        except EnergyHarnessError as exc:
            self._reason = str(exc)
        except pynvml.NVMLError as exc:
            self._reason = f"NVML query failed: {_text(exc)}"
        if not self._reason and not self._gpus:
            self._reason = (
                "no visible GPU can be measured: " + "; ".join(self._warnings)
                if self._warnings
                else "NVML sees no GPU (CUDA_VISIBLE_DEVICES may hide them all)"
            )

    def _visible_gpus(self, nvml: Any) -> list[_Gpu]:
        count = nvml.nvmlDeviceGetCount()
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        uuids = [_text(nvml.nvmlDeviceGetUUID(h)) for h in handles]
        selectors = visible_selectors(os.environ.get("CUDA_VISIBLE_DEVICES"))
        if selectors is None:
            chosen = list(range(count))
        else:
            chosen = []
            for sel in selectors:
                index = self._resolve(sel, uuids)
                if index is None:
                    break  # CUDA ignores everything after the first invalid entry
                if index not in chosen:
                    chosen.append(index)
        gpus = []
        for cuda_index, idx in enumerate(chosen):
            handle = handles[idx]
            gpu = _Gpu(
                domain=f"gpu:{cuda_index}",
                handle=handle,
                physical_index=idx,
                uuid=uuids[idx],
                name=_text(nvml.nvmlDeviceGetName(handle)),
                has_counter=self._has_counter(nvml, handle),
                mig=self._mig_enabled(nvml, handle),
            )
            problem = self._unmeasurable(nvml, gpu)
            if problem:
                self._warnings.append(problem)
            else:
                gpu.track = self._track(nvml, gpu)
                gpus.append(gpu)
        return gpus

    @staticmethod
    def _track(nvml: Any, gpu: _Gpu) -> CounterTrack | PowerTrack:
        """The energy counter's rules, or a power integral, bounded by the GPU's top limit."""
        try:
            _low, high_mw = nvml.nvmlDeviceGetPowerManagementLimitConstraints(gpu.handle)
            max_power_w = 2.0 * high_mw / 1000.0 if high_mw > 0 else GPU_MAX_POWER_W
        except (nvml.NVMLError, AttributeError, TypeError, ValueError):
            max_power_w = GPU_MAX_POWER_W
        label = f"{gpu.domain} ({gpu.name})"
        if not gpu.has_counter:
            return PowerTrack(f"{label} power", max_power_w=max_power_w)
        return CounterTrack(
            f"{label} energy counter",
            unit_j=1e-3,
            max_power_w=max_power_w,
            update_period_s=NVML_UPDATE_PERIOD_S,
            frozen_after_s=NVML_FROZEN_AFTER_S,
        )

    @staticmethod
    def _unmeasurable(nvml: Any, gpu: _Gpu) -> str:
        """Why a GPU without the energy counter cannot be measured at all ("" if it can)."""
        if gpu.has_counter:
            return ""
        try:
            nvml.nvmlDeviceGetPowerUsage(gpu.handle)
            return ""
        except nvml.NVMLError as exc:
            return (
                f"nvml: {gpu.domain} ({gpu.name}, NVML index {gpu.physical_index}) is left out: "
                f"NVML answers {_text(exc)!r} for both its energy counter and its power reading "
                "(Jetson-class boards and some vGPUs), so its energy cannot be read; measure "
                "it with the board's own power rails (tegrastats) or on the host"
            )

    def _resolve(self, selector: str, uuids: list[str]) -> int | None:
        if selector.startswith("MIG-"):
            reason = (
                f"CUDA_VISIBLE_DEVICES selects MIG instance {selector}: NVML reports power and "
                "energy per physical GPU only, not per MIG instance. Measure with the parent "
                "GPU visible (its UUID, from `nvidia-smi -L`) and note that other instances "
                "on it share the figure"
            )
            self._warnings.append(f"nvml: the GPU is not measured: {reason}")
            raise EnergyHarnessError(reason)
        if selector.isdigit():
            index = int(selector)
            return index if index < len(uuids) else None
        matches = [i for i, u in enumerate(uuids) if u.startswith(selector)]
        if len(matches) > 1:
            raise EnergyHarnessError(
                f"CUDA_VISIBLE_DEVICES entry {selector!r} matches several GPUs; give more of "
                "the UUID (see `nvidia-smi -L`)"
            )
        return matches[0] if matches else None

    @staticmethod
    def _has_counter(nvml: Any, handle: Any) -> bool:
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            return True
        except nvml.NVMLError:
            return False

    @staticmethod
    def _mig_enabled(nvml: Any, handle: Any) -> bool:
        try:
            current, _pending = nvml.nvmlDeviceGetMigMode(handle)
            return bool(current)
        except (nvml.NVMLError, AttributeError, TypeError):
            return False

    # -- contract --------------------------------------------------------------------
    def unavailable_reason(self) -> str | None:
        return self._reason

    def warnings(self) -> list[str]:
        return list(self._warnings)

    def domains(self) -> list[Domain]:
        out = []
        for gpu in self._gpus:
            method = "energy counter" if gpu.has_counter else "integrated power samples"
            note = f"{gpu.name} (NVML index {gpu.physical_index}), {method}"
            if gpu.mig:
                note += "; MIG enabled: the figure is for the whole physical GPU"
            out.append(Domain(gpu.domain, SOURCE_COUNTER, gpu.domain, None, note))
        return out

    def start(self) -> None:
        if self._reason or self._loop is not None:
            return
        if all(g.has_counter for g in self._gpus):
            return
        self._sample()  # the first power sample of each GPU without counter
        self._start_loop("nvml-power", 1.0 / max(self.options.sample_hz, 0.1), self._sample)

    def _guarded(self, gpu: _Gpu, now: float) -> None:
        """Read one GPU into its track; a failed NVML query is an invalid reading (the
        energy until the next query that works is unknown)."""
        try:
            if gpu.has_counter:
                raw_mj = self._nvml.nvmlDeviceGetTotalEnergyConsumption(gpu.handle)
                gpu.track.advance(int(raw_mj), now)  # type: ignore[union-attr]
            else:
                power_w = self._nvml.nvmlDeviceGetPowerUsage(gpu.handle) / 1000.0
                gpu.track.add(power_w, now)  # type: ignore[union-attr]
        except self._nvml.NVMLError as exc:
            gpu.track.fail(f"NVML could not read {gpu.domain} ({gpu.name}): {_text(exc)}")

    def _sample(self) -> None:
        with self._lock:
            now = time.monotonic()
            for gpu in self._gpus:
                if not gpu.has_counter:
                    self._guarded(gpu, now)

    def read(self) -> Reading:
        if self._reason:
            raise EnergyHarnessError(f"nvml probe unavailable: {self._reason}")
        with self._lock:
            now = time.monotonic()
            for gpu in self._gpus:
                if not gpu.has_counter and self._loop is None:
                    raise EnergyHarnessError(
                        f"{gpu.domain} has no energy counter and the power sampler is "
                        "not running: call start() before read()"
                    )
                self._guarded(gpu, now)
            energy = {g.domain: g.energy_j for g in self._gpus}
            return reading(now, energy, {g.domain: g.track for g in self._gpus})

    def info(self) -> dict[str, object]:
        return {
            "driver_version": self._driver,
            "gpus": [
                {
                    "domain": g.domain,
                    "name": g.name,
                    "uuid": g.uuid,
                    "nvml_index": g.physical_index,
                    "energy_counter": g.has_counter,
                    "mig_enabled": g.mig,
                }
                for g in self._gpus
            ],
            "update_period_s": NVML_UPDATE_PERIOD_S,
            "sample_hz": self.options.sample_hz,
        }
