"""`estimate` and `calibrate`: the analytic energy model from the command line.

`estimate` needs no hardware: it counts a model's work and prices it with a profile.
`calibrate` measures microbenchmarks with the machine's probes (or reads a finished
suite run) and fits a profile. Estimated figures are always labelled as estimates.
"""

from __future__ import annotations

import json
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.commands.common import (
    PowercapRoot,
    ProbeNames,
    err_console,
    finite_or_none,
    probe_options,
    user_errors,
)
from harness.errors import EnergyHarnessError
from harness.estimate.names import (
    DEFAULT_PROFILE,
    DENSE_HW,
    ESTIMATE_LABEL,
    MODES,
    NONZERO_PARAMS,
    OPTIMIZER_TRAFFIC,
    SPARSE_IDEAL,
)
from harness.estimate.profiles import builtin_profiles, write_profile

if TYPE_CHECKING:
    from harness.estimate.model import ModelEstimate

# torch and pandas are imported inside the commands: `energy-harness --help`, `probes`
# and `measure` start without them.

console = Console()

_MEANING = {
    DENSE_HW: "zeros computed and moved",
    SPARSE_IDEAL: "nonzeros only (ideal)",
    NONZERO_PARAMS: "proxy: a count, not J",
}
_PROFILES_HELP = (
    "Profile: a built-in name or a .toml path. Built-in: " + ", ".join(builtin_profiles()) + "."
)


