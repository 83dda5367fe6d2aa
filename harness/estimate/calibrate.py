"""Fit a profile's energies to measured energy: non-negative least squares, leave-one-out.

The input is a table of measured cases (a pandas DataFrame), one row per measured
window, with the counts of the work done in that window:

    case         a name for the row (optional; the index is used otherwise)
    duration_s   measured duration of the window (s)                      required
    energy_j     measured energy of the window (J), > 0                   required
    flops        FLOPs in the window, or per dtype: flops_fp32, flops_bf16, flops_int8, ...
    bytes        main-memory bytes moved in the window
    comm_bytes   transferred bytes, or per link: comm_bytes_host_to_device,
                 comm_bytes_interconnect
Other columns are ignored.

`energy-harness calibrate --from RUN_DIR` reads it from RUN_DIR/cases.csv;
`ModelEstimate.case_columns(steps)` gives the count columns of a suite case, so a runner
writes `duration_s` and `energy_j` of a repetition next to them.

Model: energy_j = P_static x duration_s + sum over count columns of e_i x count_i, with
every coefficient >= 0 (scipy.optimize.nnls). Rows are weighted by 1 / energy_j, so the
fit minimises relative errors and a short window counts as much as a long one. A count
column that is zero in every row is left out (its coefficient is undetermined).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from harness.errors import EnergyHarnessError
from harness.estimate.energy import PJ
from harness.estimate.profiles import (
    CHANNELS,
    DTYPES,
    ComputeEnergy,
    Profile,
    StaticPower,
    TransferEnergy,
)

STATIC = "duration_s"
REQUIRED = ("duration_s", "energy_j")


@dataclass(frozen=True)
class Feature:
    """One fitted coefficient: the column it multiplies and what it means."""

    column: str
    part: str  # static | compute | memory | communication
    key: str  # dtype, memory level or link (static: "static")
    unit: str  # unit of the column: s, FLOP, byte


@dataclass(frozen=True)
class FitResult:
    """Fitted coefficients (J per unit of their column; static: W), residuals, spreads.

    `stderr` is the jackknife standard error of each coefficient: how much it moves when
    one case is left out. A large one says the cases do not pin that coefficient down.
    """

    features: tuple[Feature, ...]
    coefficients: dict[str, float]  # column -> J per unit
    rows: pd.DataFrame  # case, energy_j, fitted_energy_j, residual_j, residual_pct
    undetermined: tuple[str, ...]  # count columns left out (all zero)
    stderr: dict[str, float]  # column -> jackknife standard error (J per unit); {} if too few

    @property
    def rms_residual_pct(self) -> float:
        """Root-mean-square relative residual, in percent."""
        return float(np.sqrt(np.mean(np.square(self.rows["residual_pct"]))))

    def stderr_pct(self, column: str) -> float | None:
        """Jackknife standard error of a coefficient relative to it (%), if known."""
        coef, se = self.coefficients.get(column), self.stderr.get(column)
        if coef is None or se is None:
            return None
        return 100.0 * se / coef if coef > 0 else float("inf")

    def coefficient(self, part: str, key: str) -> float | None:
        """The coefficient of one part/key (J per unit), or None if not fitted."""
        for f in self.features:
            if f.part == part and f.key == key:
                return self.coefficients[f.column]
        return None


def _counts(df: pd.DataFrame, column: str) -> pd.Series:
    """A count column as numbers. Per-dtype and per-link columns may be empty where a case
    had no such operation (a suite's cases.csv has every dtype's column): that is 0."""
    values = pd.to_numeric(df[column], errors="coerce")
    if column.startswith(("flops_", "comm_bytes_")):
        values = values.fillna(0.0)
    return values


def features_of(
    df: pd.DataFrame, *, flops_dtype: str = "fp32", memory_level: str = "dram"
) -> tuple[list[Feature], list[str]]:
    """The fit's features for the columns present, and the all-zero count columns."""
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise EnergyHarnessError(
            f"cases table lacks column(s) {', '.join(missing)}; it needs duration_s, energy_j "
            "and count columns (flops or flops_<dtype>, bytes, comm_bytes or comm_bytes_<link>)"
        )
    features = [Feature(STATIC, "static", "static", "s")]
    per_dtype = [c for c in df.columns if c.removeprefix("flops_") in DTYPES and c != "flops"]
    if per_dtype:
        features += [Feature(c, "compute", c.removeprefix("flops_"), "FLOP") for c in per_dtype]
    elif "flops" in df.columns:
        features.append(Feature("flops", "compute", flops_dtype, "FLOP"))
    if "bytes" in df.columns:
        features.append(Feature("bytes", "memory", memory_level, "byte"))
    per_link = [c for c in df.columns if c.removeprefix("comm_bytes_") in CHANNELS]
    if per_link:
        features += [
            Feature(c, "communication", c.removeprefix("comm_bytes_"), "byte") for c in per_link
        ]
    elif "comm_bytes" in df.columns:
        features.append(Feature("comm_bytes", "communication", "host_to_device", "byte"))
    if len(features) == 1:
        raise EnergyHarnessError(
            "cases table has no count column (flops, flops_<dtype>, bytes, comm_bytes); "
            "nothing to fit but static power"
        )
    used, dropped = [], []
    for f in features:
        values = _counts(df, f.column)
        if values.isna().any() or (values < 0).any():
            raise EnergyHarnessError(
                f"cases table column {f.column!r} must hold numbers >= 0 in every row"
            )
        (used if values.abs().sum() > 0 or f.part == "static" else dropped).append(f)
    if len(used) == 1:
        raise EnergyHarnessError(
            "every count column of the cases table is zero: there is nothing to fit "
            "but static power; include cases that compute and move data"
        )
    return used, [f.column for f in dropped]


