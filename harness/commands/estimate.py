"""`estimate`: the analytic energy model from the command line, no hardware needed.

It counts a model's work and prices it with a profile. Estimated figures are always
labelled as estimates.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.commands.common import json_safe, user_errors
from harness.errors import EnergyHarnessError, is_out_of_memory
from harness.estimate.names import (
    DEFAULT_PROFILE,
    DENSE_HW,
    ESTIMATE_LABEL,
    MODES,
    NONZERO_PARAMS,
    OPTIMIZER_TRAFFIC,
    SPARSE_IDEAL,
)
from harness.estimate.profiles import builtin_profiles
from harness.report.format import fmt_si

if TYPE_CHECKING:
    from harness.estimate.model import ModelEstimate

# torch and pandas are imported inside the commands: `energy-harness --help`, `probes`
# and `measure` start without them.

console = Console(emoji=False)

_MEANING = {
    DENSE_HW: "zeros computed and moved",
    SPARSE_IDEAL: "nonzeros only (ideal)",
    NONZERO_PARAMS: "proxy: a count, not J",
}
_PROFILES_HELP = (
    "Profile: a built-in name or a .toml path. Built-in: " + ", ".join(builtin_profiles()) + "."
)


def _parse_params(pairs: list[str] | None) -> dict[str, object]:
    """`key=value` pairs; values read as TOML literals (0.9, true, "x"), else as text."""
    import tomllib

    params: dict[str, object] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise EnergyHarnessError(f"--param {pair!r}: write it as key=value, e.g. sparsity=0.9")
        try:
            params[key.strip()] = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            params[key.strip()] = text.strip()
    return params


def _print_estimate(est: ModelEstimate, title: str, notes: list[str]) -> None:
    d = est.to_dict()
    console.print(f"[bold]{escape(title)}[/bold]: {ESTIMATE_LABEL}", highlight=False)
    console.print(
        f"profile {est.profile.name} ({est.profile.target}), memory level "
        f"{d['memory_level']}, {d['mode']}, batch {d['batch_size']}"
        + (f", {d['world_size']} data-parallel ranks" if d["world_size"] > 1 else ""),
        markup=False,
        highlight=False,
    )
    per_sample = est.per_sample(DENSE_HW)
    table = Table(title="estimated energy per sample = sum of E_i x C_i", title_justify="left")
    for column in ("part", "counted", "C_i", "E_i", "E_i x C_i"):
        table.add_column(column, justify="left" if column in ("part", "counted") else "right")
    for t in per_sample.terms:
        unit = "B" if t.unit == "byte" else t.unit
        rate = (
            fmt_si(t.joules_per_unit, "W")
            if t.unit == "s"
            else fmt_si(t.joules_per_unit, f"J/{unit}")
        )
        table.add_row(t.part, t.name, fmt_si(t.count, unit), rate, fmt_si(t.energy_j, "J"))
    console.print(table)
    b = per_sample.breakdown_j
    console.print(
        f"estimated {fmt_si(per_sample.energy_j, 'J')} per sample = "
        f"compute {fmt_si(b['compute'], 'J')} + storage {fmt_si(b['storage'], 'J')} + "
        f"communication {fmt_si(b['communication'], 'J')} + static {fmt_si(b['static'], 'J')}",
        markup=False,
        highlight=False,
    )
    step = est.energy[DENSE_HW]
    console.print(
        f"duration per step: {fmt_si(step.duration_s, 's')} ({step.duration_source})",
        markup=False,
        highlight=False,
    )
    acc = Table(title="accountings (estimates per sample)", title_justify="left")
    for column in ("accounting", "FLOPs", "memory", "energy", "meaning"):
        acc.add_column(column, justify="left" if column in ("accounting", "meaning") else "right")
    for name in (DENSE_HW, SPARSE_IDEAL):
        f = d["accountings"][name]
        acc.add_row(
            name,
            fmt_si(f["flops_per_sample"], "FLOP"),
            fmt_si(f["bytes_per_sample"], "B"),
            fmt_si(f["energy_j_per_sample"], "J"),
            _MEANING[name],
        )
    nz = d["accountings"][NONZERO_PARAMS]
    acc.add_row(NONZERO_PARAMS, "", "", f"{nz['nonzero_params']:,}", _MEANING[NONZERO_PARAMS])
    console.print(acc)
    ops = sorted(d["flops_by_op_per_sample"].items(), key=lambda kv: -kv[1])
    console.print(
        "FLOPs per sample by operator: "
        + ", ".join(f"{op.removeprefix('aten.')} {fmt_si(flops, 'FLOP')}" for op, flops in ops),
        markup=False,
        highlight=False,
    )
    console.print(
        f"density {d['density']:.3f} ({d['nonzero_params']:,} of {d['params']:,} parameters "
        f"nonzero); counted on {d['counted_on']}",
        markup=False,
        highlight=False,
    )
    for note in notes:
        console.print(f"note: {note}", markup=False, highlight=False)


@user_errors
def estimate_command(
    model: Annotated[
        str, typer.Argument(help="Model name (e.g. lenet5) or package.module:factory.")
    ],
    variant: Annotated[
        str,
        typer.Option(
            help="Compression variant: dense, threshold, magnitude, structured, "
            "semi-structured-2:4, int8-dynamic (applied to untrained weights)."
        ),
    ] = "dense",
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param", help="Variant parameter key=value (repeat), e.g. --param sparsity=0.9."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples per step.")] = 1,
    profile: Annotated[str, typer.Option(help=_PROFILES_HELP)] = DEFAULT_PROFILE,
    mode: Annotated[str, typer.Option(help="inference or training.")] = "inference",
    duration_s: Annotated[
        float | None,
        typer.Option(
            "--duration-s",
            help="Measured duration of one step (s), for the static part. "
            "Default: the profile's roofline estimate, if it has rates.",
        ),
    ] = None,
    world_size: Annotated[
        int, typer.Option("--world-size", help="Data-parallel ranks (training).")
    ] = 1,
    optimizer: Annotated[
        str, typer.Option(help="Optimizer of a training step: " + ", ".join(OPTIMIZER_TRAFFIC))
    ] = "sgd-momentum",
    memory_level: Annotated[
        str | None,
        typer.Option(
            "--memory-level", help="Charge memory traffic to this level of the profile (what-if)."
        ),
    ] = None,
    host_to_device: Annotated[
        bool | None,
        typer.Option(
            "--host-to-device/--no-host-to-device",
            help="Count a host-to-device copy of every batch (default: as the profile says).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")] = False,
) -> None:
    """Estimate the energy per sample of a model on a profiled target (no hardware needed)."""
    if mode not in MODES:
        raise EnergyHarnessError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s >= 0):
        raise EnergyHarnessError(f"--duration-s must be a finite number >= 0, got {duration_s}")
    from harness.estimate.model import estimate_model
    from harness.prepare.untrained import untrained_variant

    try:
        net, example, notes = untrained_variant(model, variant, batch_size, _parse_params(param))
        est = estimate_model(
            net,
            example,
            profile,
            mode=mode,
            duration_s=duration_s,
            host_to_device=host_to_device,
            world_size=world_size,
            optimizer=optimizer,
            memory_level=memory_level,
        )
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise EnergyHarnessError(
            f"--batch-size {batch_size}: one batch of {model}'s input does not fit in memory "
            "on this machine; give a smaller --batch-size"
        ) from None
    report = {"model": model, "variant": variant, **est.to_dict()}
    report["notes"] = [*notes, *report["notes"]]
    if as_json:
        print(json.dumps(json_safe(report), allow_nan=False))
        return
    _print_estimate(est, f"{model} [{variant}]", report["notes"])


def register(app: typer.Typer) -> None:
    """Add `estimate` to the CLI."""
    app.command("estimate")(estimate_command)
