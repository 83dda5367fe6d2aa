"""`probes`, `measure` and `demo`: the measurement-core commands."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import warnings
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.commands.common import (
    CarbonIntensity,
    Country,
    PowercapRoot,
    ProbeNames,
    Pue,
    Region,
    domain_notes,
    err_console,
    finite_or_none,
    invalid_line,
    measurement_table,
    probe_options,
    total_line,
    user_errors,
)
from harness.errors import EnergyHarnessError
from harness.measure.meter import EnergyMeter, Measurement, ShortWindowWarning
from harness.measure.phases import PhaseEnergy, PhaseRecorder, outside_phases
from harness.measure.probes import load_probes, probe_statuses, select_probes
from harness.measure.sources import source_label
from harness.report.format import co2_line, fmt_si
from harness.rows.carbon import CarbonSettings, carbon_settings

console = Console(emoji=False)


@user_errors
def probes_command(
    powercap_root: PowercapRoot = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array.")] = False,
) -> None:
    """List every registered probe: available or why not, its domains and source."""
    rows = probe_statuses(probe_options(powercap_root))
    if as_json:
        print(json.dumps([r.__dict__ for r in rows]))
        return
    table = Table(title="probes", title_justify="left")
    for column in ("probe", "available", "source", "domains"):
        table.add_column(column, overflow="fold")
    for r in rows:
        available = "yes" if r.available else "no (why below)"
        if r.available and not r.default:
            available = f"yes, opt-in: --probe {r.name}"
        cells = (r.name, available, r.source, ", ".join(r.domains))
        table.add_row(*(Text(c) for c in cells))
    console.print(table)
    for r in rows:  # whole lines: a fix (a command, a path) is never cut
        if not r.available:
            console.print(f"{r.name}: {r.reason}", markup=False, highlight=False)
        for warning in r.warnings if r.available else ():
            console.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)


SIGTERM_EXIT = 128 + signal.SIGTERM  # 143, as a shell reports a job stopped by SIGTERM


def _run_child(
    cmd: list[str], quiet_stdout: bool, phases: PhaseRecorder | None = None
) -> tuple[int, bool, bool]:
    """Run the command and wait for it; a shell-style exit code, whether SIGTERM came, and
    whether it started at all (127: not found, 126: not executable, as a shell says).

    Ctrl-C waits too (the child got the same SIGINT). SIGTERM is forwarded to the child,
    which is waited for; the exit code is then 143. `phases`: the channel the command
    marks its phases through (`harness.phase`).
    """
    channel: dict[str, Any] = {}
    if phases is not None:
        channel = {"env": phases.env(), "pass_fds": phases.pass_fds}
    try:
        child = subprocess.Popen(cmd, stdout=sys.stderr if quiet_stdout else None, **channel)
    except FileNotFoundError:
        err_console.print(
            f"energy-harness: command not found: {cmd[0]}", markup=False, soft_wrap=True
        )
        return 127, False, False
    except PermissionError:
        err_console.print(
            f"energy-harness: permission denied: {cmd[0]}", markup=False, soft_wrap=True
        )
        return 126, False, False
    finally:
        if phases is not None:
            phases.spawned()
    terminated: list[int] = []

    def forward(signum: int, frame: object) -> None:
        terminated.append(signum)
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while True:
            try:
                code = child.wait()
                break
            except KeyboardInterrupt:
                continue  # the child got the same SIGINT; report what it used
    finally:
        signal.signal(signal.SIGTERM, previous)
    if terminated:
        return SIGTERM_EXIT, True, True
    return (128 + (-code) if code < 0 else code), False, True


@user_errors
def measure_command(
    cmd: Annotated[
        list[str] | None, typer.Argument(metavar="COMMAND", help="The command, after `--`.")
    ] = None,
    probe: ProbeNames = None,
    powercap_root: PowercapRoot = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print one JSON object on stdout (the command's stdout goes to stderr)."
        ),
    ] = False,
    country: Country = None,
    region: Region = None,
    carbon_intensity: CarbonIntensity = None,
    pue: Pue = None,
) -> None:
    """Run a command and report its energy per domain, its CO2, and the energy of each
    phase it marks (`with harness.phase("epoch-1"):`), like `perf stat` for joules."""
    if not cmd:
        raise EnergyHarnessError("give the command after `--`, e.g. `measure -- python t.py`")
    carbon = carbon_settings(country, region, carbon_intensity, 1.0 if pue is None else pue)
    selected = select_probes(probe, probe_options(powercap_root))
    meter = EnergyMeter(selected.probes)
    with meter, warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortWindowWarning)  # printed below, with the rest
        recorder = PhaseRecorder(meter)
        recorder.start()
        meter.begin_window("command")
        exit_code, terminated, started = _run_child(cmd, quiet_stdout=as_json, phases=recorder)
        m = meter.end_window("command")
        phases = recorder.finish()
    if not started:  # nothing ran: no figures to show (the reason is on stderr)
        if as_json:
            print(json.dumps({"started": False, "exit_code": exit_code}))
        raise typer.Exit(exit_code)
    notes = [*selected.warnings, *meter.started_warnings, *m.warnings]
    if as_json:  # each phase's warning; the text marks them on the phase lines, said once
        notes += [w for p in phases for w in p.measurement.warnings]
    else:
        notes += short_phases_note(phases)
    if terminated:
        notes.append(
            "stopped by SIGTERM, forwarded to the command: the figures cover the command "
            "until it exited"
        )
    if as_json:
        if carbon.assumed:  # said on the terminal; stdout stays one JSON object
            err_console.print(f"note: CO2 at {carbon.describe()}", markup=False, soft_wrap=True)
        print(json.dumps(measurement_json(m, exit_code, notes, carbon, phases)))
    else:
        err_console.print(measurement_table(m))
        for line in domain_notes(m):
            err_console.print(line, markup=False, highlight=False)
        err_console.print(total_line(m), markup=False, highlight=False)
        for line in [co2_line(m.total_energy_j, carbon), *phase_lines(m, phases)]:
            err_console.print(line, markup=False, highlight=False, soft_wrap=True)
        if m.other_cpu_pct is not None:
            line = f"other processes used {m.other_cpu_pct:.0f} % of the CPUs meanwhile"
            err_console.print(line, markup=False, highlight=False)
        for note in notes:
            err_console.print(f"warning: {note}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(exit_code)


OUTSIDE_PHASES = "(outside phases)"
NOISE_NOTE = "noise: shorter than the counters' update period"


def phase_lines(m: Measurement, phases: list[PhaseEnergy]) -> list[str]:
    """One line per phase (indented by depth) and one for the time outside phases: the
    top-level lines add up to the total. The energy says its source (`MODELLED`); a phase
    shorter than the counters' update period says it is noise."""
    if not phases:
        return []
    width = max(len(OUTSIDE_PHASES), *(len(p.name) + 2 * p.depth for p in phases))
    sources = {p.measurement.total_source for p in phases} | {m.total_source}
    common = source_label(sources.pop()) + " " if len(sources) == 1 else ""
    lines = [f"phases ({common}energy, time; top-level phases and the rest add up to the total):"]
    for p in phases:
        name = "  " * p.depth + p.name
        e = p.measurement
        notes = [p.note] if p.note else []
        notes += [NOISE_NOTE] if e.below_update_period else []
        notes += [] if common else [source_label(e.total_source)]
        note = f"  ({'; '.join(notes)})" if notes else ""
        lines.append(f"  {name:<{width}} {_joules(e.total_energy_j)} {e.duration_s:9.3f} s{note}")
    energy_j, duration_s = outside_phases(m, phases)
    rest = "" if common else f"  ({source_label(m.total_source)})"
    lines.append(f"  {OUTSIDE_PHASES:<{width}} {_joules(energy_j)} {duration_s:9.3f} s{rest}")
    return lines


