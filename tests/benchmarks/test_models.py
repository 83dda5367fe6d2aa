"""The model registry: the classic LeNet-5, the other registered models, user factories."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch import nn

from benchmarks.models import LeNet5
from harness.spec.catalog import (
    build_model,
    example_input,
    load_dataset,
    model_kwargs_for_input,
    model_names,
    model_spec,
)
from probes.errors import EnergyHarnessError


def test_lenet5_is_the_classic_network():
    model = build_model("lenet5")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 6, (5, 5)),
        (6, 16, (5, 5)),
    ]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [
        (400, 120),
        (120, 84),
        (84, 10),
    ]
    # 156 + 2416 + 48120 + 10164 + 850 parameters, as in the article's network
    assert sum(p.numel() for p in model.parameters()) == 61_706
    assert model(example_input("lenet5", 3)).shape == (3, 10)


def test_mlp_is_lenet_300_100_as_published():
    model = build_model("mlp")
    shapes = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    assert shapes == [(784, 300), (300, 100), (100, 10)]
    # 235,500 + 30,100 + 1,010: the parameter count of the pruning literature's network
    assert sum(p.numel() for p in model.parameters()) == 266_610
    assert model(example_input("mlp", 2)).shape == (2, 10)


def test_digits_for_a_28x28_model_are_laid_out_as_mnist():
    data = load_dataset("digits", model="mlp")
    assert data.input_shape == (1, 28, 28) and data.train[0][0].shape == (1, 28, 28)
    images = data.train.tensors[0]
    assert images[:, :, :4, :].eq(-1.0).all() and images[:, :, -4:, :].eq(-1.0).all()
    assert data.fingerprint["preprocess"] == "bilinear-20-pad-4"  # a 20x20 digit, as MNIST
    assert model_kwargs_for_input("mlp", data.input_shape, 10) == {
        "num_classes": 10,
        "in_features": 784,
    }
    assert load_dataset("digits", model="lenet5").input_shape == (1, 32, 32)


def test_transformer_classifies_token_sequences():
    model = build_model("transformer", num_layers=1, d_model=32, dim_feedforward=64, seq_len=16)
    tokens = torch.randint(0, 1000, (2, 16))
    assert model(tokens).shape == (2, 10)
    assert example_input("transformer", 2).dtype == torch.long


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_torchvision_models_build_randomly_initialised(name):
    model = build_model(name, num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 7)


def test_registry_names_every_model_of_the_issue():
    assert {"lenet5", "mlp", "resnet18", "mobilenet_v2", "transformer"} <= set(model_names())


def test_a_users_factory_by_module_path(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        textwrap.dedent(
            """
            import torch.nn as nn

            def tiny(num_classes=10):
                return nn.Sequential(nn.Flatten(), nn.Linear(12, num_classes))

            tiny.input_shape = (3, 2, 2)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        spec = model_spec("my_models:tiny")
        assert spec.input_shape == (3, 2, 2)
        model = build_model("my_models:tiny", num_classes=4)
        assert model(example_input("my_models:tiny", 5)).shape == (5, 4)
    finally:
        sys.modules.pop("my_models", None)


def test_unknown_models_name_the_fix():
    with pytest.raises(EnergyHarnessError, match="known models: .*lenet5"):
        model_spec("lenet6")
    with pytest.raises(EnergyHarnessError, match="cannot import 'nope'"):
        model_spec("benchmarks.models:nope")


def test_model_kwargs_fit_the_dataset():
    assert model_kwargs_for_input("lenet5", (3, 32, 32), 10) == {
        "num_classes": 10,
        "in_channels": 3,
    }
    assert model_kwargs_for_input("mlp", (3, 32, 32), 100) == {
        "num_classes": 100,
        "in_features": 3072,
    }
    assert model_kwargs_for_input("transformer", (64,), 2) == {"num_classes": 2, "seq_len": 64}
    assert model_kwargs_for_input("resnet18", (3, 32, 32), 10) == {"num_classes": 10}
    colour = LeNet5(**model_kwargs_for_input("lenet5", (3, 32, 32), 10))
    assert colour(torch.randn(1, 3, 32, 32)).shape == (1, 10)
