"""A dataset of your own for a suite: a loader returning `DatasetSplits`.

The suite names it `my_data:load_blobs`. A loader receives `data_root`, `download`,
`model`, `seed` and the suite's options, and returns the train and test splits (torch
datasets of `(sample, label)`), one sample's shape, the number of classes, and a
fingerprint that identifies the data for the model cache (never a local path). To use it
by a short name instead, register it in your package's pyproject.toml:

    [project.entry-points."energy_harness.datasets"]
    blobs = "my_package.my_data:load_blobs"
"""

from __future__ import annotations

from typing import Any

import torch
from sklearn.datasets import make_blobs
from torch.utils.data import TensorDataset

from harness.spec.catalog import DatasetSplits

SAMPLES, FEATURES, CLASSES = 1200, 20, 3


def load_blobs(*, seed: int = 0, **_: Any) -> DatasetSplits:
    """Three Gaussian blobs in 20 dimensions (scikit-learn), 1000 to train, 200 to test."""
    x, y = make_blobs(SAMPLES, FEATURES, centers=CLASSES, random_state=seed)
    x = torch.tensor(x, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.long)
    return DatasetSplits(
        name="blobs",
        train=TensorDataset(x[:1000], y[:1000]),
        test=TensorDataset(x[1000:], y[1000:]),
        input_shape=(FEATURES,),
        num_classes=CLASSES,
        source=f"scikit-learn make_blobs, {SAMPLES} samples, seed {seed}",
        fingerprint={"name": "blobs", "samples": SAMPLES, "seed": seed},
    )
