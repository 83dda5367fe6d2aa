"""The `energy-harness` command line. Each command group lives in `harness/commands/`."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from typing import Annotated

import typer

from harness.commands.streams import guard_stdout, sane_width_env

try:  # typer vendors click from 0.2x on; its usage errors are that click's
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover  (an older typer on the system click)
    from click.exceptions import UsageError

app = typer.Typer(
    name="energy-harness",
    help="Measure the energy of ML workloads with hardware counters; estimate and compare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: wrapped once, at the terminal's width
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Each module defines `register(app)`; add a module here to add its commands.
COMMAND_MODULES = [
    "harness.commands.measure",
    "harness.commands.estimate",
    "harness.commands.simulate",
    "harness.commands.calibrate",
    "harness.commands.report",
    "harness.commands.run",
]


def version_text() -> str:
    """`energy-harness 0.1.0`."""
    try:
        return f"energy-harness {importlib.metadata.version('energy-harness')}"
    except importlib.metadata.PackageNotFoundError:
        return "energy-harness (not installed as a package)"


def _print_version(value: bool) -> None:
    if value:
        print(version_text())
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Measure the energy of ML workloads with hardware counters; estimate and compare."""


def _register_all() -> None:
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(app)


sane_width_env()  # before the commands' consoles read COLUMNS
_register_all()


def usage_line(exc: UsageError) -> str:
    """A usage error as one line, with the help to read (a mistyped option or command
    already names the nearest ones)."""
    message = " ".join(exc.format_message().split())
    where = exc.ctx.command_path if exc.ctx is not None else "energy-harness"
    return f"error: {message.rstrip('.')}; see `{where} --help`"


def main() -> None:
    """Console-script entry point: our own warnings as one line each, the libraries'
    deprecation notes left out (`harness.commands.common.cli_warnings`); a usage error is
    one line (exit status 2); stdout and stderr in ASCII where they cannot encode, stdout
    guarded against its reader going away (`harness.commands.streams`)."""
    from harness.commands.common import cli_warnings, err_console

    def say(line: str) -> None:
        err_console.print(line, markup=False, highlight=False, soft_wrap=True)

    guard_stdout()
    with cli_warnings(say):
        try:
            code = app(prog_name="energy-harness", standalone_mode=False)
        except UsageError as exc:
            say(usage_line(exc))
            code = 2
        except typer.Abort:
            code = 130
    sys.exit(code if isinstance(code, int) else 0)
