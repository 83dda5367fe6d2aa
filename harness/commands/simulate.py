"""`simulate`: a model on a simulated accelerator (SCALE-Sim) from the command line, no
hardware needed. Simulated figures are always labelled as such."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from harness.commands.common import json_safe, user_errors
from harness.commands.model_options import (
    InputShapeOption,
    ModelArgument,
    ParamOption,
    SeedOption,
    parse_params,
)
from harness.commands.model_options import input_shape as input_shape_of
from harness.errors import EnergyHarnessError
from harness.estimate.names import DEFAULT_SEED
from harness.report.format import fmt_si
from harness.simulate.accelerators import builtin_accelerators, load_accelerator

console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)

_ACCELERATORS_HELP = (
    "Accelerator: a built-in name or a .toml path. Built-in: "
    + ", ".join(builtin_accelerators())
    + "."
)


def _line(text: str) -> None:
    console.print(text, markup=False, highlight=False)


def _print_simulation(d: dict, title: str) -> None:
    _line(f"{title}: {d['label']}")
    _line(
        f"accelerator {d['accelerator']}: {d['array'][0]}x{d['array'][1]} {d['dataflow']}, "
        f"{fmt_si(d['clock_hz'], 'Hz')}; input {tuple(d['input_shape'])} (one sample)"
    )
    table = Table(title="layers (one sample)", title_justify="left")
    for column in ("layer", "kind", "x", "MACs", "cycles", "paper cycles", "DRAM words"):
        table.add_column(column, justify="left" if column in ("layer", "kind") else "right")
    for x in d["layers"]:
        table.add_row(
            x["name"],
            x["kind"],
            str(x["repeats"]),
            f"{x['macs']:,}",
            f"{x['cycles']:,.0f}",
            f"{x['paper_cycles']:,}",
            f"{x['dram_words']:,.0f}",
        )
    console.print(table)
    parts = ", ".join(f"{k} {fmt_si(v, 'J')}" for k, v in d["energy_parts_j"].items())
    _line(f"simulated {fmt_si(d['energy_j_per_sample'], 'J')} per sample = {parts}")
    _line(
        f"sparse-ideal {fmt_si(d['sparse_ideal_energy_j_per_sample'], 'J')}; latency "
        f"{fmt_si(d['latency_s'], 's')} ({d['cycles']:,.0f} cycles), DRAM "
        f"{fmt_si(d['dram_bytes'], 'B')}, utilisation {d['utilisation_pct']:.1f} %"
    )
    for note in d["notes"]:
        _line(f"note: {note}")


def _progress(done: int, todo: int) -> None:
    err_console.print(f"simulated {done}/{todo} layer shapes", highlight=False)


@user_errors
def simulate_command(
    model: ModelArgument,
    accelerator: Annotated[
        str, typer.Option(metavar="NAME|PATH", help=_ACCELERATORS_HELP)
    ] = "edge-systolic-64",
    variant: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="Compression variant: dense, threshold, magnitude, structured, "
            "semi-structured-2:4 (applied to untrained weights).",
        ),
    ] = "dense",
    param: ParamOption = None,
    seed: SeedOption = DEFAULT_SEED,
    input_shape: InputShapeOption = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir", help="Simulated layers cache (default: the results cache/simulate)."
        ),
    ] = None,
    timeout_s: Annotated[
        float, typer.Option("--timeout-s", help="Time limit of the simulator process (s).")
    ] = 900.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")] = False,
) -> None:
    """Simulate one sample of a model on an accelerator (SCALE-Sim; no hardware needed)."""
    if not timeout_s > 0:
        raise EnergyHarnessError(f"--timeout-s must be positive, got {timeout_s}")
    shape = input_shape_of(input_shape)
    acc = load_accelerator(accelerator)  # a bad name fails before the model is built
    from harness.prepare.untrained import untrained_variant
    from harness.simulate._runner import Limits
    from harness.simulate.cache import LayerCache
    from harness.simulate.model import simulate_model

    net, example, notes = untrained_variant(
        model, variant, 1, parse_params(param), seed=seed, input_shape=shape
    )

    cache, limits = LayerCache(cache_dir), Limits(timeout_s=timeout_s)
    progress = None if as_json else _progress
    sim = simulate_model(net, example[:1], acc, cache=cache, limits=limits, progress=progress)
    report = {"model": model, "variant": variant, "seed": seed, **sim.to_dict()}
    report["notes"] = [*notes, *report["notes"]]
    if as_json:
        print(json.dumps(json_safe(report), allow_nan=False))
        return
    _print_simulation(report, f"{model} [{variant}]")


def register(app: typer.Typer) -> None:
    """Add `simulate` to the CLI."""
    app.command("simulate")(simulate_command)
