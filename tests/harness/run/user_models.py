"""A user's model factories, as a suite names them (`user_models:broken`)."""

from __future__ import annotations

import torch
from torch import nn


class Broken(nn.Module):
    """Builds fine, fails in its forward pass: a case that raises."""

    def __init__(self, num_classes: int = 10, **_: object) -> None:
        super().__init__()
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("this model always fails")


def broken(**kwargs: object) -> nn.Module:
    return Broken(**kwargs)


broken.input_shape = (1, 32, 32)


def raises(**_: object) -> nn.Module:
    """A factory that fails while building the model."""
    raise ValueError("hidden size must be even,\ngot 3")


def not_a_module(**_: object) -> object:
    """A factory that returns something other than a model."""
    return {"weights": [1, 2, 3]}


class Hungry(nn.Module):
    """Builds fine; its forward pass asks for more memory than any machine has."""

    def __init__(self, num_classes: int = 10, **_: object) -> None:
        super().__init__()
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.empty(1 << 50, device=x.device)  # 4 PiB


def hungry(**kwargs: object) -> nn.Module:
    return Hungry(**kwargs)


hungry.input_shape = (1, 32, 32)
ok = broken  # a name that console markup would turn into an emoji (`user_models:ok:`)


def wide(num_classes: int = 10, in_features: int = 1024, width: int = 32) -> nn.Module:
    """An MLP whose hidden width a suite sets (`options = { width = 4096 }`)."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, num_classes)
    )


wide.input_shape = (1, 32, 32)
