"""Models a suite can name: a registry of factories plus `package.module:factory` for a user's own.

Every model is built with random initialisation. No weights are downloaded unless the
caller passes `pretrained=True` (torchvision models only), which needs network access.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from probes.errors import EnergyHarnessError


class LeNet5(nn.Module):
    """The classic LeNet-5 of the Green-AI pruning example: 1x32x32 input, 10 classes.

    conv 6@5x5 -> ReLU -> max-pool 2 -> conv 16@5x5 -> ReLU -> max-pool 2
    -> fc 400-120 -> ReLU -> fc 120-84 -> ReLU -> fc 84-10.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.relu = nn.ReLU()
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


class LeNet300100(nn.Module):
    """LeNet-300-100, the fully connected network of the pruning literature (flattened input)."""

    def __init__(self, num_classes: int = 10, in_features: int = 32 * 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, 300),
            nn.ReLU(),
            nn.Linear(300, 100),
            nn.ReLU(),
            nn.Linear(100, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TransformerClassifier(nn.Module):
    """A small encoder classifier on token sequences: embedding, N encoder layers, mean pool."""

    def __init__(
        self,
        num_classes: int = 10,
        vocab_size: int = 1000,
        seq_len: int = 128,
        d_model: int = 256,
        nhead: int = 4,
        num_layers: int = 4,
        dim_feedforward: int = 1024,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Parameter(torch.zeros(1, seq_len, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model, nhead, dim_feedforward, dropout=0.0, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.pos[:, : tokens.shape[1]]
        return self.head(self.encoder(x).mean(dim=1))


def _torchvision(name: str) -> Callable[..., nn.Module]:
    def build(num_classes: int = 10, pretrained: bool = False) -> nn.Module:
        import torchvision

        factory = getattr(torchvision.models, name)
        if pretrained:  # downloads weights: only when the user asked for it
            model = factory(weights="DEFAULT")
            if num_classes != 1000:
                raise EnergyHarnessError(
                    f"model {name!r}: pretrained weights have 1000 classes, not {num_classes}; "
                    "drop `pretrained` or set num_classes = 1000"
                )
            return model
        return factory(weights=None, num_classes=num_classes)

    return build


@dataclass(frozen=True)
class ModelSpec:
    """A named model: its factory, the shape of one input sample and its dtype."""

    name: str
    factory: Callable[..., nn.Module]
    input_shape: tuple[int, ...]
    input_dtype: torch.dtype = torch.float32
    vocab_size: int | None = None  # for token inputs: values drawn from [0, vocab_size)


MODELS: dict[str, ModelSpec] = {
    "lenet5": ModelSpec("lenet5", LeNet5, (1, 32, 32)),
    "mlp": ModelSpec("mlp", LeNet300100, (1, 32, 32)),
    "resnet18": ModelSpec("resnet18", _torchvision("resnet18"), (3, 224, 224)),
    "mobilenet_v2": ModelSpec("mobilenet_v2", _torchvision("mobilenet_v2"), (3, 224, 224)),
    "transformer": ModelSpec(
        "transformer", TransformerClassifier, (128,), torch.long, vocab_size=1000
    ),
}


def model_spec(name: str) -> ModelSpec:
    """The spec of a registered model or of a user's `package.module:factory`.

    A user factory's input shape is read from its `input_shape` attribute if it has one,
    else (3, 224, 224) is assumed.
    """
    if name in MODELS:
        return MODELS[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise EnergyHarnessError(
                f"model {name!r}: cannot import {attr!r} from module {module_name!r} ({exc}); "
                "check that the module is importable (on PYTHONPATH) and defines the factory"
            ) from exc
        shape = tuple(getattr(factory, "input_shape", (3, 224, 224)))
        return ModelSpec(name, factory, shape)
    known = ", ".join(sorted(MODELS))
    raise EnergyHarnessError(
        f"unknown model {name!r}; known models: {known}, or a factory as 'package.module:function'"
    )


def build_model(name: str, **kwargs: object) -> nn.Module:
    """Build a model by registry name or `package.module:factory`, randomly initialised."""
    return model_spec(name).factory(**kwargs)


def model_kwargs_for_input(
    name: str, input_shape: tuple[int, ...], num_classes: int
) -> dict[str, int]:
    """Keyword arguments that fit a model to a dataset's sample shape and class count.

    Passes only what the factory accepts: `num_classes`; `in_channels` (shape[0]) for
    conv nets; `in_features` (values per sample) for MLPs; `seq_len` for token models.
    """
    params = inspect.signature(model_spec(name).factory).parameters
    kwargs: dict[str, int] = {}
    if "num_classes" in params:
        kwargs["num_classes"] = int(num_classes)
    if "in_channels" in params and len(input_shape) == 3:
        kwargs["in_channels"] = int(input_shape[0])
    if "in_features" in params:
        kwargs["in_features"] = int(math.prod(input_shape))
    if "seq_len" in params and len(input_shape) == 1:
        kwargs["seq_len"] = int(input_shape[0])
    return kwargs


def example_input(name: str, batch_size: int, generator: torch.Generator | None = None):
    """A random batch of the model's input shape (tokens for sequence models)."""
    spec = model_spec(name)
    shape = (batch_size, *spec.input_shape)
    if spec.input_dtype == torch.long:
        return torch.randint(0, spec.vocab_size or 1000, shape, generator=generator)
    return torch.randn(shape, generator=generator)
