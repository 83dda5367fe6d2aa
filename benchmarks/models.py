"""The bundled models, registered in the `energy_harness.models` entry-point group.

A suite names them (`lenet5`, `mlp`, `resnet18`, `mobilenet_v2`, `transformer`); a lab's
own model is `package.module:factory` or an entry point of its own package. Every model
is built with random initialisation. No weights are downloaded unless the caller passes
`pretrained=True` (torchvision models only), which needs network access.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from harness.errors import EnergyHarnessError
from harness.spec.catalog import ModelSpec


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
    """LeNet-300-100 as published (LeCun et al. 1998; the pruning literature's MLP):
    784-300-100-10, 266,610 parameters, on a flattened 1x28x28 image."""

    def __init__(self, num_classes: int = 10, in_features: int = 28 * 28) -> None:
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


LENET5 = ModelSpec("lenet5", LeNet5, (1, 32, 32))
MLP = ModelSpec("mlp", LeNet300100, (1, 28, 28))
RESNET18 = ModelSpec("resnet18", _torchvision("resnet18"), (3, 224, 224))
MOBILENET_V2 = ModelSpec("mobilenet_v2", _torchvision("mobilenet_v2"), (3, 224, 224))
TRANSFORMER = ModelSpec("transformer", TransformerClassifier, (128,), torch.long, vocab_size=1000)
