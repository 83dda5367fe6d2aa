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
GPU is left. A read that fails makes that GPU's window invalid with the NVML error.

Update period: NVML refreshes the energy counter and power readings about every
100 ms on current data-centre GPUs, so windows shorter than `min_window_s` (0.1 s)
are mostly quantisation noise; the meter warns about them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from probes.base import SOURCE_COUNTER, Domain, Probe, ProbeOptions, Reading
from probes.errors import EnergyHarnessError

NVML_UPDATE_PERIOD_S = 0.1


@dataclass
class _Gpu:
    """One visible GPU and, where it lacks the energy counter, its power integral."""

    domain: str
    handle: Any
    physical_index: int
    uuid: str
    name: str
    has_counter: bool
    mig: bool
    energy_j: float = 0.0  # the counter's last reading, or integrated power (sampling)
    last_power_w: float = 0.0
    last_t: float = 0.0
    invalid: int = 0
    invalid_reason: str = ""
    lost: bool = False  # the last read failed: the next one starts afresh


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
                gpus.append(gpu)
        return gpus

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
        with self._lock:
            now = time.monotonic()
            for gpu in self._gpus:
                if not gpu.has_counter:
                    gpu.last_t = now
                    self._guarded(gpu, self._first_power)
        self._start_loop("nvml-power", 1.0 / max(self.options.sample_hz, 0.1), self._sample)

    def _power_w(self, gpu: _Gpu) -> float:
        return self._nvml.nvmlDeviceGetPowerUsage(gpu.handle) / 1000.0

    def _first_power(self, gpu: _Gpu) -> None:
        gpu.last_power_w = self._power_w(gpu)

    def _integrate(self, gpu: _Gpu, now: float) -> None:
        power_w = self._power_w(gpu)
        gpu.energy_j += (power_w + gpu.last_power_w) / 2 * (now - gpu.last_t)
        gpu.last_power_w, gpu.last_t = power_w, now

    def _guarded(self, gpu: _Gpu, query: Callable[[_Gpu], None]) -> None:
        """Run an NVML query of one GPU; a failure makes the GPU's readings invalid until
        the next query that works (the energy in between is unknown)."""
        try:
            query(gpu)
        except self._nvml.NVMLError as exc:
            gpu.invalid += 1
            gpu.invalid_reason = f"NVML could not read {gpu.domain} ({gpu.name}): {_text(exc)}"
            gpu.lost = True
            return
        if gpu.lost:
            gpu.invalid += 1
            gpu.lost = False

    def _sample(self) -> None:
        with self._lock:
            now = time.monotonic()
            for gpu in self._gpus:
                if not gpu.has_counter:
                    self._guarded(gpu, lambda g: self._integrate(g, now))

    def _read_counter(self, gpu: _Gpu) -> None:
        gpu.energy_j = self._nvml.nvmlDeviceGetTotalEnergyConsumption(gpu.handle) / 1000.0

    def read(self) -> Reading:
        if self._reason:
            raise EnergyHarnessError(f"nvml probe unavailable: {self._reason}")
        with self._lock:
            now = time.monotonic()
            for gpu in self._gpus:
                if gpu.has_counter:
                    self._guarded(gpu, self._read_counter)
                elif self._loop is None:
                    raise EnergyHarnessError(
                        f"{gpu.domain} has no energy counter and the power sampler is "
                        "not running: call start() before read()"
                    )
                else:
                    self._guarded(gpu, lambda g: self._integrate(g, now))
            return Reading(
                now,
                {g.domain: g.energy_j for g in self._gpus},
                {g.domain: g.invalid for g in self._gpus if g.invalid},
                {g.domain: g.invalid_reason for g in self._gpus if g.invalid},
            )

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
