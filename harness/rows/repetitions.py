"""Repetitions of each case, read back from measurements.csv (for the report and compare).

Energy per sample of one repetition = the sum of `energy_j` over the `in_total` rows of
`measurements.csv` for that case and repetition, divided by the samples it processed.
`samples` is taken once per (node, rank) and summed over ranks, so a distributed
repetition divides the energy of every rank by the samples of every rank. A repetition
with any `in_total` row that is invalid (`valid` false) or has no energy or no samples is
unusable: it is left out and counted. A repetition marked `disturbed` (kept in the file
with its reason, `harness.rows.disturbed`) is left out too, and its reason kept.

The file is read once, a line at a time, keeping only `REPETITION_COLUMNS`: each row
adds to its window (`_Window`: a few numbers per in-total row, no strings but shared
ones), so what a reader holds grows with the windows measured, not with the file's
bytes; the windows of a case become its `CaseRepetitions` and are dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from harness.errors import EnergyHarnessError
from harness.rows.columns import CASE_ID_COLUMNS
from harness.rows.csvfile import iter_rows, parse_bool, parse_float
from harness.rows.measurements import RepetitionTotal

DomainKey = tuple[str, str, str]  # (probe, domain, source)
NAME_COLUMNS = (*CASE_ID_COLUMNS, "precision")  # what names a case in measurements.csv
REPETITION_COLUMNS = (  # the measurements.csv columns the repetitions are read from
    *NAME_COLUMNS,
    *("repetition", "node", "rank", "probe", "domain", "source", "in_total", "valid"),
    *("samples", "energy_j", "dynamic_energy_j", "idle_power_w", "iterations", "duration_s"),
    *("other_cpu_pct", "round", "process", "disturbed", "disturbed_reason"),
)


@dataclass
class CaseRepetitions:
    """The usable repetitions of one case, read from measurements.csv.

    `energy_j_per_sample`: total (in_total) energy per sample of each usable repetition, J.
    `domain_energy_j_per_sample`: per usable repetition, (probe, domain, source) -> J/sample.
    `rounds`, `processes`: the round and the worker process of each usable repetition
    ("" where the run had no rounds). `totals`: each usable repetition over all ranks.
    `unusable`: repetition labels left out (an invalid row, no energy or no samples).
    `disturbed`: label -> why, for repetitions kept but left out as disturbed
    (`harness.rows.disturbed`). When every window of a case was disturbed they are used
    after all (`all_disturbed`), so the case keeps a figure and is marked unstable by
    what disturbed it. `sources`: what the usable totals are made of.
    """

    case_id: str
    repetitions: list[str] = field(default_factory=list)
    energy_j_per_sample: list[float] = field(default_factory=list)
    domain_energy_j_per_sample: list[dict[DomainKey, float]] = field(default_factory=list)
    rounds: list[str] = field(default_factory=list)
    processes: list[str] = field(default_factory=list)
    totals: list[RepetitionTotal] = field(default_factory=list)
    unusable: list[str] = field(default_factory=list)
    disturbed: dict[str, str] = field(default_factory=dict)
    sources: set[str] = field(default_factory=set)
    all_disturbed: bool = False  # every window was disturbed: those are used, said so
    names: dict[str, str] = field(default_factory=dict)  # NAME_COLUMNS of its first row
    recorded_sources: set[str] = field(default_factory=set)  # of every in-total row
    run_ids: set[str] = field(default_factory=set)  # of every row

    @property
    def windows(self) -> int:
        """Repetitions measured: usable, disturbed and unusable alike."""
        return len(set(self.repetitions) | set(self.disturbed) | set(self.unusable))

    @property
    def by_round(self) -> dict[str, float]:
        """Round -> energy per sample (J) of the usable repetitions measured in rounds."""
        return {r: v for r, v in zip(self.rounds, self.energy_j_per_sample, strict=True) if r != ""}


def _repetition_sort_key(label: str) -> tuple[int, float, str]:
    number = parse_float(label)
    return (0, number, label) if math.isfinite(number) else (1, 0.0, label)


class _InTotal(NamedTuple):
    """What one in-total row adds to its window (numbers parsed once)."""

    rank: tuple[str, str]  # (node, rank)
    key: DomainKey
    valid: bool
    samples: float
    energy_j: float
    dynamic_energy_j: float
    idle_power_w: float
    iterations: float
    duration_s: float
    other_cpu_pct: float


@dataclass(slots=True)
class _Window:
    """One repetition as its rows are read: its first row's round and process, the first
    disturbed row's reason, and its in-total rows."""

    round: str
    process: str
    disturbed: bool = False
    reason: str | None = None
    in_total: list[_InTotal] = field(default_factory=list)


