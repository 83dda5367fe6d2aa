"""Analytic runtimes of a systolic array, to check and explain the simulated cycles.

Samajdar et al., "A Systematic Methodology for Characterizing Scalability of DNN
Accelerators using SCALE-Sim", ISPASS 2020: a layer mapped as S_R x S_C spatial
operands and T temporal steps (output-stationary: S_R = output pixels, S_C = filters,
T = the window, filter height x width x channels; weight-stationary: S_R = window,
S_C = filters, T = output pixels; input-stationary: S_R = window, S_C = output pixels,
T = filters) takes 2 S_R + S_C + T - 2 cycles on an array it fits, and on an R x C
array (scale-up)

    tau = (2R + C + T - 2) x ceil(S_R / R) x ceil(S_C / C)

SCALE-Sim v3's compute model (its `systolic_compute_*` demand matrices) pads every fold
to the whole array and drains a fold's outputs while the next fold's operands enter:
R + C + T - 2 cycles per fold, counted from cycle 0, so without stalls

    cycles = (R + C + T - 2) x ceil(S_R / R) x ceil(S_C / C) - 1

that is, the paper's tau less R per fold, less 1.
"""

from __future__ import annotations

import math

from harness.simulate.layers import LayerShape


def spatio_temporal(shape: LayerShape, dataflow: str) -> tuple[int, int, int]:
    """(S_R, S_C, T) of a layer under a dataflow (`os`, `ws`, `is`), as in the paper."""
    pixels, filters, window = shape.gemm()
    window = window * shape.sparsity_n // shape.sparsity_m
    return {
        "os": (pixels, filters, window),
        "ws": (window, filters, pixels),
        "is": (window, pixels, filters),
    }[dataflow]


def folds(s_r: int, s_c: int, rows: int, cols: int) -> int:
    """How many times the array is filled: ceil(S_R / R) x ceil(S_C / C)."""
    return math.ceil(s_r / rows) * math.ceil(s_c / cols)


def paper_cycles(shape: LayerShape, rows: int, cols: int, dataflow: str = "os") -> int:
    """The ISPASS 2020 scale-up runtime tau = (2R + C + T - 2) ceil(S_R/R) ceil(S_C/C)."""
    s_r, s_c, t = spatio_temporal(shape, dataflow)
    return (2 * rows + cols + t - 2) * folds(s_r, s_c, rows, cols)


def scalesim_v3_cycles(shape: LayerShape, rows: int, cols: int, dataflow: str = "os") -> int:
    """SCALE-Sim v3's compute cycles without stalls: (R + C + T - 2) x folds - 1."""
    s_r, s_c, t = spatio_temporal(shape, dataflow)
    return (rows + cols + t - 2) * folds(s_r, s_c, rows, cols) - 1
