"""Options and error handling shared by the CLI commands."""

from __future__ import annotations

import contextlib
import functools
import math
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from harness.errors import EnergyHarnessError, HarnessWarning
from harness.measure.meter import DomainEnergy, Measurement
from harness.measure.sources import source_label
from probes.base import ProbeOptions

err_console = Console(stderr=True, emoji=False)  # text such as `pkg.mod:ok:` stays text

ProbeNames = Annotated[
    list[str] | None,
    typer.Option(
        "--probe",
        metavar="NAME",
        help="Probe to use (repeat for several). Default: every available default probe.",
    ),
]
PowercapRoot = Annotated[
    Path | None,
    typer.Option(
        "--powercap-root",
        metavar="PATH",
        help="Powercap tree for the rapl probe (else $ENERGY_HARNESS_POWERCAP_ROOT, else /sys).",
    ),
]

Country = Annotated[
    str | None,
    typer.Option(metavar="ISO3", help="ISO-3 country code for CO2 (else the world average)."),
]
Region = Annotated[
    str | None,
    typer.Option(
        metavar="REGION", help="Region for CO2 (US state, province, zone); needs --country."
    ),
]
CarbonIntensity = Annotated[
    float | None,
    typer.Option(metavar="G_PER_KWH", help="Override carbon intensity, g CO2eq per kWh."),
]
Pue = Annotated[float | None, typer.Option(metavar="PUE", help="Power usage effectiveness (>= 1).")]


def probe_options(powercap_root: Path | None) -> ProbeOptions:
    """ProbeOptions from the CLI flags."""
    return ProbeOptions(powercap_root=powercap_root)


def user_errors(func: Callable) -> Callable:
    """Print an EnergyHarnessError as one line (no traceback) and exit with status 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EnergyHarnessError as exc:
            err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


# libraries whose warnings speak to their own developers (deprecations, internal notes),
# not to someone measuring a model; Python's -W and PYTHONWARNINGS still show them
LIBRARY_WARNINGS = r"(torch|torchvision|torch_pruning|torchao|codecarbon|pynvml)(\.|$)"


@contextlib.contextmanager
def cli_warnings(say: Callable[[str], None]) -> Iterator[None]:
    """Warnings as one `warning: ...` line each, through `say`; the libraries' own
    (LIBRARY_WARNINGS) are filtered unless the user asked for them with -W."""
    with warnings.catch_warnings():
        if not sys.warnoptions:
            for category in (UserWarning, DeprecationWarning, FutureWarning):
                warnings.filterwarnings("ignore", category=category, module=LIBRARY_WARNINGS)

        def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
            where = "" if issubclass(category, HarnessWarning) else f" ({filename}:{lineno})"
            say(f"warning: {message}{where}")

        warnings.showwarning = show
        yield


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN: invalid figures become null."""
    return None if value is None or math.isnan(value) else value


def json_safe(value: Any) -> Any:
    """`value` with every NaN or infinite float, however deep, replaced by None (null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def measurement_table(m: Measurement) -> Table:
    """A rich table of one measurement, every figure labelled with its source."""
    table = Table(title=f"{m.name}: {m.duration_s:.3f} s", title_justify="left")
    for column in ("probe", "domain", "source", "energy_j", "power_w", "in total"):
        table.add_column(column, justify="right" if column[-2:] in ("_j", "_w") else "left")
    for d in m.domains:
        if d.energy_j is None:
            energy, power = "invalid", ""
        else:
            energy = f"{d.energy_j:.3f}"
            power = f"{d.energy_j / m.duration_s:.2f}" if m.duration_s > 0 else ""
        table.add_row(
            d.probe, d.domain, source_label(d.source), energy, power, "yes" if d.in_total else ""
        )
    return table


def invalid_line(d: DomainEnergy) -> str:
    """`cpu:package-0: INVALID: why`: one invalid reading, said the same way everywhere."""
    return f"{d.domain}: INVALID: {d.invalid_reason}"


def domain_notes(m: Measurement) -> list[str]:
    """One plain line per domain that has a note or an invalid reading."""
    lines = []
    for d in m.domains:
        if d.invalid_reason:
            lines.append(invalid_line(d))
        elif d.note:
            lines.append(f"{d.domain}: {d.note}")
    return lines


def total_line(m: Measurement) -> str:
    """One line: total energy, average power and what the total is made of; no total
    where a domain it adds is invalid (each says why)."""
    invalid = [d.domain for d in m.domains if d.in_total and d.energy_j is None]
    if invalid:
        return (
            f"total: none over {m.duration_s:.3f} s: {', '.join(invalid)} could not be read "
            "(the reason is on its line), and a total without it would be too low"
        )
    line = (
        f"total {m.total_energy_j:.3f} J ({source_label(m.total_source)}) over "
        f"{m.duration_s:.3f} s, average {m.average_power_w:.2f} W"
    )
    if m.total_source == "counter+model":
        line += f" [measured {m.measured_energy_j:.3f} J + modelled {m.modelled_energy_j:.3f} J]"
    return line