@dataclass(slots=True)
class _CaseRows:
    """One case as its rows are read: its windows by label, and what names it."""

    names: dict[str, str]
    windows: dict[str, _Window] = field(default_factory=dict)
    recorded_sources: set[str] = field(default_factory=set)
    run_ids: set[str] = field(default_factory=set)


_SOURCES: dict[frozenset[str], frozenset[str]] = {}  # one object per set of sources seen
_FLAGS = {"true": True, "false": False}  # as CsvAppender writes them; others: parse_bool


def _flag(text: str | None, default: bool) -> bool:
    found = _FLAGS.get(text)  # type: ignore[arg-type]
    return parse_bool(text, default) if found is None else found


def _add_row(case: _CaseRows, row: Mapping[str, str], shared: dict[Any, Any]) -> None:
    """One measurements.csv row into its case's window; equal keys and labels are shared."""
    get = row.get
    case.run_ids.add(get("run_id") or "")
    label = get("repetition") or ""
    window = case.windows.get(label)
    if window is None:
        round_, process = get("round") or "", get("process") or ""
        window = _Window(shared.setdefault(round_, round_), shared.setdefault(process, process))
        case.windows[shared.setdefault(label, label)] = window
    if not window.disturbed and _flag(get("disturbed"), False):
        window.disturbed, window.reason = True, get("disturbed_reason")
    if not _flag(get("in_total"), False):
        return
    key = (get("probe") or "", get("domain") or "", get("source") or "")
    rank = (get("node") or "", get("rank") or "")
    case.recorded_sources.add(key[2])
    window.in_total.append(
        _InTotal(  # in field order
            shared.setdefault(rank, rank),
            shared.setdefault(key, key),
            _flag(get("valid"), True),
            parse_float(get("samples")),
            parse_float(get("energy_j")),
            parse_float(get("dynamic_energy_j")),
            parse_float(get("idle_power_w")),
            parse_float(get("iterations")),
            parse_float(get("duration_s")),
            parse_float(get("other_cpu_pct")),
        )
    )


def _samples(total_rows: list[_InTotal]) -> float:
    """Samples of one repetition: once per (node, rank), summed over ranks."""
    samples_by_rank: dict[tuple[str, str], float] = {}
    for r in total_rows:
        if math.isfinite(r.samples):
            samples_by_rank[r.rank] = max(samples_by_rank.get(r.rank, 0.0), r.samples)
    return sum(samples_by_rank.values())


def _whole(value: float) -> int:
    return int(value) if math.isfinite(value) else 0


def _total(total_rows: list[_InTotal], energies: list[float], samples: float) -> RepetitionTotal:
    """One usable repetition's RepetitionTotal, from its in-total rows."""
    busy = [r.other_cpu_pct for r in total_rows if math.isfinite(r.other_cpu_pct)]
    sources = frozenset(r.key[2] for r in total_rows)
    return RepetitionTotal(
        energy_j=sum(energies),
        dynamic_energy_j=sum(r.dynamic_energy_j for r in total_rows),
        samples=int(samples),
        iterations=_whole(max(r.iterations for r in total_rows)),
        duration_s=max(r.duration_s for r in total_rows),
        sources=_SOURCES.setdefault(sources, sources),
        idle_power_w=sum(r.idle_power_w for r in total_rows),
        other_cpu_pct=max(busy, default=None),
    )


