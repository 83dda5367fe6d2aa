"""The run summary in the terminal: one table per group of cases, readable at 80 columns.

A group is the cases that share model, dataset, mode, batch size, device and precision
(`harness.rows.vs_dense`): its table lists the variants only, each with its accuracy,
energy per sample with the 95 % interval, the change vs dense and the estimate's error.
Reasons (skipped, failed) are printed whole below the tables, never cut.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from harness.estimate.error import ESTIMATE_ERROR_DEFINITION
from harness.estimate.names import DENSE_HW
from harness.measure.sources import combine_sources, source_label
from harness.report.environment import load_environment
from harness.report.format import (
    MISSING,
    co2_line,
    fmt_break_even,
    fmt_change,
    fmt_interval,
    fmt_preparation,
    fmt_si,
    short_variant,
)
from harness.report.headline import group_title, headline_items
from harness.rows.break_even import BreakEven, run_break_evens
from harness.rows.carbon import CarbonSettings
from harness.rows.case_energy import case_energies
from harness.rows.columns import (
    STATUS_FAILED,
    STATUS_OK,
    STATUS_SKIPPED,
    estimate_prefix,
    finished,
)
from harness.rows.csvfile import parse_float, read_rows
from harness.rows.headline import run_headline
from harness.rows.preparation import preparation_of
from harness.rows.repetitions import load_run_repetitions
from harness.rows.stability import stability_warning
from harness.rows.vs_dense import VsDense, vs_dense_all
from harness.spec.case import GroupKey, group_key

ACCOUNT_LEGEND = (
    "the whole account: what making each model cost (its own step: training for dense; "
    "pruning or quantising and fine-tuning for a variant, made from the trained dense "
    "model), and for inference variants the break-even: the inferences after which the "
    "energy saved per inference vs dense repays that step, with its 95 % interval"
)
THREE_METHODS_LEGEND = (
    "three ways to know each case's energy per sample: measured on this machine (MODELLED "
    "where it has no counter), ESTIMATED (the analytic model, dense-hw) and SIMULATED "
    "(SCALE-Sim cycles and accesses x cited energies on the accelerator named, one "
    "sample); the distances by the estimate error's definition"
)
STATUS_STYLE = {STATUS_OK: "", STATUS_SKIPPED: "dim", STATUS_FAILED: "bold red"}


@dataclass(frozen=True)
class RunCases:
    """A run's cases.csv rows by group (in order), and each variant against dense."""

    groups: dict[GroupKey, list[dict[str, str]]]
    vs_dense: Mapping[str, VsDense]
    break_evens: Mapping[str, BreakEven] = field(default_factory=dict)


