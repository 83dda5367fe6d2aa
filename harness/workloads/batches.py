"""Batches the workloads run on: real samples of a dataset split, or random inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from harness.errors import EnergyHarnessError
from harness.spec.catalog import DatasetSplits, example_input


def split_samples(data: DatasetSplits, split: str, start: int, count: int) -> list[Any]:
    """`count` samples of `split` ("train" or "test") from index `start` on, wrapping."""
    if split not in ("train", "test"):
        raise EnergyHarnessError(f"split must be 'train' or 'test', got {split!r}")
    dataset = data.train if split == "train" else data.test
    n = len(dataset)
    if n == 0:
        raise EnergyHarnessError(f"dataset {data.name!r} has an empty {split} split")
    return [dataset[(start + i) % n] for i in range(count)]


def stack_samples(samples: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) tensors of a list of (input, label) samples."""
    inputs = torch.stack([torch.as_tensor(x) for x, _ in samples])
    labels = torch.as_tensor([int(y) for _, y in samples], dtype=torch.long)
    return inputs, labels


def to_device(
    inputs: torch.Tensor,
    labels: torch.Tensor,
    device: str | torch.device,
    input_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move a batch to `device`, casting float inputs to `input_dtype` (e.g. float16)."""
    if input_dtype is not None and inputs.is_floating_point():
        inputs = inputs.to(input_dtype)
    return inputs.to(device), labels.to(device)


def make_batch(
    batch_size: int,
    *,
    data: DatasetSplits | None = None,
    model_name: str | None = None,
    split: str = "test",
    start: int = 0,
    device: str | torch.device = "cpu",
    input_dtype: torch.dtype | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of (inputs, labels) on `device`.

    From `data`: `batch_size` samples of `split` ("train" or "test") from index `start`,
    repeated if the split is smaller. Without data: random inputs of `model_name`'s input
    shape and random labels (10 classes). `input_dtype` casts float inputs (float16 for
    2:4 models).
    """
    if batch_size < 1:
        raise EnergyHarnessError(f"batch size must be >= 1, got {batch_size}")
    if data is not None:
        inputs, labels = stack_samples(split_samples(data, split, start, batch_size))
    elif model_name is not None:
        gen = torch.Generator().manual_seed(seed)
        inputs = example_input(model_name, batch_size, generator=gen)
        labels = torch.randint(0, 10, (batch_size,), generator=gen)
    else:
        raise EnergyHarnessError("make_batch needs a dataset or a model name")
    return to_device(inputs, labels, device, input_dtype)
