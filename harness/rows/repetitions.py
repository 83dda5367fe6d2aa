"""Repetitions of each case, read back from measurements.csv (for the report and compare).

Energy per sample of one repetition = the sum of `energy_j` over the `in_total` rows of
`measurements.csv` for that case and repetition, divided by the samples it processed.
`samples` is taken once per (node, rank) and summed over ranks, so a distributed
repetition divides the energy of every rank by the samples of every rank. A repetition
with any `in_total` row that is invalid (`valid` false) or has no energy or no samples is
unusable: it is left out and counted. A repetition marked `disturbed` (kept in the file
with its reason, `harness.rows.disturbed`) is left out too, and its reason kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import EnergyHarnessError
from harness.rows.csvfile import parse_bool, parse_float, read_rows
from harness.rows.measurements import RepetitionTotal

DomainKey = tuple[str, str, str]  # (probe, domain, source)


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


def _samples(total_rows: list[dict[str, str]]) -> float:
    """Samples of one repetition: once per (node, rank), summed over ranks."""
    samples_by_rank: dict[tuple[str, str], float] = {}
    for r in total_rows:
        rank = (r.get("node") or "", r.get("rank") or "")
        samples = parse_float(r.get("samples"))
        if math.isfinite(samples):
            samples_by_rank[rank] = max(samples_by_rank.get(rank, 0.0), samples)
    return sum(samples_by_rank.values())


def _whole(value: float) -> int:
    return int(value) if math.isfinite(value) else 0


def _total(
    total_rows: list[dict[str, str]], energies: list[float], samples: float
) -> RepetitionTotal:
    """One usable repetition's RepetitionTotal, from its in-total rows."""

    def column_sum(name: str) -> float:
        return sum(parse_float(r.get(name)) for r in total_rows)

    busy = [parse_float(r.get("other_cpu_pct")) for r in total_rows]
    busy = [b for b in busy if math.isfinite(b)]
    return RepetitionTotal(
        energy_j=sum(energies),
        dynamic_energy_j=column_sum("dynamic_energy_j"),
        samples=int(samples),
        iterations=_whole(max(parse_float(r.get("iterations")) for r in total_rows)),
        duration_s=max(parse_float(r.get("duration_s")) for r in total_rows),
        sources=frozenset(r.get("source") or "" for r in total_rows),
        idle_power_w=column_sum("idle_power_w"),
        other_cpu_pct=max(busy, default=None),
    )


def _add_repetition(
    case: CaseRepetitions, label: str, rows: list[dict[str, str]], use_disturbed: bool = False
) -> None:
    """One repetition's rows into `case`: usable, disturbed (left out unless
    `use_disturbed`) or unusable."""
    total_rows = [r for r in rows if parse_bool(r.get("in_total"), False)]
    samples_total = _samples(total_rows)
    energies = [parse_float(r.get("energy_j")) for r in total_rows]
    usable = (
        bool(total_rows)
        and all(parse_bool(r.get("valid"), True) for r in total_rows)
        and all(math.isfinite(e) for e in energies)
        and samples_total > 0
    )
    if not usable:
        case.unusable.append(label)
        return
    reason = next(
        (r.get("disturbed_reason") for r in rows if parse_bool(r.get("disturbed"), False)), None
    )
    if reason is not None:
        case.disturbed[label] = reason or "disturbed"
        if not use_disturbed:
            return
    domains: dict[DomainKey, float] = {}
    for r, energy_j in zip(total_rows, energies, strict=True):
        key = (r.get("probe") or "", r.get("domain") or "", r.get("source") or "")
        domains[key] = domains.get(key, 0.0) + energy_j / samples_total
    case.sources.update(r.get("source") or "" for r in total_rows)
    case.repetitions.append(label)
    case.energy_j_per_sample.append(sum(energies) / samples_total)
    case.domain_energy_j_per_sample.append(domains)
    case.rounds.append(rows[0].get("round") or "")
    case.processes.append(rows[0].get("process") or "")
    case.totals.append(_total(total_rows, energies, samples_total))


def case_repetitions(measurement_rows: list[dict[str, str]]) -> dict[str, CaseRepetitions]:
    """Group measurements.csv rows into per-case, per-repetition energy per sample (J)."""
    grouped: dict[str, dict[str, list[dict[str, str]]]] = {}
    for row in measurement_rows:
        case_id = row.get("case_id") or ""
        grouped.setdefault(case_id, {}).setdefault(row.get("repetition") or "", []).append(row)
    result: dict[str, CaseRepetitions] = {}
    for case_id, reps in grouped.items():
        case = CaseRepetitions(case_id)
        for label in sorted(reps, key=_repetition_sort_key):
            _add_repetition(case, label, reps[label])
        if not case.repetitions and case.disturbed:
            case = CaseRepetitions(case_id, all_disturbed=True)
            for label in sorted(reps, key=_repetition_sort_key):
                _add_repetition(case, label, reps[label], use_disturbed=True)
        result[case_id] = case
    return result


def load_run_repetitions(run_dir: Path) -> tuple[dict[str, CaseRepetitions], set[str]]:
    """Per-case repetitions from a run's measurements.csv, and every case_id the run names.

    Raises EnergyHarnessError when the directory or its measurements.csv is missing.
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
    reps = case_repetitions(read_rows(measurements))
    case_ids = set(reps) | {r.get("case_id") or "" for r in read_rows(run_dir / "cases.csv")}
    case_ids.discard("")
    reps.pop("", None)
    return reps, case_ids
