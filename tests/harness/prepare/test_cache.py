"""The prepared-model cache: keys, round trips with weights_only, rebuilt architectures."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
from torch.utils.data import Subset

from harness.errors import HarnessWarning
from harness.prepare.cache import CACHE_FORMAT, ModelCache, cache_key
from harness.prepare.pipeline import prepare_model
from harness.spec.catalog import build_model, example_input, load_dataset
from harness.spec.train_config import TrainConfig
from probes.errors import EnergyHarnessError

QUICK = TrainConfig(epochs=1)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_digits():
    data = load_dataset("digits")
    # a quarter of the training set: these tests check storage, not accuracy
    return dataclasses.replace(data, train=Subset(data.train, range(360)), fingerprint={"n": 360})


def test_key_depends_on_content_not_order():
    a = cache_key({"model": "lenet5", "params": {"sparsity": 0.9, "fine_tune_epochs": 3}})
    b = cache_key({"params": {"fine_tune_epochs": 3, "sparsity": 0.9}, "model": "lenet5"})
    c = cache_key({"model": "lenet5", "params": {"sparsity": 0.8, "fine_tune_epochs": 3}})
    assert a == b != c
    assert len(a) == 24 and int(a, 16) >= 0
    with pytest.raises(EnergyHarnessError, match="cannot be hashed"):
        cache_key({"model": object()})


def test_keys_differ_by_seed_and_training(small_digits, tmp_path):
    cache = ModelCache(tmp_path)
    a = prepare_model("mlp", small_digits, seed=0, train_config=QUICK, cache=cache)
    b = prepare_model("mlp", small_digits, seed=1, train_config=QUICK, cache=cache)
    c = prepare_model("mlp", small_digits, seed=0, train_config=TrainConfig(epochs=2), cache=cache)
    assert len({a.cache_key, b.cache_key, c.cache_key}) == 3
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == sorted(
        f"{k}.pt" for k in (a.cache_key, b.cache_key, c.cache_key)
    )


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module, name: str) -> bool:
    # the digits data's shape, which the models were built for
    x = example_input(name, 8, generator=torch.Generator().manual_seed(0), input_shape=(1, 32, 32))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


@pytest.mark.parametrize(
    ("variant", "params"),
    [
        ("dense", None),
        ("magnitude", {"sparsity": 0.8, "fine_tune_epochs": 1}),
        ("structured", {"ratio": 0.5, "fine_tune_epochs": 1}),
        ("int8-dynamic", None),
    ],
)
def test_a_cached_model_comes_back_identical(small_digits, tmp_path, variant, params):
    cache = ModelCache(tmp_path)
    first = prepare_model("lenet5", small_digits, variant, params, train_config=QUICK, cache=cache)
    again = prepare_model("lenet5", small_digits, variant, params, train_config=QUICK, cache=cache)
    assert (first.from_cache, again.from_cache) == (False, True)
    assert again.cache_path == first.cache_path == tmp_path / f"{first.cache_key}.pt"
    assert _same_outputs(first.model, again.model, "lenet5")
    assert again.accuracy == first.accuracy and again.report == first.report
    assert again.steps == first.steps and again.params == first.params
    # the file holds only tensors and plain values
    payload = torch.load(first.cache_path, weights_only=True)
    assert payload["format"] == CACHE_FORMAT and payload["model_name"] == "lenet5"


def test_structured_architecture_is_rebuilt_from_the_file(small_digits, tmp_path):
    cache = ModelCache(tmp_path)
    params = {"ratio": 0.5, "fine_tune_epochs": 0}
    first = prepare_model(
        "lenet5", small_digits, "structured", params, train_config=QUICK, cache=cache
    )
    payload = torch.load(first.cache_path, weights_only=True)
    assert payload["structure"]["conv1"] == {"out_channels": 3}
    assert payload["structure"]["fc1"]["in_features"] == 8 * 5 * 5
    rebuilt = ModelCache(tmp_path).load(first.cache_key, "lenet5", first.model_kwargs)
    assert rebuilt is not None
    assert rebuilt.model.conv2.weight.shape == (8, 3, 5, 5)
    assert sum(p.numel() for p in rebuilt.model.parameters()) < 61_706 / 3


def test_int8_file_holds_int8_weights(small_digits, tmp_path):
    cache = ModelCache(tmp_path)
    first = prepare_model("lenet5", small_digits, "int8-dynamic", train_config=QUICK, cache=cache)
    payload = torch.load(first.cache_path, weights_only=True)
    assert payload["quantized"] == ["Linear"]
    weight, _bias = payload["state_dict"]["fc1._packed_params._packed_params"]
    assert weight.dtype == torch.qint8 and weight.shape == (120, 400)


def test_an_unreadable_file_is_a_miss_and_gets_rewritten(small_digits, tmp_path):
    cache = ModelCache(tmp_path)
    first = prepare_model("mlp", small_digits, train_config=QUICK, cache=cache)
    first.cache_path.write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="ignoring unreadable cache file"):
        again = prepare_model("mlp", small_digits, train_config=QUICK, cache=cache)
    assert not again.from_cache
    assert _same_outputs(first.model, again.model, "mlp")  # same seed: same model
    assert ModelCache(tmp_path).load(first.cache_key, "mlp", first.model_kwargs) is not None


def test_a_disabled_cache_never_reads_or_writes(tmp_path):
    cache = ModelCache(tmp_path, enabled=False)
    assert cache.save("k", build_model("lenet5"), model_name="lenet5", model_kwargs={}) is None
    assert cache.load("k", "lenet5", {}) is None
    assert not list(tmp_path.iterdir())


def test_an_unwritable_cache_folder_names_the_fix_once_and_turns_read_only(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    cache = ModelCache(blocker / "cache")
    with pytest.warns(HarnessWarning, match="cannot write the model cache.*ENERGY_HARNESS_CACHE"):
        assert cache.save("k", build_model("lenet5"), model_name="lenet5", model_kwargs={}) is None
    assert cache.read_only
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once: the next save is a quiet no-op
        assert cache.save("k", build_model("lenet5"), model_name="lenet5", model_kwargs={}) is None


def test_default_folder_is_results_cache_or_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("ENERGY_HARNESS_CACHE", raising=False)
    assert ModelCache().root.as_posix() == "results/cache"
    monkeypatch.setenv("ENERGY_HARNESS_CACHE", str(tmp_path))
    assert ModelCache().root == tmp_path


def _tamper(path, **changes) -> None:
    payload = torch.load(path, weights_only=True)
    payload.update(changes)
    torch.save(payload, path)


def test_a_cache_file_never_chooses_what_is_built(small_digits, tmp_path):
    cache = ModelCache(tmp_path / "cache")
    first = prepare_model("mlp", small_digits, train_config=QUICK, cache=cache)
    marker = tmp_path / "owned"
    _tamper(
        first.cache_path,
        model_name="subprocess:run",
        model_kwargs={"args": ["touch", str(marker)]},
    )
    with pytest.warns(UserWarning, match="made for model_name 'subprocess:run', not 'mlp'"):
        again = prepare_model("mlp", small_digits, train_config=QUICK, cache=cache)
    assert not marker.exists()  # nothing named in the file ran
    assert not again.from_cache
    assert _same_outputs(first.model, again.model, "mlp")
    rewritten = torch.load(first.cache_path, weights_only=True)
    assert rewritten["model_name"] == "mlp"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"key": "0" * 24}, "made for key"),
        ({"model_kwargs": {"num_classes": 3}}, "made for model_kwargs"),
        ({"structure": {"net.1": {"forward": "print"}}}, "does not have"),
        ({"structure": {"nope": {"out_features": 3}}}, "names no module"),
        ({"quantized": ["Module"]}, "quantized module types"),
        ({"meta": {"accuracy": "high"}}, "meta field accuracy"),
    ],
)
def test_a_cache_file_that_does_not_match_its_key_is_a_miss(
    small_digits, tmp_path, changes, problem
):
    cache = ModelCache(tmp_path)
    first = prepare_model("mlp", small_digits, train_config=QUICK, cache=cache)
    _tamper(first.cache_path, **changes)
    with pytest.warns(UserWarning, match=problem):
        again = prepare_model("mlp", small_digits, train_config=QUICK, cache=cache)
    assert not again.from_cache and again.accuracy == first.accuracy


def test_the_training_plan_counts_the_epochs_the_cache_does_not_hold(small_digits, tmp_path):
    from harness.prepare.pipeline import training_plan

    cache = ModelCache(tmp_path)
    config = TrainConfig(epochs=2)
    params = {"sparsity": 0.5, "fine_tune_epochs": 1}
    plan = training_plan(
        "lenet5", small_digits, "magnitude", params, train_config=config, cache=cache
    )
    assert sorted(plan.values()) == [1, 2]  # fine-tuning, then the dense model's training
    epochs: list[int] = []
    prepared = prepare_model(
        "lenet5",
        small_digits,
        "magnitude",
        params,
        train_config=config,
        cache=cache,
        on_epoch=lambda epoch, loss: epochs.append(epoch),
    )
    assert epochs == [1, 2, 1]  # what the plan counted, epoch by epoch
    assert prepared.cache_key in plan
    assert (
        training_plan("lenet5", small_digits, "magnitude", params, train_config=config, cache=cache)
        == {}
    )
    assert list(
        training_plan("lenet5", small_digits, train_config=config, cache=None).values()
    ) == [2]
    assert prepared.params["fine_tune_lr"] == config.lr  # 0 means the training rate: said so
