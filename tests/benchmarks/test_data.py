"""Datasets: bundled digits, torchvision datasets from a local root, synthetic tensors."""

from __future__ import annotations

import struct

import pytest
import torch

from benchmarks.data import DIGITS_SPLIT_SEED, SyntheticDataset
from harness.spec.catalog import load_dataset
from probes.errors import EnergyHarnessError


def test_digits_are_real_32x32_images_with_a_fixed_split():
    data = load_dataset("digits")
    assert (len(data.train), len(data.test)) == (1437, 360)
    x, y = data.train[0]
    assert x.shape == (1, 32, 32) == data.input_shape
    images = data.train.tensors[0]
    assert images.min() == -1.0 and images.max() == 1.0
    assert images[:, :, :4, :].eq(-1.0).all()  # the blank margin around the digit
    assert data.num_classes == 10 and 0 <= int(y) <= 9
    # stratified: every class is in the test split, 33 to 38 times (of 360)
    counts = torch.bincount(data.test.tensors[1], minlength=10)
    assert counts.min() >= 33 and counts.max() <= 38
    assert data.fingerprint["split_seed"] == DIGITS_SPLIT_SEED


def test_digits_split_does_not_depend_on_the_seed():
    a = load_dataset("digits", seed=1)
    b = load_dataset("digits", seed=2)
    assert torch.equal(a.test.tensors[1], b.test.tensors[1])
    assert not set(map(tuple, a.train.tensors[0][:50].flatten(1).tolist())) & set(
        map(tuple, a.test.tensors[0][:50].flatten(1).tolist())
    )


@pytest.mark.parametrize(
    ("name", "folder"),
    [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST"), ("cifar10", "cifar-10-batches-py")],
)
def test_missing_dataset_says_where_it_looked_and_how_to_get_it(tmp_path, name, folder):
    with pytest.raises(EnergyHarnessError) as info:
        load_dataset(name, data_root=tmp_path)
    message = str(info.value)
    assert str(tmp_path.resolve()) in message
    assert folder in message
    assert "download = true" in message and "data_root" in message
    assert "--download" not in message and "--data-root" not in message  # no such options


def _write_idx(path, magic: int, dims: list[int], payload: bytes) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims)
    path.write_bytes(header + payload)


def _fake_mnist(root, folder: str, n_train: int, n_test: int) -> None:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        pixels = bytes((i * 7 + j) % 256 for i in range(n) for j in range(28 * 28))
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", 2051, [n, 28, 28], pixels)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", 2049, [n], bytes(i % 10 for i in range(n)))


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")]
)
def test_mnist_layout_from_a_local_root_is_resized_to_32(tmp_path, name, folder):
    _fake_mnist(tmp_path, folder, n_train=5, n_test=3)
    data = load_dataset(name, data_root=tmp_path)
    assert (len(data.train), len(data.test)) == (5, 3)
    x, y = data.test[2]
    assert x.shape == (1, 32, 32) == data.input_shape
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert y == 2
    assert str(tmp_path.resolve()) in data.source


def test_data_root_comes_from_the_environment(tmp_path, monkeypatch):
    _fake_mnist(tmp_path, "MNIST", n_train=2, n_test=2)
    monkeypatch.setenv("ENERGY_HARNESS_DATA", str(tmp_path))
    assert len(load_dataset("mnist").train) == 2


def test_synthetic_has_the_models_input_shape_and_is_repeatable():
    data = load_dataset("synthetic", model="resnet18", seed=3)
    x, y = data.train[5]
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert torch.equal(x, load_dataset("synthetic", model="resnet18", seed=3).train[5][0])
    assert not torch.equal(x, load_dataset("synthetic", model="resnet18", seed=4).train[5][0])
    assert 0 <= y < 10
    tokens = load_dataset("synthetic", model="transformer").test[0][0]
    assert tokens.dtype == torch.long and tokens.shape == (128,) and int(tokens.max()) < 1000


def test_synthetic_bounds_and_errors():
    ds = SyntheticDataset(4, (2,), num_classes=3, seed=0)
    assert len(ds) == 4
    with pytest.raises(IndexError):
        ds[4]
    with pytest.raises(EnergyHarnessError, match="needs a model"):
        load_dataset("synthetic")
    with pytest.raises(EnergyHarnessError, match="train_size"):
        load_dataset("synthetic", model="lenet5", train_size=0)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(EnergyHarnessError, match="known datasets: .*digits.*mnist"):
        load_dataset("imagenet")