def _solve(matrix: np.ndarray, energy_j: np.ndarray) -> np.ndarray:
    """NNLS on rows weighted by 1 / energy and columns scaled to unit maximum."""
    weighted = matrix / energy_j[:, None]
    scale = np.abs(weighted).max(axis=0)
    scale[scale == 0] = 1.0
    solution, _ = nnls(weighted / scale, np.ones(len(energy_j)))
    return solution / scale


def _prepare(df: pd.DataFrame, features: list[Feature]) -> tuple[np.ndarray, np.ndarray]:
    energy = pd.to_numeric(df["energy_j"], errors="coerce").to_numpy(dtype=float)
    if np.isnan(energy).any() or (energy <= 0).any():
        raise EnergyHarnessError(
            "cases table column 'energy_j' must be a positive number in every row "
            "(drop rows whose measurement failed)"
        )
    matrix = np.column_stack([_counts(df, f.column).to_numpy(dtype=float) for f in features])
    return matrix, energy


def _names(df: pd.DataFrame) -> list[str]:
    if "case" in df.columns:
        return [str(c) for c in df["case"]]
    return [str(i) for i in df.index]


def fit_cases(
    df: pd.DataFrame, *, flops_dtype: str = "fp32", memory_level: str = "dram"
) -> FitResult:
    """Fit the coefficients to every row of `df` (see the module docstring).

    `flops_dtype` names the dtype of a plain `flops` column; `memory_level` the memory
    level of `bytes`. Raises EnergyHarnessError on a malformed table or too few rows.
    """
    features, dropped = features_of(df, flops_dtype=flops_dtype, memory_level=memory_level)
    if len(df) < len(features):
        raise EnergyHarnessError(
            f"{len(df)} case(s) cannot determine {len(features)} coefficients "
            f"({', '.join(f.column for f in features)}); measure more cases"
        )
    matrix, energy = _prepare(df, features)
    coef = _solve(matrix, energy)
    fitted = matrix @ coef
    rows = pd.DataFrame(
        {
            "case": _names(df),
            "energy_j": energy,
            "fitted_energy_j": fitted,
            "residual_j": energy - fitted,
            "residual_pct": 100.0 * (fitted - energy) / energy,
        }
    )
    coefficients = {f.column: float(c) for f, c in zip(features, coef, strict=True)}
    stderr: dict[str, float] = {}
    n = len(energy)
    if n > len(features):
        loo = np.array([_solve(np.delete(matrix, i, 0), np.delete(energy, i)) for i in range(n)])
        se = np.sqrt((n - 1) / n * np.sum((loo - loo.mean(axis=0)) ** 2, axis=0))
        stderr = {f.column: float(e) for f, e in zip(features, se, strict=True)}
    return FitResult(tuple(features), coefficients, rows, tuple(dropped), stderr)


