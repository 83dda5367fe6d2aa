"""Preparing a model is measured with the run's meter; a cached model keeps its figure."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import FakeZone
from torch.utils.data import Subset

from harness.measure.meter import EnergyMeter
from harness.prepare.cache import ModelCache
from harness.prepare.pipeline import prepare_model
from harness.rows.preparation import preparation_columns
from harness.spec.catalog import load_dataset
from harness.spec.train_config import TrainConfig
from probes.base import ProbeOptions
from probes.rapl import RaplProbe

PACKAGE_W = 30.0
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_digits():
    data = load_dataset("digits")
    return dataclasses.replace(data, train=Subset(data.train, range(360)), fingerprint={"n": 360})


def test_each_step_is_power_times_its_time_and_a_cached_model_keeps_it(
    fake_powercap, small_digits, tmp_path
):
    tree = fake_powercap([FakeZone("intel-rapl:0", "package-0", PACKAGE_W)])
    cache = ModelCache(tmp_path / "cache")
    params = {"sparsity": 0.5, "fine_tune_epochs": 1}
    config = TrainConfig(epochs=1)
    with EnergyMeter([RaplProbe(ProbeOptions(powercap_root=tree.root))]) as meter:
        first, again = (
            prepare_model(
                "lenet5",
                small_digits,
                "magnitude",
                params,
                train_config=config,
                cache=cache,
                meter=meter,
            )
            for _ in range(2)
        )
        assert meter.measurements == []  # the run's list keeps the case windows only
    own, dense = first.preparation, first.dense_preparation
    assert own is not None and dense is not None
    assert (own.step, dense.step, own.source, own.origin) == ("compress", "train", "counter", "run")
    for step in (own, dense):  # the fake package advances 30 W; it writes every 1 ms
        assert step.duration_s > 0
        assert step.energy_j == pytest.approx(PACKAGE_W * step.duration_s, rel=0.02, abs=0.1)
    assert again.from_cache
    assert again.preparation is not None and again.dense_preparation is not None
    assert again.preparation.energy_j == own.energy_j  # the figure measured when prepared
    assert again.preparation.origin == "cache" and again.dense_preparation.origin == "cache"
    cells = preparation_columns(again)
    assert cells["prepare_energy_j"] == own.energy_j
    assert cells["prepare_energy_origin"] == "cache"
    assert cells["prepare_total_energy_j"] == pytest.approx(own.energy_j + dense.energy_j)


def test_without_a_meter_nothing_is_measured_and_the_columns_stay_empty(small_digits, tmp_path):
    prepared = prepare_model(
        "mlp", small_digits, train_config=TrainConfig(epochs=1), cache=ModelCache(tmp_path)
    )
    assert prepared.preparation is None
    assert set(preparation_columns(prepared).values()) == {None}
