"""Calibration fit: NNLS recovers known coefficients; leave-one-out; profile output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.errors import EnergyHarnessError
from harness.estimate.calibrate import fit_cases, fit_to_profile, leave_one_out
from harness.estimate.profiles import load_profile, write_profile

# Known coefficients in J per unit of their column (static: W).
TRUE = {
    "duration_s": 60.0,
    "flops_fp32": 12e-12,
    "flops_bf16": 0.9e-12,
    "bytes": 110e-12,
    "comm_bytes_host_to_device": 85e-12,
}
KINDS = [
    ("idle", None),
    ("matmul-fp32", "flops_fp32"),
    ("matmul-bf16", "flops_bf16"),
    ("copy", "bytes"),
    ("h2d", "comm_bytes_host_to_device"),
]


def synthetic_cases(seed: int, noise: float = 0.01, reps: int = 5) -> pd.DataFrame:
    """Microbenchmark-like windows: energy from TRUE, times (1 + N(0, noise))."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind, column in KINDS:
        for rep in range(reps):
            duration_s = rng.uniform(1.0, 3.0)
            row = dict.fromkeys(TRUE, 0.0) | {"case": f"{kind}-{rep}", "duration_s": duration_s}
            if column is not None:
                # The stressed term draws 3-8x the static power; matmuls also move bytes.
                dynamic_j = TRUE["duration_s"] * duration_s * rng.uniform(3.0, 8.0)
                row[column] = dynamic_j / TRUE[column]
                if column.startswith("flops"):
                    row["bytes"] = row[column] / rng.uniform(300.0, 3000.0)
            rows.append(row)
    cases = pd.DataFrame(rows)
    exact_j = sum(cases[c] * e for c, e in TRUE.items())
    cases["energy_j"] = exact_j * (1.0 + rng.normal(0.0, noise, len(cases)))
    return cases


@pytest.mark.parametrize("seed", range(5))
def test_fit_recovers_known_coefficients_within_2_percent(seed):
    fit = fit_cases(synthetic_cases(seed))
    for column, true in TRUE.items():
        assert fit.coefficients[column] == pytest.approx(true, rel=0.02), column
    assert fit.coefficient("memory", "dram") == fit.coefficients["bytes"]
    assert fit.rms_residual_pct < 2.0
    assert all(0 < fit.stderr_pct(c) < 5 for c in TRUE)


def test_fit_without_noise_is_exact():
    fit = fit_cases(synthetic_cases(7, noise=0.0))
    for column, true in TRUE.items():
        assert fit.coefficients[column] == pytest.approx(true, rel=1e-6)


def test_leave_one_out_flags_the_case_the_model_cannot_explain():
    cases = synthetic_cases(3, noise=0.002)
    cases.loc[cases["case"] == "copy-2", "energy_j"] *= 1.5  # a case measured wrong
    loo = leave_one_out(cases).set_index("case")
    assert abs(loo.loc["copy-2", "loo_error_pct"]) > 20
    others = loo.drop(index="copy-2")["loo_error_pct"].abs()
    assert others.median() < 2
    assert list(loo.columns) == ["energy_j", "loo_predicted_energy_j", "loo_error_pct"]


def test_plain_flops_column_and_undetermined_columns():
    cases = synthetic_cases(1, noise=0.0).drop(columns=["flops_bf16"])
    cases = cases[~cases["case"].str.startswith("matmul-bf16")]
    cases = cases.rename(columns={"flops_fp32": "flops"})
    cases["comm_bytes_interconnect"] = 0.0
    fit = fit_cases(cases, flops_dtype="fp16", memory_level="hbm")
    assert fit.coefficient("compute", "fp16") == pytest.approx(TRUE["flops_fp32"])
    assert fit.coefficient("memory", "hbm") == pytest.approx(TRUE["bytes"])
    assert fit.undetermined == ("comm_bytes_interconnect",)
    assert fit.coefficient("communication", "interconnect") is None


def test_malformed_tables_are_user_errors():
    cases = synthetic_cases(0)
    with pytest.raises(EnergyHarnessError, match="lacks column"):
        fit_cases(cases.drop(columns=["energy_j"]))
    with pytest.raises(EnergyHarnessError, match="no count column"):
        fit_cases(cases[["duration_s", "energy_j"]])
    bad = cases.copy()
    bad.loc[0, "energy_j"] = 0.0
    with pytest.raises(EnergyHarnessError, match="positive number"):
        fit_cases(bad)
    with pytest.raises(EnergyHarnessError, match="nothing to fit"):
        fit_cases(cases.head(3))  # idle windows only
    one_each = cases.iloc[[0, 5, 10]]  # idle, fp32 and bf16 matmul: 4 unknowns, 3 rows
    with pytest.raises(EnergyHarnessError, match="cannot determine"):
        fit_cases(one_each)
    with pytest.raises(EnergyHarnessError, match="leave-one-out needs"):
        leave_one_out(cases.iloc[[0, 5, 10, 11]])


def test_fit_to_profile_writes_a_loadable_profile_in_picojoules(tmp_path):
    fit = fit_cases(synthetic_cases(2))
    profile = fit_to_profile(
        fit,
        name="lab-box",
        description="test machine",
        target="gpu",
        host_to_device_inputs=True,
        provenance="synthetic windows for a test",
        rates={"flops_fp32": 4e13},
    )
    loaded = load_profile(write_profile(profile, tmp_path / "lab-box.toml"))
    assert loaded.compute["fp32"].pj_per_flop == pytest.approx(12.0, rel=0.02)
    assert loaded.compute["fp32"].flops_per_s == 4e13
    assert loaded.memory["dram"].pj_per_byte == pytest.approx(110.0, rel=0.02)
    assert loaded.communication["host_to_device"].pj_per_byte == pytest.approx(85.0, rel=0.02)
    assert loaded.static.power_w == pytest.approx(60.0, rel=0.02)
    assert "synthetic windows for a test" in loaded.static.source
    assert len(loaded.fit["rows"]) == len(fit.rows)
    assert {"case", "residual_pct"} <= set(loaded.fit["rows"][0])


def test_profile_needs_a_memory_coefficient():
    cases = synthetic_cases(0).drop(columns=["bytes"])
    with pytest.raises(EnergyHarnessError, match="memory energy"):
        fit_to_profile(
            fit_cases(cases),
            name="x",
            description="x",
            target="cpu",
            host_to_device_inputs=False,
            provenance="x",
        )
