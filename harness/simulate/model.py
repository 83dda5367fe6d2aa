"""`simulate_model`: a PyTorch model on a simulated accelerator, one sample.

The Conv2d and Linear layers (`harness.simulate.layers`) run through SCALE-Sim in a
worker process (`_runner`), each distinct shape once and cached (`cache`); the other
layers are counted analytically. Energy is counts x energy per access, from the
accelerator's profile (`accelerators`):

    E = MACs x E_mac + SRAM bytes x E_sram + DRAM bytes x E_dram + P_static x latency
        (+ the analytic layers: elements read and written x E_sram, one op per output x E_mac)

Zeros of an unstructured pruning are computed and moved (a systolic array does not skip
them); the `sparse-ideal` figure beside it scales each layer's MACs and weight traffic by
its density. A 2:4 layer is simulated through SCALE-Sim's N:M support. Every figure is
SIMULATED (modelled), never measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.simulate._runner import Limits, run_layers
from harness.simulate.accelerators import Accelerator, load_accelerator
from harness.simulate.cache import LayerCache
from harness.simulate.layers import AnalyticLayer, MappedLayer, map_model
from harness.simulate.report import simulation_dict

PJ = 1e-12


@dataclass(frozen=True)
class SimulatedLayer:
    """One mapped layer with SCALE-Sim's result for one of its repeats."""

    layer: MappedLayer
    result: dict[str, float]

    def total(self, key: str) -> float:
        return self.result[key] * self.layer.repeats

    @property
    def dram_words(self) -> float:
        keys = ("dram_ifmap_reads", "dram_filter_reads", "dram_ofmap_writes")
        return sum(self.total(k) for k in keys)

    @property
    def sram_words(self) -> float:
        keys = ("sram_ifmap_reads", "sram_filter_reads", "sram_ofmap_writes")
        return sum(self.total(k) for k in keys)

    @property
    def macs_executed(self) -> float:
        """MACs the array performs: zeros included, but N:M skips its pruned weights."""
        s = self.layer.shape
        return self.layer.macs * s.sparsity_n / s.sparsity_m

    def energy_j(self, acc: Accelerator, density: float = 1.0) -> dict[str, float]:
        """Compute, SRAM and DRAM joules; `density` < 1 scales the MACs and the weight
        traffic (the sparse-ideal accounting)."""
        w = acc.word_bytes
        weight_sram = self.total("sram_filter_reads") * (1 - density)
        weight_dram = self.total("dram_filter_reads") * (1 - density)
        return {
            "compute": self.macs_executed * density * acc.mac_pj * PJ,
            "sram": (self.sram_words - weight_sram) * w * acc.sram_pj_per_byte * PJ,
            "dram": (self.dram_words - weight_dram) * w * acc.dram_pj_per_byte * PJ,
        }


def analytic_energy_j(layers: list[AnalyticLayer], acc: Accelerator) -> float:
    """Layers the simulator does not model: elements read and written from SRAM, one
    operation (priced as a MAC) per output element."""
    words = sum(x.elements_in + x.elements_out for x in layers)
    ops = sum(x.elements_out for x in layers)
    return (words * acc.word_bytes * acc.sram_pj_per_byte + ops * acc.mac_pj) * PJ


def analytic_cycles(layers: list[AnalyticLayer], acc: Accelerator) -> float:
    """A vector unit as wide as the array: one cycle per `cols` output elements."""
    return float(sum(math.ceil(x.elements_out / acc.cols) for x in layers))


