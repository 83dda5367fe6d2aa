"""Training (SGD with momentum, the classic LeNet-5 recipe, configurable) and evaluation.

Runs are deterministic for a given seed on the same machine and thread count: the seed
fixes the initialisation (see `seed_everything`) and the shuffling order of every epoch.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from probes.errors import EnergyHarnessError


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
        """The settings as a plain dict (for cache keys and reports)."""
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """What a training run did: epochs, samples seen, mean loss per epoch, wall time (s)."""

    epochs: int
    samples: int
    loss_per_epoch: tuple[float, ...]
    duration_s: float


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (weight initialisation)."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # numpy is optional for us
        pass


def make_loader(
    dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int = 0, num_workers: int = 0
) -> DataLoader:
    """A DataLoader whose shuffling order depends only on `seed`."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=num_workers,
        worker_init_fn=_seed_worker if num_workers else None,
    )


def _seed_worker(worker_id: int) -> None:
    seed_everything(torch.initial_seed() % 2**32)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """SGD with momentum over the model's trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise EnergyHarnessError(
            f"{type(model).__name__} has no trainable parameters (is it quantized?); "
            "train the float model before quantizing"
        )
    return torch.optim.SGD(
        params,
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov,
    )


def train(
    model: nn.Module,
    dataset: Dataset,
    config: TrainConfig,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train `model` in place with cross-entropy and SGD; returns losses and sample count.

    Pruning masks registered with torch.nn.utils.prune stay in force: the effective
    weights are recomputed from `weight_orig * weight_mask` on every forward, so pruned
    weights stay zero. Raises EnergyHarnessError if the loss becomes NaN/inf (lower `lr`).
    """
    device = torch.device(device)
    model.to(device).train()
    optimizer = make_optimizer(model, config)
    criterion = nn.CrossEntropyLoss()
    loader = make_loader(
        dataset, config.batch_size, shuffle=True, seed=seed, num_workers=config.num_workers
    )
    losses: list[float] = []
    samples = 0
    start_s = time.perf_counter()
    for epoch in range(config.epochs):
        total_loss, batches = 0.0, 0
        for inputs, labels in loader:
            inputs, labels = inputs.to(device), labels.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(inputs), labels)
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
            batches += 1
            samples += len(labels)
        mean_loss = total_loss / max(batches, 1)
        if not math.isfinite(mean_loss):
            raise EnergyHarnessError(
                f"training diverged: mean loss {mean_loss} in epoch {epoch + 1}; "
                f"lower the learning rate (lr = {config.lr})"
            )
        losses.append(mean_loss)
        if on_epoch is not None:
            on_epoch(epoch + 1, mean_loss)
    model.eval()
    return TrainResult(config.epochs, samples, tuple(losses), time.perf_counter() - start_s)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    input_dtype: torch.dtype | None = None,
) -> float:
    """Top-1 accuracy of `model` on `dataset`, as a fraction in [0, 1].

    `input_dtype` casts float inputs (e.g. torch.float16 for half-precision models).
    Raises EnergyHarnessError on an empty dataset.
    """
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise EnergyHarnessError("cannot evaluate accuracy on an empty dataset")
    device = torch.device(device)
    model.eval()
    correct = total = 0
    for inputs, labels in make_loader(dataset, batch_size, shuffle=False):
        inputs = inputs.to(device)
        if input_dtype is not None and inputs.is_floating_point():
            inputs = inputs.to(input_dtype)
        predicted = model(inputs).argmax(dim=1).cpu()
        correct += int((predicted == labels).sum())
        total += len(labels)
    return correct / total
