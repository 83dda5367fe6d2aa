"""Input a lab gets wrong, as a user meets it (a subprocess): one line on stderr, exit 2,
no traceback, nothing measured and no run directory made."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SUITE = """
[suite]
repetitions = 1
train_epochs = 1
SETTING

[[models]]
name = "mlp"
variants = ["dense"]
"""


def cli(*args: str, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:  # noqa: ANN001
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "Traceback" not in result.stderr
    return line


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            'estimate_profile = "nonexistent-profile"',
            "suite.estimate_profile: unknown profile 'nonexistent-profile'; built-in profiles: ",
        ),
        (
            'estimate_profile = "/etc/hostname"',
            "suite.estimate_profile: profile /etc/hostname is not valid TOML",
        ),
        (
            'estimate_profile = "PROFILE"',
            "suite.estimate_profile: profile PROFILE is not UTF-8 text (byte 0: invalid start",
        ),
        ("seed = 99999999999999999999", "suite.seed: a seed from 0 to 9223372036854775807, got"),
        ("min_window_s = 1e300", "suite.min_window_s: must be at most 3600 s, got 1e+300"),
        (
            "idle_baseline_s = 1e9",
            "suite.idle_baseline_s: must be at most 3600 s, got 1000000000.0",
        ),
    ],
)
def test_a_suite_problem_is_found_before_anything_is_measured(tmp_path, setting, message):
    profile = tmp_path / "utf16.toml"
    profile.write_text('name = "mine"\n', encoding="utf-16")
    suite = tmp_path / "s.toml"
    suite.write_text(SUITE.replace("SETTING", setting.replace("PROFILE", str(profile))))
    out = tmp_path / "run"
    line = one_line(cli("run", str(suite), "--out", str(out), "--probe", "model"))
    assert line.startswith(f"error: {suite}: " + message.replace("PROFILE", str(profile)))
    assert not out.exists()


def test_a_utf16_suite_or_a_binary_profile_is_one_line(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text(SUITE.replace("SETTING", ""), encoding="utf-16")
    assert one_line(cli("run", str(suite), "--probe", "model")) == (
        f"error: suite file {suite} is not UTF-8 text (byte 0: invalid start byte); "
        "save it as UTF-8 TOML"
    )
    binary = tmp_path / "profile.toml"
    binary.write_bytes(bytes(range(256)))
    assert one_line(cli("estimate", "lenet5", "--profile", str(binary))).startswith(
        f"error: profile {binary} is not UTF-8 text (byte 128: invalid start byte)"
    )


def test_a_seed_beyond_64_bits_is_one_line():
    assert one_line(cli("estimate", "lenet5", "--seed", "99999999999999999999")) == (
        "error: --seed: a seed from 0 to 9223372036854775807, got 99999999999999999999"
    )


def test_an_out_name_too_long_for_the_file_system_is_one_line(tmp_path):
    out = tmp_path / ("x" * 300)
    suite = tmp_path / "s.toml"
    suite.write_text(SUITE.replace("SETTING", ""))
    assert one_line(cli("run", str(suite), "--out", str(out), "--probe", "model")) == (
        f"error: cannot create {out}: File name too long; use a shorter name (at most 255 "
        "bytes per folder or file name)"
    )


def test_probes_into_a_full_device_is_one_line():
    if not Path("/dev/full").exists():
        pytest.skip("this system has no /dev/full")
    with open("/dev/full", "w") as full:
        result = cli("probes", stdout=full)
    assert one_line(result) == (
        "error: cannot write standard output: No space left on device; free some space"
    )


@pytest.mark.parametrize(
    ("carbon", "message"),
    [
        ("pue = 0.5", "carbon.pue: must be >= 1.0 (facility / IT energy), got 0.5"),
        ("intensity_g_per_kwh = -3.0", "carbon.intensity_g_per_kwh: must be >= 0 g/kWh, got"),
        ('country = "XYZ"', "carbon.country: unknown country code 'XYZ': give an ISO-3 code"),
        ('region = "CA"', 'carbon.region: needs carbon.country (ISO-3), e.g. country = "USA"'),
    ],
)
def test_a_carbon_problem_names_the_suite_file_and_key(tmp_path, carbon, message):
    suite = tmp_path / "s.toml"
    suite.write_text(SUITE.replace("SETTING", "") + f"\n[carbon]\n{carbon}\n")
    line = one_line(cli("run", str(suite), "--out", str(tmp_path / "run"), "--probe", "model"))
    assert line.startswith(f"error: {suite}: {message}")
    assert "--pue" not in line and "--carbon-intensity" not in line
