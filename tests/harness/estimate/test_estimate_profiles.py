"""Profiles: the shipped ones, their sources, and errors a user can make."""

from __future__ import annotations

import pytest

from harness.errors import EnergyHarnessError
from harness.estimate.profiles import (
    builtin_profiles,
    load_profile,
    profile_to_toml,
    write_profile,
)

SHIPPED = {"horowitz-45nm", "h100-class", "h200-class", "a100-class", "x86-server-cpu"}


def test_shipped_profiles_load_and_every_value_has_a_source():
    names = set(builtin_profiles())
    assert SHIPPED | {"jetson-orin-class"} <= names
    for name in names:
        p = load_profile(name)
        assert p.name == name
        assert "fp32" in p.compute and p.memory_level in p.memory
        entries = [*p.compute.values(), *p.memory.values(), *p.communication.values(), p.static]
        assert all(e.source.strip() for e in entries), name
        assert len(p.derivation) > 200, name  # the derivation is written down


def test_horowitz_values_are_per_flop_and_per_byte():
    p = load_profile("horowitz-45nm")
    assert p.compute["fp32"].pj_per_flop == pytest.approx((0.9 + 3.7) / 2)
    assert p.compute["fp16"].pj_per_flop == pytest.approx((0.4 + 1.1) / 2)
    assert p.compute["int8"].pj_per_flop == pytest.approx((0.03 + 0.2) / 2)
    # Horowitz's memory figures are per 64-bit access: DRAM 1.3-2.6 nJ (the low end
    # is used), an 8 KB cache 10 pJ; Han et al.'s 640 pJ per 32-bit read is cited as theirs
    assert p.memory["dram"].pj_per_byte == pytest.approx(1300 / 8)
    assert "1.3-2.6 nJ per 64-bit" in p.memory["dram"].source
    assert "Han et al. 2015 list 640 pJ per 32-bit" in p.memory["dram"].source
    assert p.memory["sram"].pj_per_byte == pytest.approx(10 / 8)
    assert p.static.power_w == 0.0 and p.max_power is None


def test_datasheet_profiles_are_ordered_as_the_hardware():
    h100, a100 = load_profile("h100-class"), load_profile("a100-class")
    assert h100.compute["bf16"].pj_per_flop < a100.compute["bf16"].pj_per_flop
    assert h100.compute["bf16"].pj_per_flop < h100.compute["fp32"].pj_per_flop
    assert load_profile("h200-class").memory["hbm"].pj_per_byte < h100.memory["hbm"].pj_per_byte


@pytest.mark.parametrize(
    ("name", "tf32_dense_flops_per_s", "above_idle_w", "board_w"),
    [
        # datasheets list TF32 with 2:4 sparsity (989 / 312 TFLOP/s); dense is half
        ("h100-class", 494.5e12, 0.8 * (700 - 70), 700.0),
        ("h200-class", 494.5e12, 0.8 * (700 - 70), 700.0),
        ("a100-class", 156e12, 0.8 * (400 - 50), 400.0),
    ],
)
def test_gpu_profiles_price_tf32_on_tensor_cores_and_bound_the_board_power(
    name, tf32_dense_flops_per_s, above_idle_w, board_w
):
    p = load_profile(name)
    tf32 = p.compute["tf32"]
    assert tf32.flops_per_s == pytest.approx(0.7 * tf32_dense_flops_per_s, rel=0.01)
    assert tf32.pj_per_flop == pytest.approx(
        above_idle_w / (0.7 * tf32_dense_flops_per_s) * 1e12, rel=0.01
    )
    # tensor paths are cheaper per FLOP than CUDA-core fp32: bf16 < tf32 < fp32
    assert p.compute["bf16"].pj_per_flop < tf32.pj_per_flop < p.compute["fp32"].pj_per_flop
    assert p.max_power is not None and p.max_power.power_w == board_w
    # the HBM figure is labelled an assumption, with the literature's device figure beside
    hbm = p.memory["hbm"].source
    assert hbm.startswith("assumption") and "3.9 pJ/bit" in hbm and "O'Connor" in hbm


def test_a_maximum_power_below_the_static_power_is_refused(tmp_path):
    text = profile_to_toml(load_profile("h100-class"))
    path = tmp_path / "low.toml"
    path.write_text(text.replace("power_w = 700.0", "power_w = 50.0", 1))
    with pytest.raises(EnergyHarnessError, match=r"\[max_power\] power_w \(50 W\) must exceed"):
        load_profile(path)


def test_write_then_load_gives_the_same_profile(tmp_path):
    for name in builtin_profiles():
        original = load_profile(name)
        path = write_profile(original, tmp_path / f"{name}.toml", header="copy\nfor a test")
        assert load_profile(path) == original
        assert path.read_text().startswith("# copy\n# for a test\n")


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(EnergyHarnessError) as info:
        load_profile("tpu-v9")
    assert "horowitz-45nm" in str(info.value) and ".toml" in str(info.value)


def _edit(tmp_path, old: str, new: str):
    text = profile_to_toml(load_profile("horowitz-45nm"))
    assert old in text
    path = tmp_path / "edited.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "pj_per_flop = 2.3",
            "pj_per_flops = 2.3",
            r"unknown key 'pj_per_flops' in \[compute.fp32\]",
        ),
        ("[compute.fp32]", "[compute.fp128]", r"unknown key 'fp128' in \[compute\]"),
        ("pj_per_flop = 2.3", "pj_per_flop = -2.3", r"\[compute.fp32\] pj_per_flop must be"),
        ('memory_level = "dram"', 'memory_level = "hbm"', r"memory_level 'hbm' has no"),
        ('target = "asic"', 'target = "fpga"', "target 'fpga' is not one of"),
        ("[static]", "[statics]", "unknown top-level key 'statics'"),
        (
            "pj_per_byte = 162.5\n",
            "pj_per_byte = 162.5\nsourc = 1\n",
            r"'sourc' in \[memory.dram\]",
        ),
    ],
)
def test_bad_keys_name_the_file_and_the_key(tmp_path, old, new, message):
    path = _edit(tmp_path, old, new)
    with pytest.raises(EnergyHarnessError, match=message) as info:
        load_profile(path)
    assert str(path) in str(info.value)


def test_a_value_without_source_is_refused(tmp_path):
    text = profile_to_toml(load_profile("horowitz-45nm"))
    start = text.index("[compute.int8]")
    line = next(ln for ln in text[start:].splitlines() if ln.startswith("source"))
    path = tmp_path / "nosource.toml"
    path.write_text(text[:start] + text[start:].replace(line + "\n", "", 1))
    with pytest.raises(EnergyHarnessError, match=r"\[compute.int8\] lacks 'source'"):
        load_profile(path)


def test_invalid_toml_is_a_user_error(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[profile\nname = 1")
    with pytest.raises(EnergyHarnessError, match="not valid TOML"):
        load_profile(path)
