"""A fake `amdsmi` (AMD SMI's Python binding): GPUs drawing constant power.

Configured with `configure(gpus, init_error=None)`. Each GPU: "uuid", "power_w", "name",
"counter" (the energy counter answers), "power_key" (the key of amdsmi_get_power_info that
holds the socket power in W; the others read "N/A", as the real binding says),
"counter_scale" (1.0; other values miscount, as some firmware does), "resolution_uj".
The accumulator is power x time since `configure` / resolution, plus `offset_ticks`.
A query that is not supported raises AmdSmiLibraryException(2), as the real binding does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

STATUS_NOT_SUPPORTED = 2
STATUS_NO_PERM = 10


class AmdSmiException(Exception):
    pass


class AmdSmiLibraryException(AmdSmiException):
    def __init__(self, code: int) -> None:
        super().__init__(f"Error code:\n\t{code} | AMDSMI_STATUS {code}")
        self.code = code

    def get_error_code(self) -> int:
        return self.code


@dataclass
class FakeAmdGpu:
    uuid: str
    power_w: float
    name: str = "AMD Instinct MI300X"
    counter: bool = True
    power_key: str | None = "current_socket_power"
    counter_scale: float = 1.0
    resolution_uj: float = 15.259
    max_power_cap_uw: int = 750_000_000
    offset_ticks: int = 0


GPUS: list[FakeAmdGpu] = []
INIT_ERROR: int | None = None
T0 = time.monotonic()


def configure(gpus: list[FakeAmdGpu], init_error: int | None = None) -> None:
    """The GPUs this fake AMD SMI sees, their accumulators starting at zero now."""
    global GPUS, INIT_ERROR, T0
    GPUS, INIT_ERROR, T0 = list(gpus), init_error, time.monotonic()


def amdsmi_init(flag: int = 2) -> None:
    if INIT_ERROR is not None:
        raise AmdSmiLibraryException(INIT_ERROR)


def amdsmi_shut_down() -> None:
    pass


def amdsmi_get_processor_handles() -> list[FakeAmdGpu]:
    return list(GPUS)


def amdsmi_get_gpu_device_uuid(gpu: FakeAmdGpu) -> str:
    return gpu.uuid


def amdsmi_get_gpu_asic_info(gpu: FakeAmdGpu) -> dict:
    return {"market_name": gpu.name, "vendor_id": "0x1002"}


def amdsmi_get_power_info(gpu: FakeAmdGpu) -> dict:
    keys = ("socket_power", "current_socket_power", "average_socket_power")
    info: dict = {key: "N/A" for key in keys}
    if gpu.power_key:
        info[gpu.power_key] = int(round(gpu.power_w))
    return info


def amdsmi_get_energy_count(gpu: FakeAmdGpu) -> dict:
    if not gpu.counter:
        raise AmdSmiLibraryException(STATUS_NOT_SUPPORTED)
    energy_uj = gpu.power_w * (time.monotonic() - T0) * 1e6 * gpu.counter_scale
    ticks = int(energy_uj / gpu.resolution_uj) + gpu.offset_ticks
    return {"energy_accumulator": ticks, "counter_resolution": gpu.resolution_uj, "timestamp": 0}


def amdsmi_get_power_cap_info(gpu: FakeAmdGpu) -> dict:
    return {"power_cap": gpu.max_power_cap_uw, "max_power_cap": gpu.max_power_cap_uw}
