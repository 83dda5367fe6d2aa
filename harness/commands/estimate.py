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
from harness.commands.model_options import (
    InputShapeOption,
    ModelArgument,
    ParamOption,
    SeedOption,
    parse_params,
)
from harness.commands.model_options import input_shape as input_shape_of
from harness.errors import EnergyHarnessError, is_out_of_memory
from harness.estimate.names import (
    DEFAULT_PROFILE,
    DEFAULT_SEED,
    DENSE_HW,
    ESTIMATE_LABEL,
    FLOP_CONVENTION,
    MODES,
    NONZERO_PARAMS,
    OPTIMIZER_TRAFFIC,
    SPARSE_IDEAL,
)
from harness.estimate.profiles import builtin_profiles
from harness.report.format import fmt_si
from harness.spec.precision import DEFAULT_PRECISION, check_precision
from harness.spec.settings import check_seed

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


PrecisionOption = Annotated[
    str,
    typer.Option(
        metavar="PRECISION",
        help="fp32, tf32, bf16 or fp16: how the step runs (autocast for bf16/fp16) and how "
        "its FLOPs are priced (tensor-core rates for tf32/bf16/fp16 on GPU profiles).",
    ),
]


def _line(text: str) -> None:
    console.print(text, markup=False, highlight=False)


def _print_header(d: dict, title: str) -> None:
    console.print(f"[bold]{escape(title)}[/bold]: {ESTIMATE_LABEL}", highlight=False)
    _line(
        f"profile {d['profile']} ({d['profile_target']}), memory level {d['memory_level']}, "
        f"{d['mode']}, batch {d['batch_size']}"
        + (f", {d['world_size']} data-parallel ranks" if d["world_size"] > 1 else "")
    )
    classes = d["num_classes"] if d["num_classes"] is not None else "n/a"
    _line(
        f"input shape {tuple(d['input_shape'])} per sample, output {tuple(d['output_shape'])} "
        f"({classes} classes), precision {d['precision_note']}, seed {d['seed']}"
    )
    _line(f"FLOPs: {FLOP_CONVENTION}")


def _terms_table(est: ModelEstimate) -> Table:
    table = Table(title="estimated energy per sample = sum of E_i x C_i", title_justify="left")
    for column in ("part", "counted", "C_i", "E_i", "E_i x C_i"):
        table.add_column(column, justify="left" if column in ("part", "counted") else "right")
    for t in est.per_sample(DENSE_HW).terms:
        unit = "B" if t.unit == "byte" else t.unit
        rate = (
            fmt_si(t.joules_per_unit, "W")
            if t.unit == "s"
            else fmt_si(t.joules_per_unit, f"J/{unit}")
        )
        if t.cap_factor < 1:
            rate += f" x {t.cap_factor:.3f} (power cap)"
        table.add_row(t.part, t.name, fmt_si(t.count, unit), rate, fmt_si(t.energy_j, "J"))
    return table


def _print_totals(est: ModelEstimate) -> None:
    per_sample = est.per_sample(DENSE_HW)
    b = per_sample.breakdown_j
    _line(
        f"estimated {fmt_si(per_sample.energy_j, 'J')} per sample = "
        f"compute {fmt_si(b['compute'], 'J')} + storage {fmt_si(b['storage'], 'J')} + "
        f"communication {fmt_si(b['communication'], 'J')} + static {fmt_si(b['static'], 'J')}"
    )
    step = est.energy[DENSE_HW]
    _line(f"duration per step: {fmt_si(step.duration_s, 's')} ({step.duration_source})")
    if step.static is not None:
        _line(f"static power {fmt_si(step.static.joules_per_unit, 'W')}: {step.static.source}")
    if step.implied_power_w is not None:
        cap = step.power_cap
        bound = f" (maximum {fmt_si(cap.max_power_w, 'W')})" if cap is not None else ""
        _line(f"implied average power {fmt_si(step.implied_power_w, 'W')}{bound}")


def _accountings_table(d: dict) -> Table:
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
    return acc


def _print_estimate(est: ModelEstimate, d: dict, title: str) -> None:
    """The human-readable estimate: header, terms, totals, accountings, notes."""
    _print_header(d, title)
    console.print(_terms_table(est))
    _print_totals(est)
    console.print(_accountings_table(d))
    ops = sorted(d["flops_by_op_per_sample"].items(), key=lambda kv: -kv[1])
    _line(
        "FLOPs per sample by operator: "
        + ", ".join(f"{op.removeprefix('aten.')} {fmt_si(flops, 'FLOP')}" for op, flops in ops)
    )
    _line(
        f"density {d['density']:.3f} ({d['nonzero_params']:,} of {d['params']:,} parameters "
        f"nonzero); counted on {d['counted_on']}"
    )
    for note in d["notes"]:
        _line(f"note: {note}")


@user_errors
def estimate_command(
    model: ModelArgument,
    variant: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="Compression variant: dense, threshold, magnitude, structured, "
            "semi-structured-2:4, int8-dynamic (applied to untrained weights).",
        ),
    ] = "dense",
    param: ParamOption = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples per step.")] = 1,
    profile: Annotated[
        str, typer.Option(metavar="NAME|PATH", help=_PROFILES_HELP)
    ] = DEFAULT_PROFILE,
    mode: Annotated[str, typer.Option(metavar="MODE", help="inference or training.")] = "inference",
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
        str,
        typer.Option(
            metavar="NAME", help="Optimizer of a training step: " + ", ".join(OPTIMIZER_TRAFFIC)
        ),
    ] = "sgd-momentum",
    memory_level: Annotated[
        str | None,
        typer.Option(
            "--memory-level",
            metavar="LEVEL",
            help="Charge memory traffic to this level of the profile (what-if).",
        ),
    ] = None,
    host_to_device: Annotated[
        bool | None,
        typer.Option(
            "--host-to-device/--no-host-to-device",
            help="Count a host-to-device copy of every batch (default: as the profile says).",
        ),
    ] = None,
    precision: PrecisionOption = DEFAULT_PRECISION,
    seed: SeedOption = DEFAULT_SEED,
    input_shape: InputShapeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")] = False,
) -> None:
    """Estimate the energy per sample of a model on a profiled target (no hardware needed)."""
    if mode not in MODES:
        raise EnergyHarnessError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    check_precision(precision, "--precision")
    check_seed(seed, "--seed")
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s >= 0):
        raise EnergyHarnessError(f"--duration-s must be a finite number >= 0, got {duration_s}")
    shape = input_shape_of(input_shape)
    from harness.estimate.model import estimate_model
    from harness.prepare.untrained import untrained_variant

    try:
        net, example, notes = untrained_variant(
            model,
            variant,
            batch_size,
            parse_params(param),
            seed=seed,
            input_shape=shape,
            precision=precision,
        )
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
            precision=precision,
        )
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise EnergyHarnessError(
            f"--batch-size {batch_size}: one batch of {model}'s input does not fit in memory "
            "on this machine; give a smaller --batch-size"
        ) from None
    report = {"model": model, "variant": variant, "seed": seed, **est.to_dict()}
    report["notes"] = [*notes, *report["notes"]]
    if as_json:
        print(json.dumps(json_safe(report), allow_nan=False))
        return
    _print_estimate(est, report, f"{model} [{variant}]")


def register(app: typer.Typer) -> None:
    """Add `estimate` to the CLI."""
    app.command("estimate")(estimate_command)
