"""Training hyper-parameters (by default SGD with momentum, the classic LeNet-5 recipe),
validated. A suite's `[training]` table sets them (`harness.spec.settings.check_training`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from harness.errors import EnergyHarnessError

OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of SGD training. `lr` is the learning rate; epochs count full passes.

    The defaults train LeNet-5 on the bundled digits to 96-98% test accuracy (depending
    on the seed) in about 5 CPU-seconds. The article's MNIST recipe is
    `TrainConfig(epochs=10, batch_size=100, lr=0.001)`.
    """

    epochs: int = 10
    batch_size: int = 32
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = False
    num_workers: int = 0  # DataLoader worker processes (0 = load in this process)
    optimizer: str = "sgd"  # sgd | adam | adamw (momentum and nesterov: SGD only)

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 0:
            problems.append(f"epochs must be >= 0 (got {self.epochs})")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1 (got {self.batch_size})")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            problems.append(f"lr must be a positive number (got {self.lr})")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1) (got {self.momentum})")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0 (got {self.weight_decay})")
        if self.nesterov and self.momentum == 0:
            problems.append("nesterov needs momentum > 0")
        if self.optimizer not in OPTIMIZERS:
            problems.append(
                f"optimizer must be one of {', '.join(OPTIMIZERS)} (got {self.optimizer!r})"
            )
        if self.num_workers < 0:
            problems.append(f"num_workers must be >= 0 (got {self.num_workers})")
        if problems:
            raise EnergyHarnessError("training settings: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a suite's table; an unknown key raises EnergyHarnessError naming it."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise EnergyHarnessError(
                f"training settings: unknown key(s) {', '.join(unknown)}; "
                f"known keys: {', '.join(sorted(known))}"
            )
        return cls(**dict(values))

    def as_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (for cache keys and reports); the default optimizer
        is left out, so models trained before it could be chosen keep their cache keys."""
        values = asdict(self)
        if values["optimizer"] == "sgd":
            del values["optimizer"]
        return values
