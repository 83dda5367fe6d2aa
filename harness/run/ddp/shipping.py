"""Training samples the runner hands to the ranks of its node, so they load no dataset.

Rank r's batch is samples `r x batch_size` onwards of the training split (wrapping),
whether it comes from the shipped file or from the whole dataset.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

from harness.spec.catalog import DatasetSplits
from harness.workloads.batches import make_batch, split_samples, stack_samples

SHIPPED_SOURCE = "training samples the runner sent to the ranks of its node"


def ship_batches(data: DatasetSplits, path: Path, samples: int) -> None:
    """Save the first `samples` training samples (wrapping) and what identifies the data."""
    inputs, labels = stack_samples(split_samples(data, "train", 0, samples))
    torch.save(
        {
            "inputs": inputs,
            "labels": labels,
            "name": data.name,
            "input_shape": list(data.input_shape),
            "num_classes": int(data.num_classes),
            "input_dtype": str(data.input_dtype).removeprefix("torch."),
            "fingerprint_json": json.dumps(data.fingerprint),
        },
        path,
    )


def shipped_data(path: Path) -> DatasetSplits:
    """The DatasetSplits view of `ship_batches`' file (same cache key as the full data)."""
    saved = torch.load(path, weights_only=True)
    inputs, labels = saved["inputs"], saved["labels"]
    return DatasetSplits(
        name=saved["name"],
        train=TensorDataset(inputs, labels),
        test=TensorDataset(inputs[:0], labels[:0]),
        input_shape=tuple(saved["input_shape"]),
        num_classes=saved["num_classes"],
        source=SHIPPED_SOURCE,
        input_dtype=getattr(torch, saved["input_dtype"]),
        # as prepare_model keys it: the fingerprint, else the name
        fingerprint=json.loads(saved["fingerprint_json"]) or {"name": saved["name"]},
    )


def rank_batch(
    data: DatasetSplits, batch_size: int, rank: int, device: Any, input_dtype: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank `rank`'s training batch: samples `rank x batch_size` onwards, on `device`."""
    return make_batch(
        batch_size,
        data=data,
        split="train",
        start=rank * batch_size,
        device=device,
        input_dtype=input_dtype,
    )
