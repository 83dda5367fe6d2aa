"""Training with SGD + momentum, evaluation, seeds, and settings validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune
from torch.utils.data import Subset, TensorDataset

from harness.prepare.pipeline import prepare_model
from harness.prepare.training import evaluate, seed_everything, train
from harness.spec.catalog import build_model
from harness.spec.train_config import TrainConfig
from probes.errors import EnergyHarnessError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_lenet5_learns_digits_to_95_percent_in_a_few_epochs(digits, shared_cache):
    config = TrainConfig()
    assert config.epochs <= 10 and config.momentum == 0.9
    prepared = prepare_model("lenet5", digits, "dense", train_config=config, cache=shared_cache)
    assert prepared.accuracy >= 0.95, f"LeNet-5 reached only {prepared.accuracy:.1%} on digits"
    assert evaluate(prepared.model, digits.test) == prepared.accuracy
    assert f"train: {config.epochs} epochs, {config.epochs * 1437} samples" in prepared.steps[0]


def test_training_lowers_the_loss_and_counts_samples(digits):
    seed_everything(0)
    model = build_model("lenet5")
    chance = evaluate(model, digits.test)
    config = TrainConfig(epochs=4, lr=0.05)
    result = train(model, Subset(digits.train, range(512)), config, seed=0)
    assert result.samples == 4 * 512 and result.epochs == 4
    assert result.loss_per_epoch[-1] < result.loss_per_epoch[0] / 2
    assert evaluate(model, digits.test) > chance + 0.3


def _short_run(data, seed: int) -> dict[str, torch.Tensor]:
    seed_everything(seed)
    model = build_model("lenet5")
    train(model, Subset(data.train, range(256)), TrainConfig(epochs=1), seed=seed)
    return model.state_dict()


def test_the_same_seed_gives_the_same_weights(digits):
    a, b, c = _short_run(digits, 5), _short_run(digits, 5), _short_run(digits, 6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["fc1.weight"], c["fc1.weight"])


def test_masks_of_torch_prune_hold_during_training(digits):
    seed_everything(0)
    model = build_model("mlp", in_features=32 * 32)  # the digits fixture is 1x32x32
    mask = torch.ones_like(model.net[1].weight)
    mask[:, ::2] = 0
    prune.custom_from_mask(model.net[1], "weight", mask)
    train(model, Subset(digits.train, range(128)), TrainConfig(epochs=1), seed=0)
    assert torch.count_nonzero(model.net[1].weight[:, ::2]) == 0
    assert torch.count_nonzero(model.net[1].weight[:, 1::2]) > 0


def test_evaluate_counts_correct_predictions():
    class Fixed(nn.Module):  # predicts class = first input value
        def forward(self, x):
            return nn.functional.one_hot(x[:, 0].long(), 3).float()

    inputs = torch.tensor([[0.0], [1.0], [2.0], [1.0]])
    labels = torch.tensor([0, 1, 1, 1])
    assert evaluate(Fixed(), TensorDataset(inputs, labels), batch_size=3) == 0.75
    with pytest.raises(EnergyHarnessError, match="empty"):
        evaluate(Fixed(), TensorDataset(inputs[:0], labels[:0]))


def test_divergence_is_reported_with_the_fix():
    inputs = torch.randn(16, 4)
    labels = torch.randint(0, 2, (16,))
    model = nn.Linear(4, 2)
    with torch.no_grad():
        model.weight.fill_(float("inf"))
    with pytest.raises(EnergyHarnessError, match="lower the learning rate"):
        train(model, TensorDataset(inputs, labels), TrainConfig(epochs=1, lr=1.0))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lr": 0}, "lr must be a positive"),
        ({"momentum": 1.0}, "momentum must be in"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"epochs": -1}, "epochs must be >= 0"),
        ({"nesterov": True, "momentum": 0.0}, "nesterov needs momentum"),
        ({"learning_rate": 0.1}, "unknown key.*learning_rate.*known keys"),
    ],
)
def test_bad_settings_name_the_key(values, message):
    with pytest.raises(EnergyHarnessError, match=message):
        TrainConfig.from_mapping(values)


def test_quantized_models_cannot_be_trained():
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(EnergyHarnessError, match="no trainable parameters"):
        train(
            frozen,
            TensorDataset(torch.randn(4, 2), torch.zeros(4, dtype=torch.long)),
            TrainConfig(),
        )
