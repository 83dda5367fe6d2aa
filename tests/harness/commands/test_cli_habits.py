"""The CLI in the usual habits: -h, --version, usage errors in one line, near names."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "80", **env},
    )


def test_short_help_and_version():
    short, long = cli("run", "-h"), cli("run", "--help")
    assert short.returncode == 0 and short.stdout == long.stdout
    assert "<bool>" not in short.stdout and "--cache / --no-cache" in short.stdout
    assert not any(c in short.stdout for c in "╭│╰")  # plain text, wrapped once
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("energy-harness 0.")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["compare", "a"], "error: Missing argument 'RUN_B'; see `energy-harness compare --help`"),
        (["measure"], "error: give the command after `--`, e.g. `measure -- python t.py`"),
        (
            ["run", "--pue2", "1"],
            "error: No such option: --pue2 (Possible options: --peer, --probe, --pue)",
        ),
        (["rn"], "error: No such command 'rn'. Did you mean 'run'?"),
    ],
)
def test_usage_errors_are_one_line(args, line):
    result = cli(*args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[0].startswith(line)
    assert len(result.stderr.strip().splitlines()) == 1


def test_cache_help_shows_the_folder_in_effect():
    result = cli("run", "-h", ENERGY_HARNESS_CACHE="/srv/models/cache")
    assert "Reuse prepared models from /srv/models/cache" in " ".join(result.stdout.split())


def test_every_text_option_names_what_it_takes():
    """`--variant NAME`, `--shard I/N`: never Typer's bare `<str>` after an option."""
    from typer.main import get_command
    from typer.testing import CliRunner

    from harness.cli import app

    commands = sorted(get_command(app).commands)
    assert {"run", "estimate", "simulate", "calibrate"} <= set(commands)
    for name in commands:
        result = CliRunner().invoke(app, [name, "--help"], terminal_width=100)
        assert result.exit_code == 0, result.output
        options = [x for x in result.output.splitlines() if x.lstrip().startswith("-")]
        assert options and not [x for x in options if "<str>" in x], (name, options)
