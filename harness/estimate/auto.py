"""`estimate_profile = "auto"`: the bundled profile closest to a case's device."""

from __future__ import annotations

PROFILE_BY_GPU = (("H200", "h200-class"), ("H100", "h100-class"), ("A100", "a100-class"))


def auto_profile(device: str) -> str:
    """The bundled estimate profile closest to `device` (a datasheet-class profile)."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(device))
        for key, profile in PROFILE_BY_GPU:
            if key in name:
                return profile
        if "Orin" in name:
            return "jetson-orin-class"
        return "h100-class"
    return "x86-server-cpu"