def short_phases_note(phases: list[PhaseEnergy]) -> list[str]:
    """One warning for every phase marked noise on its line (none when no phase is)."""
    short = [p.measurement for p in phases if p.measurement.below_update_period]
    if not short:
        return []
    period_ms = max(m.update_period_s for m in short) * 1e3
    return [
        f"{len(short)} of {len(phases)} phases lasted less than the counters' update period "
        f"({period_ms:.0f} ms), marked noise above: their energies are mostly quantisation "
        "noise; make each phase longer (more steps per phase)"
    ]


def _joules(energy_j: float) -> str:
    return f"{fmt_si(energy_j, 'J'):>10}"


def phases_json(m: Measurement, phases: list[PhaseEnergy]) -> list[dict[str, Any]]:
    """`phases` of `measure --json`: each phase, then the time outside them (depth 0)."""
    if not phases:
        return []
    energy_j, duration_s = outside_phases(m, phases)
    outside = {"name": OUTSIDE_PHASES, "pid": None, "depth": 0, "start_utc": m.start_utc}
    outside |= {"duration_s": duration_s, "energy_j": energy_j, "source": m.total_source}
    outside |= {"below_update_period": False}  # a difference of two windows, not one
    return [
        {**p.to_dict(), "energy_j": finite_or_none(p.measurement.total_energy_j)} for p in phases
    ] + [{**outside, "energy_j": finite_or_none(energy_j), "note": ""}]