@dataclass(frozen=True)
class ModelSimulation:
    """One sample of a model on an accelerator: per layer and in total."""

    accelerator: Accelerator
    layers: list[SimulatedLayer]
    analytic: list[AnalyticLayer]
    input_shape: tuple[int, ...]
    notes: list[str] = field(default_factory=list)

    @property
    def cycles(self) -> float:
        """Cycles of the simulated layers (compute + stalls) and the analytic ones."""
        simulated = sum(x.total("cycles") for x in self.layers)
        return simulated + analytic_cycles(self.analytic, self.accelerator)

    @property
    def latency_s(self) -> float:
        return self.cycles / self.accelerator.clock_hz

    @property
    def dram_bytes(self) -> float:
        return sum(x.dram_words for x in self.layers) * self.accelerator.word_bytes

    @property
    def utilisation_pct(self) -> float:
        """MACs performed / (PEs x cycles of the simulated layers) x 100."""
        acc = self.accelerator
        cycles = sum(x.total("cycles") for x in self.layers)
        macs = sum(x.macs_executed for x in self.layers)
        return macs / (cycles * acc.rows * acc.cols) * 100 if cycles else math.nan

    def parts_j(self, sparse_ideal: bool = False) -> dict[str, float]:
        """Energy per sample by part: compute, sram, dram, analytic, static."""
        acc = self.accelerator
        parts = {"compute": 0.0, "sram": 0.0, "dram": 0.0}
        for x in self.layers:
            nm = x.layer.shape.sparsity_n != x.layer.shape.sparsity_m
            density = x.layer.density if sparse_ideal and not nm else 1.0
            for k, v in x.energy_j(acc, density).items():
                parts[k] += v
        parts["analytic"] = analytic_energy_j(self.analytic, acc)
        parts["static"] = acc.static_power_w * self.latency_s
        return parts

    @property
    def energy_j(self) -> float:
        return sum(self.parts_j().values())

    @property
    def sparse_ideal_energy_j(self) -> float:
        return sum(self.parts_j(sparse_ideal=True).values())

    def case_columns(self) -> dict[str, Any]:
        """The simulated figures of cases.csv (per sample)."""
        return {
            "simulated_accelerator": self.accelerator.name,
            "simulated_energy_j_per_sample": self.energy_j,
            "simulated_sparse_ideal_energy_j_per_sample": self.sparse_ideal_energy_j,
            "simulated_latency_s": self.latency_s,
            "simulated_cycles": self.cycles,
            "simulated_dram_bytes": self.dram_bytes,
            "simulated_utilisation_pct": self.utilisation_pct,
            "simulated_note": "; ".join(self.notes),
        }

    def to_dict(self) -> dict[str, Any]:
        """What `energy-harness simulate --json` prints."""
        return simulation_dict(self)


def _notes(mapped: list[MappedLayer], analytic: list[AnalyticLayer]) -> list[str]:
    notes = ["one sample (batch 1) per simulation"]
    if any(x.density < 1 and "2:4" not in x.kind for x in mapped):
        notes.append(
            "zeros of unstructured pruning are computed and moved (a systolic array does "
            "not skip them): simulated dense; the sparse-ideal figure scales MACs and "
            "weight traffic by each layer's density"
        )
    if any("2:4" in x.kind for x in mapped):
        notes.append("2:4 layers simulated through SCALE-Sim's N:M sparsity support")
    if analytic:
        kinds = sorted({x.kind for x in analytic})
        notes.append(f"not simulated, counted analytically: {', '.join(kinds)}")
    notes.append("operations outside modules (a residual +) are not counted")
    return notes


def simulate_model(
    model: nn.Module,
    sample: torch.Tensor,
    accelerator: str | Path | Accelerator,
    *,
    cache: LayerCache | None = None,
    limits: Limits | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ModelSimulation:
    """Simulate one sample of `model` (`sample`: a batch of one, on the model's device)
    on `accelerator` (a built-in name, a .toml path or an Accelerator).

    Distinct layer shapes are simulated once, cached in `cache` (default: the results
    cache's `simulate/` folder), in a worker process under `limits` (default `Limits()`);
    `progress(done, todo)` is called as shapes finish. Raises EnergyHarnessError (one
    line) for a bad accelerator, a timeout or a simulator failure.
    """
    acc = accelerator if isinstance(accelerator, Accelerator) else load_accelerator(accelerator)
    cache = cache if cache is not None else LayerCache()
    mapped, analytic = map_model(model, sample)
    config = acc.simulator_config()
    results: dict[tuple[int, ...], dict[str, float]] = {}
    todo: list[list[int]] = []
    for layer in mapped:
        key = tuple(layer.shape.as_list())
        if key in results or list(key) in todo:
            continue
        hit = cache.get(config, list(key))
        if hit is None:
            todo.append(list(key))
        else:
            results[key] = hit

    def finished(layer: list[int], result: dict[str, float]) -> None:
        results[tuple(layer)] = result
        cache.put(config, layer, result)
        if progress is not None:
            progress(len(todo) - sum(tuple(t) not in results for t in todo), len(todo))

    what = f"{type(model).__name__} on {acc.name}"
    run_layers(config, todo, finished, limits or Limits(), what)
    layers = [SimulatedLayer(x, results[tuple(x.shape.as_list())]) for x in mapped]
    return ModelSimulation(acc, layers, analytic, tuple(sample.shape[1:]), _notes(mapped, analytic))
