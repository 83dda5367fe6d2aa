"""A suite describes the user's own training: [training] keys, a model's input_shape,
models and datasets next to the suite file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from harness.errors import EnergyHarnessError
from harness.spec.catalog import load_dataset
from harness.spec.suite import load_suite, parse_suite
from harness.workloads.steps import make_optimizer

ROOT = Path(__file__).resolve().parents[3]
BASE = """
[suite]
dataset = "synthetic"
{suite}
{training}
[[models]]
name = "mlp"
{model}
"""


def _suite(suite: str = "", training: str = "", model: str = "") -> str:
    return BASE.format(suite=suite, training=training, model=model)


def test_training_keys_make_the_train_config():
    text = _suite(
        training='[training]\noptimizer = "adamw"\nlr = 0.003\nweight_decay = 0.01\nepochs = 7'
    )
    config = parse_suite(text, "s.toml").train_config()
    assert (config.optimizer, config.lr, config.weight_decay, config.epochs) == (
        "adamw",
        0.003,
        0.01,
        7,
    )
    optimizer = make_optimizer(torch.nn.Linear(2, 2), config)
    assert isinstance(optimizer, torch.optim.AdamW)
    default = parse_suite(_suite(suite="train_epochs = 3"), "s.toml").train_config()
    assert (default.optimizer, default.epochs) == ("sgd", 3)
    assert "optimizer" not in default.as_dict()  # cache keys of SGD models stay as they were


@pytest.mark.parametrize(
    ("training", "suite", "message"),
    [
        ('optimizer = "lion"', "", "s.toml: training: optimizer must be one of sgd, adam, adamw"),
        ("lr = -1", "", "s.toml: training: lr must be a positive number"),
        ("momentum = 1.5", "", "momentum must be in [0, 1)"),
        (
            "learning_rate = 0.1",
            "",
            "training.learning_rate: unknown key; allowed keys: epochs, lr",
        ),
        ("epochs = 3", "train_epochs = 5", "training.epochs: suite.train_epochs says the same"),
        ('lr = "fast"', "", "training.lr: expected a number"),
    ],
)
def test_bad_training_keys_name_the_key(training, suite, message):
    with pytest.raises(EnergyHarnessError) as err:
        parse_suite(_suite(suite=suite, training=f"[training]\n{training}"), "s.toml")
    assert message in str(err.value)


def test_a_models_input_shape_sets_the_synthetic_samples():
    suite = parse_suite(_suite(model="input_shape = [20]"), "s.toml")
    assert {c.input_shape for c in suite.cases} == {(20,)}
    with pytest.raises(EnergyHarnessError, match="models\\[0\\].input_shape: expected a list"):
        parse_suite(_suite(model="input_shape = [0, 3]"), "s.toml")
    with pytest.raises(EnergyHarnessError, match="dataset 'digits' fixes the sample shape"):
        parse_suite(_suite(model='dataset = "digits"\ninput_shape = [20]'), "s.toml")


def test_models_and_datasets_next_to_the_suite_file_are_found(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    suite = load_suite(ROOT / "examples" / "own_suite" / "suite.toml")
    assert {c.model for c in suite.cases} == {"my_models:tabular_mlp"}
    assert suite.train_config().optimizer == "adamw"
    assert str(ROOT / "examples" / "own_suite") in sys.path[0]
    import os

    assert str(ROOT / "examples" / "own_suite") in os.environ["PYTHONPATH"]  # for DDP ranks
    data = load_dataset("my_data:load_blobs", seed=1)
    assert (data.input_shape, data.num_classes, len(data.train)) == ((20,), 3, 1000)
    with pytest.raises(EnergyHarnessError, match="dataset 'my_data:nothing': cannot import"):
        load_dataset("my_data:nothing")
