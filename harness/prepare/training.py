"""Training (step 1 of the pipeline, and fine-tuning in step 4) and evaluation (step 5).

Runs are deterministic for a given seed on the same machine and thread count: the seed
fixes the initialisation (see `seed_everything`) and the shuffling order of every epoch.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from harness.errors import EnergyHarnessError
from harness.spec.train_config import TrainConfig
from harness.workloads.steps import make_optimizer

EpochDone = Callable[[int, float], None]  # (epoch, 1-based; its mean loss)


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


def train(
    model: nn.Module,
    dataset: Dataset,
    config: TrainConfig,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    on_epoch: EpochDone | None = None,
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
def correct_predictions(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    input_dtype: torch.dtype | None = None,
) -> list[bool]:
    """Whether `model`'s top-1 prediction is right, for each sample of `dataset` in order
    (the same samples for every model: what McNemar's test pairs).

    `input_dtype` casts float inputs (e.g. torch.float16 for half-precision models).
    Raises EnergyHarnessError on an empty dataset.
    """
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise EnergyHarnessError("cannot evaluate accuracy on an empty dataset")
    device = torch.device(device)
    model.eval()
    correct: list[bool] = []
    for inputs, labels in make_loader(dataset, batch_size, shuffle=False):
        inputs = inputs.to(device)
        if input_dtype is not None and inputs.is_floating_point():
            inputs = inputs.to(input_dtype)
        predicted = model(inputs).argmax(dim=1).cpu()
        correct.extend(bool(c) for c in (predicted == labels).tolist())
    return correct


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    input_dtype: torch.dtype | None = None,
) -> float:
    """Top-1 accuracy of `model` on `dataset`, as a fraction in [0, 1]
    (`correct_predictions` counted). Raises EnergyHarnessError on an empty dataset."""
    correct = correct_predictions(
        model, dataset, batch_size=batch_size, device=device, input_dtype=input_dtype
    )
    return sum(correct) / len(correct)
