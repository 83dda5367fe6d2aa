"""A simulation (`harness.simulate.model.ModelSimulation`) as a JSON-ready dict: totals,
energy by part, per layer, the accelerator with the source of each value, and notes.
Every energy is labelled SIMULATED."""

from __future__ import annotations

from typing import Any

from harness.simulate.formulas import paper_cycles

SIMULATED_LABEL = "SIMULATED (SCALE-Sim cycles and accesses x cited energy per access)"


def _layer(x: Any, rows: int, cols: int, dataflow: str) -> dict[str, Any]:
    s = x.layer.shape
    return {
        "name": x.layer.name,
        "kind": x.layer.kind,
        "repeats": x.layer.repeats,
        "shape": dict(
            zip(
                (
                    "ifmap_h",
                    "ifmap_w",
                    "filter_h",
                    "filter_w",
                    "channels",
                    "filters",
                    "stride_h",
                    "stride_w",
                    "sparsity_n",
                    "sparsity_m",
                ),
                s.as_list(),
                strict=True,
            )
        ),  # fmt: skip
        "macs": x.layer.macs,
        "density": x.layer.density,
        "cycles": x.total("cycles"),
        "stall_cycles": x.total("stall_cycles"),
        "paper_cycles": paper_cycles(s, rows, cols, dataflow) * x.layer.repeats,
        "utilisation_pct": x.result["utilisation_pct"],
        "sram_words": x.sram_words,
        "dram_words": x.dram_words,
        "compulsory_dram_words": sum(s.compulsory_words().values()) * x.layer.repeats,
    }


def simulation_dict(sim: Any) -> dict[str, Any]:
    """What `energy-harness simulate --json` prints (per sample) of a ModelSimulation."""
    acc = sim.accelerator
    return {
        "label": SIMULATED_LABEL,
        "accelerator": acc.name,
        "accelerator_description": acc.description,
        "accelerator_sources": acc.sources,
        "dataflow": acc.dataflow,
        "array": [acc.rows, acc.cols],
        "clock_hz": acc.clock_hz,
        "input_shape": list(sim.input_shape),
        "energy_j_per_sample": sim.energy_j,
        "energy_parts_j": sim.parts_j(),
        "sparse_ideal_energy_j_per_sample": sim.sparse_ideal_energy_j,
        "latency_s": sim.latency_s,
        "cycles": sim.cycles,
        "dram_bytes": sim.dram_bytes,
        "utilisation_pct": sim.utilisation_pct,
        "layers": [_layer(x, acc.rows, acc.cols, acc.dataflow) for x in sim.layers],
        "analytic_layers": [
            {
                "name": x.name,
                "kind": x.kind,
                "elements_in": x.elements_in,
                "elements_out": x.elements_out,
            }
            for x in sim.analytic
        ],  # fmt: skip
        "notes": sim.notes,
    }