def measurement_json(
    m: Measurement,
    exit_code: int,
    warnings: list[str],
    carbon: CarbonSettings | None = None,
    phases: list[PhaseEnergy] | None = None,
) -> dict[str, Any]:
    """What `measure --json` prints: the window, each domain with its reason, warnings,
    CO2 with the intensity used and where it came from, and the phases."""
    co2: dict[str, Any] = {}
    if carbon is not None:
        co2 = {
            "co2_g": finite_or_none(carbon.co2_g(m.total_energy_j)),
            "carbon": {**carbon.to_dict(), "assumed": carbon.assumed},
        }
    return {
        "started": True,
        "duration_s": m.duration_s,
        "total_energy_j": finite_or_none(m.total_energy_j),
        "total_source": m.total_source,
        "average_power_w": finite_or_none(m.average_power_w),
        "domains": [
            {
                "probe": d.probe,
                "domain": d.domain,
                "energy_j": d.energy_j,
                "source": d.source,
                "in_total": d.in_total,
                "note": d.note or d.invalid_reason,
                "invalid_reason": d.invalid_reason,
            }
            for d in m.domains
        ],
        "exit_code": exit_code,
        "warnings": [*warnings, *(invalid_line(d) for d in m.domains if d.invalid_reason)],
        "other_cpu_pct": m.other_cpu_pct,
        **co2,
        "phases": phases_json(m, phases or []),
    }


@user_errors
def demo_command(
    probe: ProbeNames = None,
    powercap_root: PowercapRoot = None,
    seconds: Annotated[float, typer.Option(help="Length of the busy window (s).")] = 2.0,
) -> None:
    """Measure idle power, then a short matrix-product loop (CPU, or GPU when present)."""
    import torch

    if seconds <= 0:
        raise EnergyHarnessError(f"--seconds must be positive, got {seconds}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    n = 2048 if device == "cuda" else 256
    a = torch.randn(n, n, device=device)
    meter = EnergyMeter(load_probes(probe, probe_options(powercap_root)))
    with meter:
        idle = meter.measure_idle(1.0)
        console.print("idle power: " + ", ".join(f"{k} {v:.2f} W" for k, v in idle.items()))
        products = 0
        with meter.window(f"matmul {n}x{n} on {device}") as w:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                a = torch.tanh(a @ a)
                products += 1
    m = w.measurement
    console.print(measurement_table(m))
    for line in domain_notes(m):
        console.print(line, markup=False, highlight=False)
    console.print(total_line(m), markup=False, highlight=False)
    flops = 2 * n**3 * products
    if m.total_energy_j > 0:
        console.print(f"{flops / m.total_energy_j / 1e9:.2f} GFLOP per joule ({products} products)")


def register(app: typer.Typer) -> None:
    """Add the commands to the CLI."""
    app.command("probes")(probes_command)
    app.command(
        "measure",
        context_settings={"allow_interspersed_args": False},
    )(measure_command)
    app.command("demo")(demo_command)