def _add_repetition(
    case: CaseRepetitions, label: str, window: _Window, use_disturbed: bool = False
) -> None:
    """One repetition into `case`: usable, disturbed (left out unless `use_disturbed`)
    or unusable."""
    total_rows = window.in_total
    samples_total = _samples(total_rows)
    energies = [r.energy_j for r in total_rows]
    usable = (
        bool(total_rows)
        and all(r.valid for r in total_rows)
        and all(math.isfinite(e) for e in energies)
        and samples_total > 0
    )
    if not usable:
        case.unusable.append(label)
        return
    if window.disturbed and window.reason is not None:
        case.disturbed[label] = window.reason or "disturbed"
        if not use_disturbed:
            return
    domains: dict[DomainKey, float] = {}
    for r in total_rows:
        domains[r.key] = domains.get(r.key, 0.0) + r.energy_j / samples_total
    case.sources.update(r.key[2] for r in total_rows)
    case.repetitions.append(label)
    case.energy_j_per_sample.append(sum(energies) / samples_total)
    case.domain_energy_j_per_sample.append(domains)
    case.rounds.append(window.round)
    case.processes.append(window.process)
    case.totals.append(_total(total_rows, energies, samples_total))


def _case(case_id: str, rows: _CaseRows) -> CaseRepetitions:
    """A case's CaseRepetitions from its windows (in repetition order)."""
    labels = sorted(rows.windows, key=_repetition_sort_key)
    found = {"names": rows.names, "recorded_sources": rows.recorded_sources}
    found["run_ids"] = rows.run_ids - {""}
    case = CaseRepetitions(case_id, **found)
    for label in labels:
        _add_repetition(case, label, rows.windows[label])
    if not case.repetitions and case.disturbed:
        case = CaseRepetitions(case_id, all_disturbed=True, **found)
        for label in labels:
            _add_repetition(case, label, rows.windows[label], use_disturbed=True)
    return case


def case_repetitions(measurement_rows: Iterable[Mapping[str, str]]) -> dict[str, CaseRepetitions]:
    """Group measurements.csv rows into per-case, per-repetition energy per sample (J).

    The rows are read once, in any order, and not kept (`_Window`); each needs only
    REPETITION_COLUMNS."""
    cases: dict[str, _CaseRows] = {}
    shared: dict[Any, Any] = {}
    for row in measurement_rows:
        case_id = row.get("case_id") or ""
        case = cases.get(case_id)
        if case is None:
            case = cases[case_id] = _CaseRows({name: row.get(name) or "" for name in NAME_COLUMNS})
        _add_row(case, row, shared)
    return {case_id: _case(case_id, cases.pop(case_id)) for case_id in list(cases)}


Loaded = tuple[dict[str, CaseRepetitions], set[str]]
_LOADED: dict[Path, tuple[tuple[Any, ...], Loaded]] = {}  # the last runs read, by folder
_LOADED_RUNS = 2  # compare reads two runs, and each of them more than once


def _file_identity(run_dir: Path) -> tuple[Any, ...]:
    """What changes when measurements.csv or cases.csv is written or replaced."""
    identity: list[Any] = []
    for name in ("measurements.csv", "cases.csv"):
        try:
            found = (run_dir / name).stat()
            identity.append((found.st_ino, found.st_size, found.st_mtime_ns))
        except OSError:
            identity.append(None)
    return tuple(identity)


def load_run_repetitions(run_dir: Path) -> Loaded:
    """Per-case repetitions from a run's measurements.csv, and every case_id the run names.

    A run read again while its files are unchanged is not read twice (the report, the
    summary and the headline of one command each need it); the repetitions are shared,
    so callers read them and never change them. Raises EnergyHarnessError when the
    directory or its measurements.csv is missing.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "a file" if run_dir.exists() else "it does not exist"
        raise EnergyHarnessError(
            f"{run_dir} is not a run directory ({what}); give a directory written by "
            "`energy-harness run` (e.g. results/<run-id>)"
        )
    measurements = run_dir / "measurements.csv"
    if not measurements.is_file():
        raise EnergyHarnessError(
            f"{measurements} is missing: {run_dir} is not a finished or started run "
            "directory (`energy-harness run` writes it)"
        )
    key, identity = run_dir.resolve(), _file_identity(run_dir)
    if key in _LOADED and _LOADED[key][0] == identity:
        reps, case_ids = _LOADED[key][1]
        return dict(reps), set(case_ids)
    reps = case_repetitions(iter_rows(measurements, REPETITION_COLUMNS))
    named = iter_rows(run_dir / "cases.csv", ["case_id"])
    case_ids = set(reps) | {r.get("case_id") or "" for r in named}
    case_ids.discard("")
    reps.pop("", None)
    _LOADED.pop(key, None)
    while len(_LOADED) >= _LOADED_RUNS:
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[key] = (identity, (reps, case_ids))
    return dict(reps), set(case_ids)
