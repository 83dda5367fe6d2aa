"""The environment record of a run: machine, software, probes and carbon settings."""

from __future__ import annotations

import os
import platform
import socket
import sys
from importlib import metadata
from typing import Any

from harness.measure.clock import utc_now_iso
from harness.measure.probes import ProbeStatus
from probes.base import Probe
from probes.model import cpu_model_name

PACKAGES = (
    "energy-harness",
    "torch",
    "torchvision",
    "numpy",
    "pandas",
    "scikit-learn",
    "torch-pruning",
    "codecarbon",
    "nvidia-ml-py",
    "pyRAPL",
)


def package_versions() -> dict[str, str | None]:
    """Installed version of each package that shapes the figures (None if absent)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def torch_facts() -> dict[str, Any]:
    """Torch build and device facts (only if torch is already imported)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    facts: dict[str, Any] = {
        "version": torch.__version__,
        "cuda_build": torch.version.cuda,
        "threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        facts["cuda_devices"] = [
            torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
        ]
    return facts


def environment_record(
    statuses: list[ProbeStatus], probes: list[Probe], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A JSON-ready record: CPU/GPU, kernel, packages, probes used and why others were not."""
    uname = platform.uname()
    gpus: list[Any] = []
    driver = None
    for probe in probes:
        info = probe.info()
        if probe.name == "nvml":
            gpus = list(info.get("gpus", []))
            driver = info.get("driver_version")
    return {
        "recorded_utc": utc_now_iso(),
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model_name(),
        "logical_cpus": os.cpu_count(),
        "kernel": f"{uname.system} {uname.release}",
        "machine": uname.machine,
        "python": sys.version.split()[0],
        "gpus": gpus,
        "nvidia_driver": driver,
        "packages": package_versions(),
        "torch": torch_facts(),
        "probes_used": {p.name: {"source": p.source, "info": p.info()} for p in probes},
        "probes": [
            {
                "name": s.name,
                "available": s.available,
                "source": s.source,
                "domains": list(s.domains),
                "why_not": s.reason,
                "warnings": list(s.warnings),
            }
            for s in statuses
        ],
        **(extra or {}),
    }