def leave_one_out(
    df: pd.DataFrame, *, flops_dtype: str = "fp32", memory_level: str = "dram"
) -> pd.DataFrame:
    """For each case: fit on all the others, predict it. Columns: case, energy_j,
    loo_predicted_energy_j, loo_error_pct (predicted vs measured, in percent).

    Needs one more case than coefficients; raises EnergyHarnessError otherwise.
    """
    features, _ = features_of(df, flops_dtype=flops_dtype, memory_level=memory_level)
    if len(df) < len(features) + 1:
        raise EnergyHarnessError(
            f"leave-one-out needs at least {len(features) + 1} cases for "
            f"{len(features)} coefficients; the table has {len(df)}"
        )
    matrix, energy = _prepare(df, features)
    predicted = np.empty(len(energy))
    for i in range(len(energy)):
        keep = np.arange(len(energy)) != i
        coef = _solve(matrix[keep], energy[keep])
        predicted[i] = matrix[i] @ coef
    return pd.DataFrame(
        {
            "case": _names(df),
            "energy_j": energy,
            "loo_predicted_energy_j": predicted,
            "loo_error_pct": 100.0 * (predicted - energy) / energy,
        }
    )


def fit_to_profile(
    fit: FitResult,
    *,
    name: str,
    description: str,
    target: str,
    host_to_device_inputs: bool,
    provenance: str,
    rates: dict[str, float] | None = None,
    extra_fit: dict[str, object] | None = None,
) -> Profile:
    """A machine profile from a fit: every value's source names the fit and `provenance`.

    `rates` maps count columns to achieved rates (FLOP/s, byte/s) for the profile's
    optional throughput fields. The residuals go to the profile's [fit] table.
    Raises EnergyHarnessError if the fit has no memory coefficient (a profile needs one).
    """
    rates = rates or {}
    compute: dict[str, ComputeEnergy] = {}
    memory: dict[str, TransferEnergy] = {}
    comm: dict[str, TransferEnergy] = {}

    def source(f: Feature) -> str:
        spread = fit.stderr_pct(f.column)
        spread_text = f" (jackknife standard error {spread:.1f} %)" if spread is not None else ""
        return f"NNLS fit of column {f.column!r}{spread_text}: {provenance}"

    static_w = fit.coefficients[STATIC]
    for f in fit.features:
        value = fit.coefficients[f.column]
        if f.part == "compute":
            compute[f.key] = ComputeEnergy(value / PJ, source(f), rates.get(f.column))
        elif f.part == "memory":
            memory[f.key] = TransferEnergy(value / PJ, source(f), rates.get(f.column))
        elif f.part == "communication":
            comm[f.key] = TransferEnergy(value / PJ, source(f), rates.get(f.column))
    if not memory:
        raise EnergyHarnessError(
            "the cases have no `bytes` column (or it is zero everywhere): a profile needs a "
            "memory energy; add memory-bound cases or do not write a profile"
        )
    static_feature = next(f for f in fit.features if f.column == STATIC)
    fit_table: dict[str, object] = {
        "method": "scipy.optimize.nnls, rows weighted by 1 / energy_j",
        "model": "energy_j = power_w x duration_s + sum of pj x count",
        "rms_residual_pct": fit.rms_residual_pct,
        "undetermined": list(fit.undetermined),
        **(extra_fit or {}),
        "rows": [
            {k: (float(v) if not isinstance(v, str) else v) for k, v in row.items()}
            for row in fit.rows.to_dict(orient="records")
        ],
    }
    return Profile(
        name=name,
        description=description,
        target=target,
        memory_level=next(iter(memory)),
        host_to_device_inputs=host_to_device_inputs,
        derivation=(
            f"Fitted to the energy of {provenance}.\n"
            "Model: energy_j = static power_w x duration_s + sum of pJ per unit x count, "
            "all coefficients >= 0 (non-negative least squares, relative residuals).\n"
            "Residuals per measured window are in the [fit] table. A coefficient the "
            "benchmarks do not exercise strongly has a large standard error (see each source)."
        ),
        compute=compute,
        memory=memory,
        communication=comm,
        static=StaticPower(static_w, source(static_feature)),
        fit=fit_table,
    )
