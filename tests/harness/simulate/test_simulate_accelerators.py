"""Accelerator profiles: the built-in ones load with a source for every value; a bad
file is one line naming the file and the key."""

from __future__ import annotations

import pytest

from harness.errors import EnergyHarnessError
from harness.simulate.accelerators import builtin_accelerators, load_accelerator


def test_the_built_in_accelerators_are_edge_tpuv1_and_eyeriss_sized():
    accs = {name: load_accelerator(name) for name in builtin_accelerators()}
    assert {(a.rows, a.cols) for a in accs.values()} == {(64, 64), (256, 256), (12, 14)}
    for acc in accs.values():
        assert len(acc.sources) == 9 and all(s.strip() for s in acc.sources.values())
        assert acc.clock_hz > 0 and acc.dram_pj_per_byte > acc.sram_pj_per_byte > 0
    assert accs["tpuv1-256"].static_power_w == 28.0  # Jouppi et al. 2017


@pytest.mark.parametrize(
    "edit, message",
    [
        (('dataflow = "os"', 'dataflow = "rs"'), "[array] dataflow must be one of os, ws, is"),
        (("rows = 64\n", ""), "[array] lacks 'rows'"),
        (("hz = 5.0e8", "hz = -1"), "[clock] hz must be positive"),
        (("bytes = 1\n", "bytes = 1.5\n"), "[word] bytes must be a whole number"),
    ],
)
def test_a_bad_accelerator_file_names_the_key(tmp_path, edit, message):
    text = builtin_accelerators()["edge-systolic-64"].read_text(encoding="utf-8")
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(*edit, 1), encoding="utf-8")
    with pytest.raises(EnergyHarnessError) as err:
        load_accelerator(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_an_unknown_accelerator_lists_the_built_in_ones():
    with pytest.raises(EnergyHarnessError, match="built-in accelerators: edge-systolic-64"):
        load_accelerator("tpu-v9")
