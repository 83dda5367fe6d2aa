"""Fake hardware for `benchmarks.overhead`: answers at once, so a row measures the probe's
and the meter's own work. Counter files advance between blocks of window pairs (untimed),
as real counters do, so that no probe sees a frozen counter and takes the invalid path."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import types
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from probes.amd_gpu import AmdSmiProbe
from probes.base import Probe, ProbeOptions
from probes.bmc import BmcProbe
from probes.hwmon import HwmonProbe
from probes.jetson import JetsonProbe


class Counters:
    """Counter files that `advance()` moves forward by 1 mJ each (a few milliwatts)."""

    def __init__(self) -> None:
        self.files: dict[Path, int] = {}

    def add(self, path: Path, value: int = 123456789) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
        self.files[path] = value
        return path

    def advance(self) -> None:
        for path, value in self.files.items():
            self.files[path] = value + 1000
            path.write_text(f"{value + 1000}\n")


def _swap_module(name: str, module: types.ModuleType, build: Callable[[], Probe]) -> Probe:
    """`build()` while `import name` finds `module` (the real module, if any, is put back)."""
    real = sys.modules.get(name)
    sys.modules[name] = module
    try:
        return build()
    finally:
        if real is None:
            del sys.modules[name]
        else:
            sys.modules[name] = real


def fake_amdsmi_probe() -> Probe:
    """The amdsmi probe over an AMD SMI stand-in with one GPU (a counter at 300 W)."""
    mod = types.ModuleType("amdsmi")
    mod.AmdSmiException = type("AmdSmiException", (Exception,), {})  # type: ignore[attr-defined]
    ticks = [0]

    def energy_count(handle: object) -> dict:
        ticks[0] += 20  # 300 W at 15.3 uJ per tick, read about every microsecond
        return {"energy_accumulator": ticks[0], "counter_resolution": 15.259, "timestamp": 0}

    calls: dict[str, Callable[..., object]] = {
        "amdsmi_init": lambda *a: None,
        "amdsmi_get_processor_handles": lambda: [0],
        "amdsmi_get_gpu_device_uuid": lambda h: "fake",
        "amdsmi_get_gpu_asic_info": lambda h: {"market_name": "fake MI300X"},
        "amdsmi_get_power_info": lambda h: {"current_socket_power": 300},
        "amdsmi_get_energy_count": energy_count,
        "amdsmi_get_power_cap_info": lambda h: {"max_power_cap": 750_000_000},
    }
    for name, call in calls.items():
        setattr(mod, name, call)
    return _swap_module("amdsmi", mod, AmdSmiProbe)


def fake_hwmon_probe(root: Path, counters: Counters) -> Probe:
    """The hwmon probe over an amd_energy device with two socket counters."""
    device = root / "class/hwmon/hwmon0"
    device.mkdir(parents=True)
    (device / "name").write_text("amd_energy\n")
    for socket in range(2):
        (device / f"energy{socket + 1}_label").write_text(f"Esocket{socket}\n")
        counters.add(device / f"energy{socket + 1}_input")
    return HwmonProbe(ProbeOptions(sysfs_root=root, powercap_root=root / "none"))


def fake_jetson_probe(root: Path) -> Probe:
    """The jetson probe over an INA3221 hwmon folder with three rails (mA, mV)."""
    device = root / "bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1"
    device.mkdir(parents=True)
    (device / "name").write_text("ina3221\n")
    for index, rail in enumerate(["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"], start=1):
        (device / f"in{index}_label").write_text(rail + "\n")
        (device / f"curr{index}_input").write_text("1000\n")
        (device / f"in{index}_input").write_text("5000\n")
    return JetsonProbe(ProbeOptions(sysfs_root=root))


class _Redfish(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms wait for a delayed ACK
    BODIES = {
        "/redfish/v1/Chassis": b'{"Members": [{"@odata.id": "/redfish/v1/Chassis/1"}]}',
        "/redfish/v1/Chassis/1": b'{"Power": {"@odata.id": "/redfish/v1/Chassis/1/Power"}}',
        "/redfish/v1/Chassis/1/Power": b'{"PowerControl": [{"PowerConsumedWatts": 412}]}',
    }

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = self.BODIES.get(self.path, b"{}")
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def fake_bmc_probe() -> Iterator[Probe]:
    """The bmc probe over a Redfish server on 127.0.0.1 (read() makes no request)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redfish)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    saved = {k: v for k, v in os.environ.items() if k.startswith("ENERGY_HARNESS_BMC")}
    for key in saved:
        del os.environ[key]
    os.environ["ENERGY_HARNESS_BMC_URL"] = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        probe = BmcProbe()
    finally:
        del os.environ["ENERGY_HARNESS_BMC_URL"]
        os.environ.update(saved)
    try:
        yield probe
    finally:
        probe.close()
        server.shutdown()
        server.server_close()
