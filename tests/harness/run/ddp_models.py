"""A user's model factory for the DDP tests: trains fine, fails on global rank 1 only."""

from __future__ import annotations

import os

import torch
from torch import nn


class DiesOnRank1(nn.Module):
    """A linear classifier whose forward pass raises in the process of torchrun rank 1."""

    def __init__(self, in_features: int = 1024, num_classes: int = 10) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if os.environ.get("RANK") == "1":
            raise RuntimeError("rank 1 dies on purpose")
        return self.fc(x.flatten(1))


def dies_on_rank_1(in_features: int = 1024, num_classes: int = 10) -> nn.Module:
    return DiesOnRank1(in_features, num_classes)


dies_on_rank_1.input_shape = (1, 32, 32)