def si(value: float | None, unit: str) -> str:
    """A number with an SI prefix: 6.3e-05 J -> '63.0 uJ'."""
    if value is None:
        return "n/a"
    if value == 0:
        return f"0 {unit}"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, "")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    for factor, prefix in ((1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


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


def prepare_model(
    model_name: str, variant: str, batch_size: int, params: dict[str, object] | None = None
):
    """A randomly initialised model compressed as `variant`, one batch of input, and notes.

    Uses harness.compress without training or fine-tuning (no data, no hardware needed).
    `semi-structured-2:4`, which runs only on sparse tensor cores, is estimated as its
    2:4 pattern applied in half precision.
    """
    import torch

    from benchmarks.models import build_model, example_input

    if batch_size < 1:
        raise EnergyHarnessError(f"--batch-size must be at least 1, got {batch_size}")
    model = build_model(model_name)
    example = example_input(model_name, batch_size)
    if variant == "dense" and not params:
        return model, example, []
    from benchmarks.data import load_synthetic_splits
    from harness import compress

    resolved = compress.resolve_variant(variant, params)
    if "fine_tune_epochs" in resolved:
        resolved["fine_tune_epochs"] = 0
    notes = [f"variant {variant} applied to randomly initialised weights, without training "
             "or fine-tuning"]  # fmt: skip
    if variant == compress.SEMI_STRUCTURED:
        layers = compress.semi_structured_layers(model)
        if not layers:
            raise compress.VariantUnsupported(variant, "no linear layer has a 2:4-eligible shape")
        modules = dict(model.named_modules())
        for name in layers:
            weight = modules[name].weight
            with torch.no_grad():
                weight.mul_(compress.two_four_mask(weight))
        notes.append(
            f"2:4 pattern in {len(layers)} linear layers, in half precision; sparse tensor "
            "cores realise about the sparse-ideal count of those layers"
        )
        model = model.half().eval()
        example = example.half() if example.is_floating_point() else example
        return model, example, notes
    if variant == "threshold":
        notes.append("threshold pruning of untrained weights: a trained model's sparsity differs")
    data = load_synthetic_splits(model=model_name, train_size=1, test_size=1)
    compressed = compress.compress_model(model, variant, resolved, data, device="cpu")
    return compressed.model, example, notes


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
        rate = si(t.joules_per_unit, "W") if t.unit == "s" else si(t.joules_per_unit, f"J/{unit}")
        table.add_row(t.part, t.name, si(t.count, unit), rate, si(t.energy_j, "J"))
    console.print(table)
    b = per_sample.breakdown_j
    console.print(
        f"estimated {si(per_sample.energy_j, 'J')} per sample = compute {si(b['compute'], 'J')}"
        f" + storage {si(b['storage'], 'J')} + communication {si(b['communication'], 'J')}"
        f" + static {si(b['static'], 'J')}",
        markup=False,
        highlight=False,
    )
    step = est.energy[DENSE_HW]
    console.print(
        f"duration per step: {si(step.duration_s, 's')} ({step.duration_source})",
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
            si(f["flops_per_sample"], "FLOP"),
            si(f["bytes_per_sample"], "B"),
            si(f["energy_j_per_sample"], "J"),
            _MEANING[name],
        )
    nz = d["accountings"][NONZERO_PARAMS]
    acc.add_row(NONZERO_PARAMS, "", "", f"{nz['nonzero_params']:,}", _MEANING[NONZERO_PARAMS])
    console.print(acc)
    ops = sorted(d["flops_by_op_per_sample"].items(), key=lambda kv: -kv[1])
    console.print(
        "FLOPs per sample by operator: "
        + ", ".join(f"{op.removeprefix('aten.')} {si(flops, 'FLOP')}" for op, flops in ops),
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
    from harness.estimate.model import estimate_model

    net, example, notes = prepare_model(model, variant, batch_size, _parse_params(param))
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
    report = {"model": model, "variant": variant, **est.to_dict()}
    report["notes"] = [*notes, *report["notes"]]
    if as_json:
        print(json.dumps(report))
        return
    _print_estimate(est, f"{model} [{variant}]", report["notes"])


# -- calibrate ------------------------------------------------------------------------------


def _energy_label(sources: set[str]) -> str:
    """How the fitted energy was obtained, in words (modelled energy said loudly)."""
    parts = {part for s in sources for part in s.split("+")}
    if parts == {"counter"}:
        return "measured by hardware counters"
    if parts == {"model"}:
        return "MODELLED by a probe, not measured by hardware counters"
    if "model" in parts:
        return "partly measured by counters, partly MODELLED by a probe"
    return "of source " + ", ".join(sorted(sources))


def _default_out(name: str) -> Path:
    return Path("results") / "calibration" / f"{name}.toml"


def _fit_table(fit, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("coefficient", "value", "std. error"):
        table.add_column(column, justify="left" if column == "coefficient" else "right")
    for f in fit.features:
        value = fit.coefficients[f.column]
        shown = si(value, "W") if f.part == "static" else f"{value * 1e12:.4g} pJ/{f.unit}"
        spread = fit.stderr_pct(f.column)
        table.add_row(
            f"{f.part}: {f.key} ({f.column})", shown, "" if spread is None else f"{spread:.1f} %"
        )
    return table


def _coefficients_json(fit) -> dict[str, dict[str, object]]:
    out = {}
    for f in fit.features:
        value = fit.coefficients[f.column]
        out[f.column] = {
            "part": f.part,
            "key": f.key,
            "value": value * (1 if f.part == "static" else 1e12),
            "unit": "W" if f.part == "static" else f"pJ/{f.unit}",
            "stderr_pct": finite_or_none(fit.stderr_pct(f.column)),
        }
    return out


def _calibrate_from(
    run_dir: Path,
    out: Path | None,
    target: str,
    flops_dtype: str,
    memory_level: str,
    as_json: bool,
) -> None:
    import pandas as pd

    from harness.estimate.calibrate import fit_cases, fit_to_profile, leave_one_out

    path = run_dir / "cases.csv"
    if not path.is_file():
        raise EnergyHarnessError(
            f"no cases.csv in {run_dir}; give the directory of a finished suite run "
            "(cases.csv needs duration_s, energy_j and count columns flops, bytes, comm_bytes)"
        )
    try:
        cases = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise EnergyHarnessError(f"cannot read {path}: {exc}") from exc
    if "case" not in cases and "case_id" in cases:  # a suite run names its cases case_id
        cases["case"] = cases["case_id"]
    energy = pd.to_numeric(cases["energy_j"], errors="coerce") if "energy_j" in cases else None
    dropped: list[str] = []
    if energy is not None:
        bad = energy.isna() | (energy <= 0)
        names = cases["case"] if "case" in cases else cases.index
        dropped = [str(c) for c in names[bad]]
        cases = cases[~bad].reset_index(drop=True)
    fit = fit_cases(cases, flops_dtype=flops_dtype, memory_level=memory_level)
    loo = leave_one_out(cases, flops_dtype=flops_dtype, memory_level=memory_level)
    loo["fitted_energy_j"] = fit.rows["fitted_energy_j"].to_numpy()
    if "estimated_energy_j" in cases.columns:
        est = pd.to_numeric(cases["estimated_energy_j"], errors="coerce").to_numpy()
        loo["prior_estimate_error_pct"] = 100.0 * (est - loo["energy_j"]) / loo["energy_j"]
    sources = set(cases["energy_source"].astype(str)) if "energy_source" in cases else set()
    written = None
    if out is not None:
        provenance = (
            f"{len(cases)} cases of the suite run {run_dir} (energy "
            f"{_energy_label(sources) if sources else 'of unrecorded source'}), fitted "
            f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}"
        )
        profile = fit_to_profile(
            fit,
            name=out.stem,
            description=f"fitted to the suite run {run_dir.name}",
            target=target,
            host_to_device_inputs=target == "gpu",
            provenance=provenance,
            extra_fit={"loo_error_pct": [float(x) for x in loo["loo_error_pct"]]},
        )
        written = write_profile(
            profile, out, header=f"Written by energy-harness calibrate --from {run_dir}"
        )
    median_abs = float(loo["loo_error_pct"].abs().median())
    if as_json:
        print(
            json.dumps(
                {
                    "kind": "calibration",
                    "from": str(run_dir),
                    "energy_source": sorted(sources),
                    "coefficients": _coefficients_json(fit),
                    "rms_residual_pct": fit.rms_residual_pct,
                    "median_abs_loo_error_pct": median_abs,
                    "undetermined": list(fit.undetermined),
                    "dropped_cases": dropped,
                    "cases": loo.to_dict(orient="records"),
                    "profile_path": str(written) if written else None,
                }
            )
        )
        return
    console.print(_fit_table(fit, f"fit on {len(cases)} cases of {run_dir}"))
    table = Table(
        title="leave-one-out: each case predicted by a fit on the others", title_justify="left"
    )
    columns = ["case", "measured", "fitted", "LOO predicted", "LOO error"]
    if "prior_estimate_error_pct" in loo:
        columns.append("prior estimate error")
    for column in columns:
        table.add_column(column, justify="left" if column == "case" else "right")
    for row in loo.to_dict(orient="records"):
        cells = [
            str(row["case"]),
            si(row["energy_j"], "J"),
            si(row["fitted_energy_j"], "J"),
            si(row["loo_predicted_energy_j"], "J"),
            f"{row['loo_error_pct']:+.1f} %",
        ]
        if "prior_estimate_error_pct" in row:
            cells.append(f"{row['prior_estimate_error_pct']:+.1f} %")
        table.add_row(*cells)
    console.print(table)
    console.print(
        f"median |LOO error| {median_abs:.1f} %, "
        f"in-sample RMS residual {fit.rms_residual_pct:.1f} %",
        markup=False,
        highlight=False,
    )
    if dropped:
        console.print(f"dropped cases without a valid energy_j: {', '.join(dropped)}", markup=False)
    if sources and sources != {"counter"}:
        console.print(f"note: energy in this run is {_energy_label(sources)}", markup=False)
    if written:
        console.print(f"wrote profile {written}", markup=False, highlight=False)


def _calibrate_machine(
    probe: list[str] | None,
    powercap_root: Path | None,
    out: Path | None,
    device_name: str | None,
    seconds: float,
    idle_s: float,
    rounds: int,
    name: str | None,
    small: bool,
    as_json: bool,
) -> None:
    import torch

    from harness.estimate.calibrate import fit_cases, fit_to_profile
    from harness.estimate.microbench import (
        achieved_rates,
        plan_microbenchmarks,
        run_microbenchmarks,
    )
    from harness.meter import EnergyMeter
    from harness.probes_loader import load_probes

    if device_name is None:
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EnergyHarnessError("--device cuda: no CUDA device is available; use --device cpu")
    host = socket.gethostname()
    name = name or f"calibrated-{host}-{device.type}"
    out = out or _default_out(name)
    probes = load_probes(probe, probe_options(powercap_root))
    benches = plan_microbenchmarks(device, small=small)

    def progress(row: dict[str, object]) -> None:
        if not as_json:
            err_console.print(
                f"  {row['case']}: {row['duration_s']:.2f} s, {row['energy_j']:.3f} J "
                f"({row['energy_source']})",
                markup=False,
                highlight=False,
            )

    if not as_json:
        err_console.print(
            f"calibrating on {device} with probes {', '.join(p.name for p in probes)}: "
            f"idle + {len(benches)} microbenchmarks x {rounds} rounds",
            markup=False,
        )
    meter = EnergyMeter(probes)
    with meter:
        table = run_microbenchmarks(
            meter, device, benches, seconds=seconds, idle_s=idle_s, rounds=rounds, on_row=progress
        )
    bad = table["energy_j"].isna() | (table["energy_j"] <= 0)
    if bad.all():
        raise EnergyHarnessError(
            "no microbenchmark window got a valid energy reading; check `energy-harness probes`"
        )
    dropped = list(table.loc[bad, "case"])
    table = table[~bad].reset_index(drop=True)
    sources = set(table["energy_source"].astype(str))
    label = _energy_label(sources)
    level = "dram" if device.type == "cpu" else "device-memory"
    fit = fit_cases(table, memory_level=level)
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    device_text = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    provenance = (
        f"{len(table)} microbenchmark windows on {host} ({device_text}) at {when}, "
        f"probes {', '.join(p.name for p in probes)}, energy {label}"
    )
    profile = fit_to_profile(
        fit,
        name=name,
        description=f"calibrated on {host} ({device_text})",
        target="gpu" if device.type == "cuda" else "cpu",
        host_to_device_inputs=device.type == "cuda",
        provenance=provenance,
        rates=achieved_rates(table),
        extra_fit={"energy_source": sorted(sources), "dropped_windows": dropped},
    )
    written = write_profile(profile, out, header=f"Written by energy-harness calibrate on {host}")
    if as_json:
        print(
            json.dumps(
                {
                    "kind": "calibration",
                    "device": str(device),
                    "energy_source": sorted(sources),
                    "energy_label": label,
                    "coefficients": _coefficients_json(fit),
                    "rms_residual_pct": fit.rms_residual_pct,
                    "undetermined": list(fit.undetermined),
                    "rows": [
                        {k: finite_or_none(v) if isinstance(v, float) else v for k, v in r.items()}
                        for r in fit.rows.to_dict(orient="records")
                    ],
                    "dropped_windows": dropped,
                    "profile_path": str(written),
                }
            )
        )
        return
    console.print(_fit_table(fit, f"calibration fit ({label})"))
    console.print(
        f"RMS residual {fit.rms_residual_pct:.1f} % over {len(table)} windows", markup=False
    )
    if dropped:
        console.print(f"dropped windows without valid energy: {', '.join(dropped)}", markup=False)
    if sources != {"counter"}:
        console.print(
            f"warning: the energy fitted is {label}; the profile says so in every source",
            markup=False,
            highlight=False,
        )
    console.print(f"wrote profile {written} (use it with --profile {written})", markup=False)


@user_errors
def calibrate_command(
    probe: ProbeNames = None,
    powercap_root: PowercapRoot = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Profile file to write (default results/calibration/NAME.toml)."
        ),
    ] = None,
    from_dir: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Refit on a finished suite run (RUN_DIR/cases.csv) and report leave-one-out "
            "error per case, instead of running microbenchmarks.",
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu or cuda (default: cuda when available).")
    ] = None,
    seconds: Annotated[float, typer.Option(help="Length of each benchmark window (s).")] = 2.0,
    idle_s: Annotated[float, typer.Option("--idle-s", help="Length of the idle window (s).")] = 2.0,
    rounds: Annotated[int, typer.Option(help="Times each benchmark is measured.")] = 2,
    name: Annotated[str | None, typer.Option(help="Name of the written profile.")] = None,
    small: Annotated[
        bool, typer.Option("--small", help="Small benchmark sizes (a quick smoke run).")
    ] = False,
    target: Annotated[
        str, typer.Option(help="--from: target kind of the written profile (cpu, gpu, soc).")
    ] = "cpu",
    flops_dtype: Annotated[
        str, typer.Option("--flops-dtype", help="--from: dtype of a plain `flops` column.")
    ] = "fp32",
    memory_level: Annotated[
        str, typer.Option("--memory-level", help="--from: memory level of the `bytes` column.")
    ] = "dram",
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")] = False,
) -> None:
    """Fit a machine profile: microbenchmarks measured with the probes, or a finished run."""
    if from_dir is not None:
        _calibrate_from(from_dir, out, target, flops_dtype, memory_level, as_json)
    else:
        _calibrate_machine(
            probe, powercap_root, out, device, seconds, idle_s, rounds, name, small, as_json
        )


def register(app: typer.Typer) -> None:
    """Add `estimate` and `calibrate` to the CLI."""
    app.command("estimate")(estimate_command)
    app.command("calibrate")(calibrate_command)
