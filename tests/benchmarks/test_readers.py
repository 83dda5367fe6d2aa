"""The readers benchmark's generated run: the size asked for, and figures the readers find."""

from __future__ import annotations

import pytest

from benchmarks.readers import MODELS, SAMPLES, VARIANTS, write_shard
from harness.rows.repetitions import load_run_repetitions


def test_a_generated_shard_has_the_size_asked_and_usable_windows_in_rounds(tmp_path):
    write_shard(tmp_path / "s", MODELS[:1], 300_000)
    size = (tmp_path / "s" / "measurements.csv").stat().st_size
    assert 300_000 <= size < 400_000
    reps, case_ids = load_run_repetitions(tmp_path / "s")
    assert len(case_ids) == len(VARIANTS)
    dense = reps[f"{MODELS[0]}/dense/inference/bs64/cpu"]
    windows = len(dense.repetitions)
    assert windows >= 50 and not dense.unusable and not dense.disturbed
    assert dense.rounds == [str(w) for w in range(windows)]
    # package + dram (0.8 + 0.2 of the window's energy) over SAMPLES; the core row is not added
    assert dense.energy_j_per_sample[2] == pytest.approx(3.2 * (1 + 0.01 * (14 % 5 - 2)) / SAMPLES)
