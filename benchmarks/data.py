"""The bundled datasets, registered in the `energy_harness.datasets` entry-point group:
`digits` (bundled, the default), `mnist`, `fashion-mnist`, `cifar10` (torchvision, from a
local data root) and `synthetic` (random tensors). Each loader takes the options of
`harness.spec.catalog.load_dataset` and ignores those it does not use.

Nothing is downloaded unless the caller passes `download=True`. A dataset that is not on
disk raises `EnergyHarnessError` naming the folder that was searched and how to get it.
All image datasets are normalised to [-1, 1] as in the classic LeNet-5 recipe.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

from harness.errors import EnergyHarnessError
from harness.spec.catalog import DatasetSplits, model_spec

DATA_ROOT_ENV = "ENERGY_HARNESS_DATA"  # default data root when none is passed
DEFAULT_DATA_ROOT = Path("data")
DIGITS_SPLIT_SEED = 0  # the digits train/test split never depends on the run's seed
DIGITS_TEST_FRACTION = 0.2  # 1437 train / 360 test images
SYNTHETIC_TRAIN_SIZE = 512
SYNTHETIC_TEST_SIZE = 256


class SyntheticDataset(Dataset):
    """Random samples of a fixed shape and random labels, generated on access.

    Sample `i` is the same for the same seed, and nothing is held in memory, so large
    inputs (3x224x224) cost no RAM. Token inputs (`dtype=torch.long`) are drawn from
    [0, vocab_size). Labels carry no signal: use it for throughput, never for accuracy.
    """

    def __init__(
        self,
        length: int,
        input_shape: tuple[int, ...],
        num_classes: int,
        seed: int,
        dtype: torch.dtype = torch.float32,
        vocab_size: int = 1000,
    ) -> None:
        self.length = length
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.seed = seed
        self.dtype = dtype
        self.vocab_size = vocab_size

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        if self.dtype == torch.long:
            x = torch.randint(0, self.vocab_size, self.input_shape, generator=gen)
        else:
            x = torch.randn(self.input_shape, generator=gen, dtype=self.dtype)
        label = int(torch.randint(0, self.num_classes, (1,), generator=gen))
        return x, label


def default_data_root() -> Path:
    """The data root used when none is given: $ENERGY_HARNESS_DATA, else ./data."""
    return Path(os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT)


def image_side(model: str | None) -> int:
    """28 for a model whose input is 28x28 (LeNet-300-100, as MNIST), else 32 (LeNet-5)."""
    if model is not None and tuple(model_spec(model).input_shape[-2:]) == (28, 28):
        return 28
    return 32


@functools.lru_cache(maxsize=2)
def load_digits_splits(side: int = 32) -> DatasetSplits:
    """scikit-learn's bundled 8x8 digits as 1 x side x side images normalised to [-1, 1].

    side 32: the digit upscaled to 24x24 in a 4-pixel blank margin (LeNet-5's input);
    side 28: upscaled to 20x20 in a 4-pixel margin, MNIST's layout (LeNet-300-100's 784
    inputs). 1797 real handwritten digits; a fixed stratified 80/20 split (seed
    DIGITS_SPLIT_SEED). Loaded once per process and side: callers share the tensors and
    must not modify them.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    # 8x8 -> (side - 8) square plus a 4-pixel blank margin, as MNIST keeps digits off the border
    inner = side - 8
    images = torch.nn.functional.interpolate(
        images, size=(inner, inner), mode="bilinear", align_corners=False
    )
    images = torch.nn.functional.pad(images, (4, 4, 4, 4))
    images = (images.clamp(0.0, 1.0) - 0.5) / 0.5
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(
        list(range(len(labels))),
        test_size=DIGITS_TEST_FRACTION,
        random_state=DIGITS_SPLIT_SEED,
        stratify=bunch.target,
    )
    train_idx_t, test_idx_t = torch.as_tensor(train_idx), torch.as_tensor(test_idx)
    train = TensorDataset(images[train_idx_t], labels[train_idx_t])
    test = TensorDataset(images[test_idx_t], labels[test_idx_t])
    return DatasetSplits(
        name="digits",
        train=train,
        test=test,
        input_shape=(1, side, side),
        num_classes=10,
        source=f"scikit-learn bundled digits (8x8 upscaled to {inner}x{inner}, padded to "
        f"{side}x{side})",
        fingerprint={
            "name": "digits",
            "input_shape": [1, side, side],
            "train_size": len(train),
            "test_size": len(test),
            "split_seed": DIGITS_SPLIT_SEED,
            "preprocess": f"bilinear-{inner}-pad-4",
        },
    )


@dataclass(frozen=True)
class _TorchvisionData:
    cls_name: str
    folder: str  # the folder torchvision keeps it in, under the data root
    input_shape: tuple[int, ...]
    resize: bool  # 28x28 -> 32x32 as in the LeNet-5 recipe (not for 28x28 models)


_TORCHVISION = {
    "mnist": _TorchvisionData("MNIST", "MNIST/raw", (1, 32, 32), True),
    "fashion-mnist": _TorchvisionData("FashionMNIST", "FashionMNIST/raw", (1, 32, 32), True),
    "cifar10": _TorchvisionData("CIFAR10", "cifar-10-batches-py", (3, 32, 32), False),
}


