"""The `energy-harness` command line. Each command group lives in `harness/commands/`."""

from __future__ import annotations

import importlib

import typer

from harness.commands.streams import guard_stdout, sane_width_env

app = typer.Typer(
    name="energy-harness",
    help="Measure the energy of ML workloads with hardware counters; estimate and compare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module defines `register(app)`; add a module here to add its commands.
COMMAND_MODULES = [
    "harness.commands.measure",
    "harness.commands.estimate",
    "harness.commands.calibrate",
    "harness.commands.report",
    "harness.commands.run",
]


def _register_all() -> None:
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(app)


sane_width_env()  # before the commands' consoles read COLUMNS
_register_all()


def main() -> None:
    """Console-script entry point: our own warnings as one line each, the libraries'
    deprecation notes left out (`harness.commands.common.cli_warnings`); stdout and stderr
    in ASCII where they cannot encode, stdout guarded against its reader going away
    (`harness.commands.streams`)."""
    from harness.commands.common import cli_warnings, err_console

    guard_stdout()
    with cli_warnings(lambda line: err_console.print(line, markup=False, highlight=False)):
        app()
