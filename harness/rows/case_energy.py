"""A finished case as the comparisons with dense need it, read from a run's rows.

`CaseEnergy` is the energy per sample of each usable window of a case (with the round it
came from), its accuracy and what the energy is made of; `case_energies` reads them from
cases.csv and measurements.csv rows; `dense_cases` finds each group's reference. The
comparisons themselves are `harness.rows.vs_dense`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.measure.sources import combine_sources
from harness.rows.columns import finished
from harness.rows.csvfile import iter_rows, parse_float, read_rows
from harness.rows.repetitions import REPETITION_COLUMNS, CaseRepetitions, case_repetitions
from harness.rows.stability import unstable_reason_of
from harness.rows.stats import Summary, summarize
from harness.spec.case import GROUP_FIELDS, GroupKey, group_key
from harness.spec.variants import CONTROL_LABEL, DENSE


def group_fields(group: GroupKey) -> dict[str, str]:
    """A group key as GROUP_FIELDS -> value."""
    return dict(zip(GROUP_FIELDS, group, strict=True))


@dataclass(frozen=True)
class CaseEnergy:
    """A finished case as the comparisons need it.

    `values_j_per_sample`: energy per sample of each usable repetition (J); `rounds`:
    the round of each ("" without rounds; empty for none). `windows`: repetitions
    measured in all, `disturbed`: how many were left out as disturbed. `accuracy`: a
    fraction (NaN when unknown); `accuracy_p`: McNemar's p against dense (NaN unknown).
    `source`: what the energy is made of (`counter`, `model`, `counter+model`).
    `unstable_reason`: why cases.csv marks it unstable ("" if stable).
    """

    case_id: str
    group: GroupKey
    variant: str
    values_j_per_sample: tuple[float, ...]
    accuracy: float
    source: str
    unstable_reason: str = ""
    rounds: tuple[str, ...] = ()
    windows: int = 0
    disturbed: int = 0
    accuracy_p: float = math.nan
    accuracy_reference: str = ""

    @property
    def is_dense(self) -> bool:
        return self.variant == DENSE

    @property
    def is_control(self) -> bool:
        return self.variant == CONTROL_LABEL

    @property
    def energy(self) -> Summary:
        """Mean energy per sample (J) and its 95 % interval (never below zero)."""
        return summarize(self.values_j_per_sample)

    @property
    def by_round(self) -> dict[str, float]:
        """Round -> energy per sample (J), for the repetitions measured in rounds."""
        if not self.rounds:
            return {}
        pairs = zip(self.rounds, self.values_j_per_sample, strict=True)
        return {r: v for r, v in pairs if r != ""}

    def disturbed_words(self, which: str) -> str:
        """`dense was disturbed in 3 of 5 windows`, or "" when none was."""
        if not self.disturbed:
            return ""
        return f"{which} was disturbed in {self.disturbed} of {self.windows} windows"


def case_energy(row: Mapping[str, str], rep: CaseRepetitions | None) -> CaseEnergy | None:
    """The CaseEnergy of a cases.csv row and its repetitions; None unless it finished
    (`status` ok) with usable repetitions."""
    if not finished(row) or rep is None:
        return None
    if not rep.energy_j_per_sample:
        return None
    return CaseEnergy(
        case_id=row.get("case_id") or "",
        group=group_key(row),
        variant=row.get("variant") or "",
        values_j_per_sample=tuple(rep.energy_j_per_sample),
        accuracy=parse_float(row.get("accuracy")),
        source=row.get("measured_source") or combine_sources(rep.sources),
        unstable_reason=unstable_reason_of(row),
        rounds=tuple(rep.rounds),
        windows=rep.windows,
        disturbed=len(rep.disturbed),
        accuracy_p=parse_float(row.get("accuracy_vs_dense_p_mcnemar")),
        accuracy_reference=row.get("accuracy_reference") or "",
    )


def case_energies(
    case_rows: Iterable[Mapping[str, str]], reps: Mapping[str, CaseRepetitions]
) -> list[CaseEnergy]:
    """The finished cases of a run, in cases.csv order (each case_id once)."""
    out: dict[str, CaseEnergy] = {}
    for row in case_rows:
        case_id = row.get("case_id") or ""
        found = case_energy(row, reps.get(case_id))
        if found is not None and case_id not in out:
            out[case_id] = found
    return list(out.values())


def dense_cases(cases: Iterable[CaseEnergy]) -> dict[GroupKey, CaseEnergy]:
    """The dense case of each group (the first one, should a run hold two)."""
    out: dict[GroupKey, CaseEnergy] = {}
    for c in cases:
        if c.is_dense:
            out.setdefault(c.group, c)
    return out


def dense_in_run(run_dir: Path, group: GroupKey) -> CaseEnergy | None:
    """The finished dense case of `group` in a run directory (cases.csv and
    measurements.csv), or None when the run has none yet."""
    rows = [
        r
        for r in read_rows(Path(run_dir) / "cases.csv")
        if r.get("variant") == DENSE and group_key(r) == group
    ]
    if not rows:
        return None
    ids = {r.get("case_id") for r in rows}
    measured = iter_rows(Path(run_dir) / "measurements.csv", REPETITION_COLUMNS)
    found = case_energies(rows, case_repetitions(r for r in measured if r.get("case_id") in ids))
    return found[0] if found else None