def load_torchvision_splits(
    name: str, data_root: str | Path | None = None, download: bool = False, side: int = 32
) -> DatasetSplits:
    """MNIST, Fashion-MNIST or CIFAR-10 from `data_root` (torchvision's folder layout);
    MNIST-like data is resized to 32x32 unless `side` is 28 (its own size).

    Raises EnergyHarnessError if the files are missing (and `download` is False) or if the
    download fails (it needs network access).
    """
    import torchvision
    from torchvision import transforms

    info = _TORCHVISION[name]
    if info.resize and side == 28:
        info = dataclasses.replace(info, input_shape=(1, 28, 28), resize=False)
    root = Path(data_root) if data_root is not None else default_data_root()
    channels = info.input_shape[0]
    steps: list[Callable[..., Any]] = []
    if info.resize:
        steps.append(transforms.Resize((32, 32)))
    steps += [transforms.ToTensor(), transforms.Normalize((0.5,) * channels, (0.5,) * channels)]
    transform = transforms.Compose(steps)
    cls = getattr(torchvision.datasets, info.cls_name)
    try:
        train = cls(root=str(root), train=True, download=download, transform=transform)
        test = cls(root=str(root), train=False, download=download, transform=transform)
    except (RuntimeError, OSError) as exc:
        where = root.resolve() / info.folder
        if download:
            raise EnergyHarnessError(
                f"dataset {name!r}: download into {root.resolve()} failed ({exc}); "
                "this needs network access: download on a connected machine and copy the "
                f"folder {info.folder.split('/')[0]!r} under the data root"
            ) from exc
        raise EnergyHarnessError(
            f"dataset {name!r} not found: looked in {where}; copy torchvision's "
            f'{info.folder.split("/")[0]!r} folder there, point `data_root = "..."` in the '
            f"suite's [suite] table (or ${DATA_ROOT_ENV}) at a folder that holds it, or set "
            "`download = true` there to fetch it once (needs network)"
        ) from exc
    return DatasetSplits(
        name=name,
        train=train,
        test=test,
        input_shape=info.input_shape,
        num_classes=10,
        source=f"torchvision {info.cls_name} from {root.resolve()}",
        fingerprint={
            "name": name,
            "input_shape": list(info.input_shape),
            "train_size": len(train),
            "test_size": len(test),
        },
    )


def load_synthetic_splits(
    model: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int = 10,
    seed: int = 0,
    train_size: int = SYNTHETIC_TRAIN_SIZE,
    test_size: int = SYNTHETIC_TEST_SIZE,
) -> DatasetSplits:
    """Random tensors of the model's input shape (or `input_shape`) with random labels.

    For throughput-only cases: accuracy on it is chance level by construction.
    """
    dtype, vocab_size = torch.float32, 1000
    if model is not None:
        spec = model_spec(model)
        input_shape = input_shape or spec.input_shape
        dtype, vocab_size = spec.input_dtype, spec.vocab_size or vocab_size
    if input_shape is None:
        raise EnergyHarnessError(
            "dataset 'synthetic' needs a model (to take its input shape) or an input_shape"
        )
    if train_size < 1 or test_size < 1:
        raise EnergyHarnessError(
            f"dataset 'synthetic': train_size and test_size must be >= 1 "
            f"(got {train_size}, {test_size})"
        )
    shape = tuple(int(d) for d in input_shape)
    train = SyntheticDataset(train_size, shape, num_classes, seed, dtype, vocab_size)
    test = SyntheticDataset(test_size, shape, num_classes, seed + 1, dtype, vocab_size)
    return DatasetSplits(
        name="synthetic",
        train=train,
        test=test,
        input_shape=shape,
        num_classes=num_classes,
        source=f"synthetic random {'tokens' if dtype == torch.long else 'tensors'} {shape}",
        input_dtype=dtype,
        fingerprint={
            "name": "synthetic",
            "input_shape": list(shape),
            "dtype": str(dtype),
            "num_classes": num_classes,
            "train_size": train_size,
            "test_size": test_size,
            "seed": seed,
        },
    )


def load_digits(*, model: str | None = None, **_: Any) -> DatasetSplits:
    """Entry point `digits`: scikit-learn's bundled digits, 28x28 for 28x28 models."""
    return load_digits_splits(image_side(model))


def load_mnist(
    *,
    data_root: str | Path | None = None,
    download: bool = False,
    model: str | None = None,
    **_: Any,
):
    """Entry point `mnist`: MNIST from the data root (28x28 for 28x28 models, else 32x32)."""
    side = image_side(model)
    return load_torchvision_splits("mnist", data_root=data_root, download=download, side=side)


def load_fashion_mnist(
    *,
    data_root: str | Path | None = None,
    download: bool = False,
    model: str | None = None,
    **_: Any,
):
    """Entry point `fashion-mnist`: Fashion-MNIST from the data root (28x28 for 28x28 models)."""
    side = image_side(model)
    return load_torchvision_splits(
        "fashion-mnist", data_root=data_root, download=download, side=side
    )


def load_cifar10(*, data_root: str | Path | None = None, download: bool = False, **_: Any):
    """Entry point `cifar10`: CIFAR-10 from the data root."""
    return load_torchvision_splits("cifar10", data_root=data_root, download=download)


def load_synthetic(
    *,
    model: str | None = None,
    seed: int = 0,
    data_root: Any = None,
    download: bool = False,
    **size: Any,
) -> DatasetSplits:
    """Entry point `synthetic`: random tensors of the model's input shape."""
    return load_synthetic_splits(model=model, seed=seed, **size)
