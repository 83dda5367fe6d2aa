"""A model of your own for a suite: any function that returns a `torch.nn.Module`.

The suite names it `my_models:tabular_mlp`; this folder (the suite file's) is on the
import path while the suite runs. Arguments the harness can fill from the data:
`num_classes`, `in_features`, `in_channels`, `seq_len`; anything else comes from the
suite's `options` or the defaults here.
"""

from __future__ import annotations

from torch import nn


def tabular_mlp(num_classes: int = 3) -> nn.Module:
    """20 features in, `num_classes` out. Its input shape is not an attribute here: the
    suite says it (`input_shape = [20]`) or the dataset does."""
    return nn.Sequential(
        nn.Linear(20, 64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, num_classes),
    )