def run_cases(run_dir: Path) -> RunCases:
    """The cases of a run directory, grouped, with their comparisons with dense."""
    rows = read_rows(Path(run_dir) / "cases.csv")
    reps, _ = (
        load_run_repetitions(run_dir)
        if (Path(run_dir) / "measurements.csv").exists()
        else ({}, set())
    )
    groups: dict[GroupKey, list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault(group_key(row), []).append(row)
    energies = case_energies(rows, reps)
    vs = vs_dense_all(energies)
    return RunCases(groups, vs, run_break_evens(rows, energies, vs))


def _energy_header(rows: list[dict[str, str]]) -> tuple[str, bool]:
    """The energy column's header, with the source when all rows share it; and whether
    each cell must say its own source instead."""
    sources = {r.get("measured_source") or "" for r in rows if finished(r)}
    if len(sources) == 1:
        return f"energy/sample\n[95% CI]\n{source_label(sources.pop())}", False
    return "energy/sample\n[95% CI]", True


def _error_cell(row: Mapping[str, str]) -> str:
    error = parse_float(row.get("estimate_error_pct"))
    return f"{error:+.1f}" if math.isfinite(error) else MISSING


def compact_table(title: str, caption: str | None = None) -> Table:
    """The terminal's table style: a rule under the heading, no borders, one space
    between columns, so that tables fit 80 columns."""
    return Table(
        title=title,
        title_justify="left",
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )


class GroupTable:
    """One group's table, laid out for the width it is printed at: each variant on one
    line where the terminal is wide enough, else wrapped at its spaces (its longest word
    kept whole) so that the figures beside it are never cut."""

    def __init__(
        self, group: GroupKey, rows: list[dict[str, str]], vs: Mapping[str, VsDense]
    ) -> None:
        self.group, self.rows, self.vs = group, rows, vs

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        table = self.table(wrap_variants=False)
        unbounded = options.update(max_width=10_000)  # its natural width, not the clamped
        if Measurement.get(console, unbounded, table).maximum > options.max_width:
            table = self.table(wrap_variants=True)
        yield table

    def table(self, wrap_variants: bool) -> Table:
        """The table, its variant column as narrow as its longest word when wrapped."""
        rows = self.rows
        header, per_cell_source = _energy_header(rows)
        table = compact_table(group_title(self.group))
        words = [w for r in rows for w in short_variant(r.get("variant") or "").split()]
        longest = min(24, max(map(len, words), default=7))
        narrow = longest if wrap_variants else None
        table.add_column("variant", overflow="fold", min_width=longest, max_width=narrow)
        table.add_column("acc %\n(vs dense)", justify="right", no_wrap=True)
        table.add_column(header, no_wrap=True)
        table.add_column("energy vs dense\n[95% CI]")  # a long mark wraps to its own line
        table.add_column("est.\nerr %", justify="right", no_wrap=True)
        like = max((parse_float(r.get("energy_j_per_sample_mean")) for r in rows), default=math.nan)
        for row in rows:
            table.add_row(*self._cells(row, like, per_cell_source))
        return table

    def _cells(self, row: Mapping[str, str], like: float, per_cell_source: bool) -> list[Any]:
        variant = Text(short_variant(row.get("variant") or ""))
        status = (row.get("status") or "").strip().lower()
        if not finished(row):
            style = STATUS_STYLE.get(status, "bold red")
            return [variant, "", Text(f"{status or 'no status'} (below)", style)]
        energy = fmt_interval(
            parse_float(row.get("energy_j_per_sample_mean")),
            parse_float(row.get("energy_j_per_sample_ci95_low")),
            parse_float(row.get("energy_j_per_sample_ci95_high")),
            "J",
            like=like if math.isfinite(like) else None,
        )
        if per_cell_source:
            energy += f" {source_label(row.get('measured_source') or '?')}"
        v = self.vs.get(row.get("case_id") or "")
        return [variant, _accuracy_cell(row, v), energy, _vs_cell(v, row), _error_cell(row)]


def group_table(
    group: GroupKey, rows: list[dict[str, str]], vs: Mapping[str, VsDense]
) -> GroupTable:
    """One group's table: a row per variant (laid out when printed)."""
    return GroupTable(group, rows, vs)


def _accuracy_cell(row: Mapping[str, str], v: VsDense | None) -> str:
    """`97.78 (+0.83~)`: test accuracy in %, and its change vs dense in points (`~`:
    within noise by McNemar's test)."""
    accuracy = parse_float(row.get("accuracy"))
    if not math.isfinite(accuracy):
        return MISSING
    if v is None or v.is_control:
        return f"{accuracy * 100:.2f}"
    mark = "~" if v.accuracy_beyond_noise is False else ""
    return f"{accuracy * 100:.2f} ({v.accuracy_pp:+.2f}{mark})"


def _vs_cell(v: VsDense | None, row: Mapping[str, str]) -> str:
    if v is None:
        return "reference" if row.get("variant") == "dense" else "no dense case"
    mark = v.mark
    return fmt_change(v.energy_ratio, v.ratio_ci95_low, v.ratio_ci95_high) + (
        f" {mark}" if mark else ""
    )


def reason_lines(cases: RunCases) -> list[str]:
    """`skipped: lenet5/int8-dynamic/training/bs64/cpu: <the whole reason>`, one per case
    that did not finish."""
    return [
        f"{row.get('status') or 'no status'}: {row.get('case_id', '?')}: "
        f"{row.get('error') or '(no reason)'}"
        for rows in cases.groups.values()
        for row in rows
        if not finished(row)
    ]


def peer_lines(cases: RunCases) -> list[str]:
    """`codecarbon (peer tool) for lenet5/dense/...: 571 µJ per sample (ours 569 µJ, MODELLED)`:
    the figure `--peer codecarbon` recorded beside each case's own."""
    lines = []
    for rows in cases.groups.values():
        for row in rows:
            peer = parse_float(row.get("peer_energy_j_per_sample"))
            if not math.isfinite(peer):
                continue
            ours = parse_float(row.get("energy_j_per_sample_mean"))
            lines.append(
                f"codecarbon (peer tool) for {row.get('case_id', '?')}: {fmt_si(peer, 'J')} per "
                f"sample (ours {fmt_si(ours, 'J')}, "
                f"{source_label(row.get('measured_source') or '')})"
            )
    return lines


def carbon_line(run_dir: Path, cases: RunCases) -> str | None:
    """`CO2 of the measured windows: 1.23 mg (9.31 J MODELLED) at world average 475 g/kWh,
    assumed (...), PUE 1`: the run's CO2 with the intensity used and where it came from
    (environment.json); None without a carbon record."""
    env, _ = load_environment(Path(run_dir) / "environment.json")
    record = (env or {}).get("carbon")
    if not isinstance(record, dict):
        return None
    try:
        carbon = CarbonSettings(**record)
    except TypeError:
        return None
    ok = [r for rows in cases.groups.values() for r in rows if finished(r)]
    energy_j = sum(
        parse_float(r.get("energy_j")) * (parse_float(r.get("n")) or 0.0)
        for r in ok
        if math.isfinite(parse_float(r.get("energy_j")))
    )
    source = source_label(combine_sources(r.get("measured_source") or "" for r in ok))
    return (
        f"CO2 of the measured windows: {co2_line(energy_j, carbon).removeprefix('CO2 ')} "
        f"(from {fmt_si(energy_j, 'J')} {source})"
    )


def legend_line(cases: RunCases) -> str:
    """What the columns mean, once."""
    sources = combine_sources(
        r.get("measured_source") or "" for rows in cases.groups.values() for r in rows
    )
    return (
        "acc vs dense: test accuracy change in percentage points (~ = within noise, "
        "McNemar's test), against dense as trained: fine-tuned variants had more epochs; "
        "energy vs dense: change of the energy per sample, paired round by round, with its "
        "95 % interval (~ = within noise: the interval includes 0 %; ~Holm = the interval "
        "excludes 0 % but the test does not once adjusted for the group's comparisons; "
        "~A/A = no larger than the A/A control's, dense measured again; not judged: why "
        f"below; A/A: that control); energy is {source_label(sources)}; est. err %: see below"
    )


def not_judged_lines(cases: RunCases) -> list[str]:
    """`not judged: CASE: why; what to do`, one per comparison that is not judged, and a
    warning where an A/A control differs from dense beyond its interval."""
    lines = []
    for case_id, v in cases.vs_dense.items():
        if v.not_judged:
            lines.append(f"not judged: {case_id}: {v.not_judged}")
        elif v.control_differs:
            change = fmt_change(v.energy_ratio, v.ratio_ci95_low, v.ratio_ci95_high)
            lines.append(
                f"warning: {case_id}: dense measured twice differs by {change}, beyond "
                f"noise (Holm: p = {v.p_holm:.2g}): something other than the model (the "
                "machine, the order) moves the figures; the verdicts of this group are "
                "doubtful: run again on a quieter machine"
            )
    return lines


def account_lines(cases: RunCases) -> list[str]:
    """`CASE: made in 3.1 J measured, this run (with dense's training: 45 J ...); break-even
    vs dense after 60 k inferences [50 k, 75 k]`: one per finished case but the A/A
    control, what making its model cost and (inference variants) when it repays it."""
    lines = []
    for rows in cases.groups.values():
        for row in rows:
            v = cases.vs_dense.get(row.get("case_id") or "")
            if not finished(row) or (v is not None and v.is_control):
                continue
            prep = preparation_of(row)
            text = f"made in {fmt_preparation(prep)}"
            if prep.known and row.get("variant") != "dense":
                text += f" (with dense's training: {fmt_preparation(prep, total=True)})"
            be = cases.break_evens.get(row.get("case_id") or "")
            if be is not None:
                text += f"; break-even vs dense {fmt_break_even(be)}"
            lines.append(f"{row.get('case_id', '?')}: {text}")
    return lines


def three_methods_lines(cases: RunCases) -> list[str]:
    """`CASE: measured 200 µJ, ESTIMATED 102 µJ, SIMULATED 32 µJ on edge-systolic-64
    (sparse-ideal 20.6 µJ; vs measured -84.0 %; vs estimate -68.5 %)`: one per finished case
    of a run that simulates, or why the case was not simulated."""
    lines = []
    for rows in cases.groups.values():
        for row in rows:
            simulated = parse_float(row.get("simulated_energy_j_per_sample"))
            note = row.get("simulated_note") or ""
            v = cases.vs_dense.get(row.get("case_id") or "")
            if v is not None and v.is_control:
                continue
            if not finished(row) or not (math.isfinite(simulated) or note):
                continue
            measured = parse_float(row.get("energy_j_per_sample_mean"))
            source = source_label(row.get("measured_source") or "")
            estimated = parse_float(row.get(estimate_prefix(DENSE_HW) + "energy_j_per_sample"))
            text = f"{source} {fmt_si(measured, 'J')}, ESTIMATED {fmt_si(estimated, 'J')}"
            if math.isfinite(simulated):
                sparse = parse_float(row.get("simulated_sparse_ideal_energy_j_per_sample"))
                parts = [f"sparse-ideal {fmt_si(sparse, 'J')}"]
                for name, column in ((source, "error"), ("estimate", "vs_estimate")):
                    pct = parse_float(row.get(f"simulated_{column}_pct"))
                    parts += [f"vs {name} {pct:+.1f} %"] if math.isfinite(pct) else []
                text += (
                    f", SIMULATED {fmt_si(simulated, 'J')} on "
                    f"{row.get('simulated_accelerator') or '?'} ({'; '.join(parts)})"
                )
            else:
                text += f", {note}"
            lines.append(f"{row.get('case_id', '?')}: {text}")
    return lines


def stability_warnings(run_dir: Path) -> list[str]:
    """One line per unstable case of the run: what was wrong and what to do."""
    warnings = (stability_warning(row) for row in read_rows(Path(run_dir) / "cases.csv"))
    return [f"warning: {w}" for w in warnings if w]


def print_run_summary(run_dir: Path, console: Console) -> None:
    """The tables, what they mean, why cases did not finish, a warning for each case whose
    figure is not stable, and the headline last. Lines wrap at spaces, never in a word."""

    def line(text: str, indent: int = 0) -> None:
        console.print(Padding(Text(text), (0, 0, 0, indent)), highlight=False)

    cases = run_cases(run_dir)
    console.print(f"summary of {run_dir}", markup=False, highlight=False, soft_wrap=True)
    for group, rows in cases.groups.items():
        console.print()
        console.print(group_table(group, rows, cases.vs_dense))
    console.print()
    line(legend_line(cases))
    co2 = carbon_line(run_dir, cases)
    if co2 is not None:
        line(co2)
    line("est. err %: " + ESTIMATE_ERROR_DEFINITION)
    account = account_lines(cases)
    if account:
        line(ACCOUNT_LEGEND)
        for text in account:
            line(text, 2)
    three = three_methods_lines(cases)
    if three:
        line(THREE_METHODS_LEGEND)
        for text in three:
            line(text, 2)
    lines = peer_lines(cases) + reason_lines(cases) + not_judged_lines(cases)
    for text in lines + stability_warnings(run_dir):
        line(text)
    console.print()
    line("headline (vs dense: against the dense model of the same group)")
    for title, text in headline_items(run_headline(run_dir)):
        line(f"{title}:", 2)
        line(text, 4)
