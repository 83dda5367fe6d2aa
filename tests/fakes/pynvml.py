"""A fake `pynvml` (the nvidia-ml-py binding): GPUs drawing constant power.

Configured with `configure(gpus, init_error=None)` in a test, or for a subprocess (put
this folder first on PYTHONPATH) by $FAKE_NVML, a JSON object {"gpus": [...],
"init_error": ...}. Each GPU: "uuid", "power_w", "counter" (the total-energy counter
answers), "power" (the power reading answers), "mig" (MIG mode on). A query a GPU does
not support raises NVMLError("Not Supported"), as the real binding does. The energy
counter is power x time since `configure`, in millijoules.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass


class NVMLError(Exception):
    pass


@dataclass
class FakeGpu:
    uuid: str
    power_w: float
    counter: bool = True
    power: bool = True
    mig: bool = False
    name: str = "Fake H200"


GPUS: list[FakeGpu] = []
INIT_ERROR: str | None = None
T0 = time.monotonic()


def configure(gpus: list[FakeGpu], init_error: str | None = None) -> None:
    """The GPUs this fake NVML sees, their counters starting at zero now."""
    global GPUS, INIT_ERROR, T0
    GPUS, INIT_ERROR, T0 = list(gpus), init_error, time.monotonic()


def _not_supported(supported: bool) -> None:
    if not supported:
        raise NVMLError("Not Supported")


def nvmlInit() -> None:
    if INIT_ERROR:
        raise NVMLError(INIT_ERROR)


def nvmlSystemGetDriverVersion() -> str:
    return "555.42"


def nvmlDeviceGetCount() -> int:
    return len(GPUS)


def nvmlDeviceGetHandleByIndex(index: int) -> FakeGpu:
    return GPUS[index]


def nvmlDeviceGetUUID(gpu: FakeGpu) -> str:
    return gpu.uuid


def nvmlDeviceGetName(gpu: FakeGpu) -> str:
    return gpu.name


def nvmlDeviceGetTotalEnergyConsumption(gpu: FakeGpu) -> int:
    _not_supported(gpu.counter)
    return int(gpu.power_w * (time.monotonic() - T0) * 1000)


def nvmlDeviceGetPowerUsage(gpu: FakeGpu) -> int:
    _not_supported(gpu.power)
    return int(gpu.power_w * 1000)


def nvmlDeviceGetMigMode(gpu: FakeGpu) -> tuple[int, int]:
    return int(gpu.mig), int(gpu.mig)


if os.environ.get("FAKE_NVML"):
    _config = json.loads(os.environ["FAKE_NVML"])
    configure([FakeGpu(**g) for g in _config.get("gpus", [])], _config.get("init_error"))
