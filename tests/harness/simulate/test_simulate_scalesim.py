"""SCALE-Sim in its worker process: one GEMM layer against the analytic runtime, DRAM
traffic against the compulsory traffic, depthwise and 2:4 layers, the cache, and a
failure or a timeout as one line. Small arrays and LeNet-5-sized layers: each
simulation takes well under a second."""

from __future__ import annotations

import pytest
import torch
from sim_arrays import small_accelerator
from torch import nn

from benchmarks.models import LeNet5
from harness.errors import EnergyHarnessError
from harness.simulate._runner import Limits, run_layers
from harness.simulate.accelerators import load_accelerator
from harness.simulate.cache import LayerCache
from harness.simulate.formulas import folds, paper_cycles, scalesim_v3_cycles
from harness.simulate.layers import LayerShape
from harness.simulate.model import simulate_model

pytest.importorskip("scalesim")


@pytest.fixture
def small_array(tmp_path):
    return small_accelerator(tmp_path)  # 16 x 16, output-stationary, 64 words per cycle


def _simulate(tmp_path, model, sample, acc, calls=None):
    def progress(done: int, todo: int) -> None:
        if calls is not None:
            calls.append((done, todo))

    cache = LayerCache(tmp_path / "cache")
    return simulate_model(model, sample, acc, cache=cache, progress=progress)


def test_a_gemm_layer_takes_the_analytic_output_stationary_runtime(tmp_path, small_array):
    # LeNet-5's fc2 (120 -> 84) as one GEMM: S_R = 1 row, S_C = 84 filters, T = 120
    sim = _simulate(tmp_path, nn.Linear(120, 84), torch.zeros(1, 120), small_array)
    (layer,) = sim.layers
    shape = layer.layer.shape
    assert layer.result["stall_cycles"] == 0  # 64 words per cycle: no memory stalls
    r = c = 16
    n_folds = folds(1, 84, r, c)
    assert n_folds == 6
    assert layer.result["cycles"] == scalesim_v3_cycles(shape, r, c) == (r + c + 120 - 2) * 6 - 1
    # the paper's tau = (2R + C + T - 2) x folds: SCALE-Sim v3 drains a fold's R output rows
    # while the next fold fills, so it is R cycles per fold (and one) below it
    assert paper_cycles(shape, r, c) == (2 * r + c + 120 - 2) * 6
    assert layer.result["cycles"] == paper_cycles(shape, r, c) - n_folds * r - 1


def test_lenet5_moves_at_least_the_compulsory_traffic_and_is_cached(tmp_path):
    acc = small_accelerator(tmp_path, words_per_cycle=8)  # stalls and re-fetches allowed
    calls: list[tuple[int, int]] = []
    sim = _simulate(tmp_path, LeNet5(), torch.zeros(1, 1, 32, 32), acc, calls)
    assert calls[-1] == (5, 5)  # five distinct shapes, progress after each
    for x in sim.layers:
        need = x.layer.shape.compulsory_words()
        assert x.result["dram_ifmap_reads"] >= need["ifmap"], x.layer.name
        assert x.result["dram_filter_reads"] >= need["filter"], x.layer.name
        assert x.result["dram_ofmap_writes"] >= need["ofmap"], x.layer.name
    assert sim.dram_bytes >= 61_470 + 1024  # every weight (not bias) and the input once
    parts = sim.parts_j()
    assert parts["compute"] == pytest.approx(416_520 * 0.23e-12)  # MACs x E_mac
    assert sim.energy_j == pytest.approx(sum(parts.values()))
    assert sim.latency_s == pytest.approx(sim.cycles / 5e8)
    again: list[tuple[int, int]] = []
    warm = _simulate(tmp_path, LeNet5(), torch.zeros(1, 1, 32, 32), acc, again)
    assert again == [] and warm.cycles == sim.cycles  # every shape from the cache


def test_a_depthwise_layer_is_its_channels_simulated_one_by_one(tmp_path, small_array):
    model = nn.Conv2d(4, 4, 3, padding=1, groups=4)
    sim = _simulate(tmp_path, model, torch.zeros(1, 4, 8, 8), small_array)
    (x,) = sim.layers
    assert x.layer.kind == "depthwise" and x.layer.repeats == 4
    one = LayerShape(10, 10, 3, 3, 1, 1, 1, 1)
    assert x.layer.shape == one
    assert x.total("cycles") == 4 * scalesim_v3_cycles(one, 16, 16)
    assert x.dram_words >= 4 * sum(one.compulsory_words().values())
    assert sim.utilisation_pct == pytest.approx(4 * 64 * 9 / (x.total("cycles") * 256) * 100)


def test_a_two_four_layer_goes_through_the_simulators_n_m_support(tmp_path, small_array):
    dense, sparse = nn.Linear(128, 64), nn.Linear(128, 64)
    with torch.no_grad():
        sparse.weight.copy_(dense.weight)
        sparse.weight.view(64, 32, 4)[:, :, 2:] = 0
    d = _simulate(tmp_path, dense, torch.zeros(1, 128), small_array).layers[0]
    s = _simulate(tmp_path, sparse, torch.zeros(1, 128), small_array).layers[0]
    assert s.layer.kind == "linear 2:4" and s.macs_executed == d.macs_executed / 2
    assert s.result["cycles"] == scalesim_v3_cycles(s.layer.shape, 16, 16) < d.result["cycles"]
    assert d.result["dram_filter_reads"] >= 128 * 64
    assert 128 * 64 / 2 <= s.result["dram_filter_reads"] < d.result["dram_filter_reads"]


def test_unstructured_zeros_are_simulated_dense_with_the_sparse_ideal_beside(tmp_path, small_array):
    model = nn.Linear(120, 84)
    dense = _simulate(tmp_path, model, torch.zeros(1, 120), small_array)
    with torch.no_grad():
        model.weight[torch.rand(84, 120, generator=torch.Generator().manual_seed(1)) < 0.9] = 0
    pruned = _simulate(tmp_path, model, torch.zeros(1, 120), small_array)
    assert pruned.energy_j == pytest.approx(dense.energy_j)  # the array computes the zeros
    assert pruned.sparse_ideal_energy_j < 0.5 * pruned.energy_j
    assert any("simulated dense" in n for n in pruned.notes)


def test_a_simulator_failure_or_timeout_is_one_line():
    config = load_accelerator("edge-systolic-64").simulator_config()
    too_big = LayerShape(2, 2, 5, 5, 1, 1, 1, 1).as_list()  # a filter larger than its input
    with pytest.raises(EnergyHarnessError) as err:
        run_layers(config, [too_big], lambda layer, result: None, what="a bad layer")
    text = str(err.value)
    assert text.startswith("the simulator failed on a bad layer: SCALE-Sim failed on layer")
    assert "Filter height cannot be larger than IFMAP height" in text and "\n" not in text
    with pytest.raises(EnergyHarnessError, match=r"took longer than 0.01 s and was stopped"):
        run_layers(config, [[28, 28, 5, 5, 1, 6, 1, 1, 1, 1]], lambda *a: None, Limits(0.01))
