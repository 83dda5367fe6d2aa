"""What the report shows per case: cases.csv rows merged with measurements.csv repetitions.

Energies are in J per sample; NaN where unknown. A case measured but missing from
cases.csv (an interrupted run) is shown too, with its figures from the repetitions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness.estimate.error import estimate_error_pct
from harness.measure.sources import combine_sources, is_modelled
from harness.report.format import short_variant
from harness.rows.break_even import BreakEven, run_break_evens
from harness.rows.case_energy import case_energies
from harness.rows.columns import finished
from harness.rows.csvfile import parse_float
from harness.rows.preparation import Preparation, preparation_of
from harness.rows.repetitions import CaseRepetitions
from harness.rows.stability import unstable_reason_of
from harness.rows.stats import summarize
from harness.rows.vs_dense import VsDense, vs_dense_all
from harness.spec.case import GroupKey, group_key

DENSE_HW_COLUMN = "est_dense_hw_energy_j_per_sample"  # what the estimate error compares
ESTIMATE_COLUMNS = {
    DENSE_HW_COLUMN: ("dense-hw", "o"),
    "est_sparse_ideal_energy_j_per_sample": ("sparse-ideal", "^"),
}
ESTIMATE_PARTS = ("compute", "storage", "communication", "static")


@dataclass
class CaseView:
    """One case as the report shows it. Energies in J per sample; NaN where unknown."""

    index: int
    case_id: str
    model: str = ""
    variant: str = ""
    mode: str = ""
    batch_size: str = ""
    device: str = ""
    dataset: str = ""
    precision: str = ""
    status: str = ""
    error: str = ""
    in_cases_csv: bool = True
    accuracy: float = math.nan
    sparsity: float = math.nan
    params_removed: float = math.nan  # fraction of the dense model's parameters gone or zero
    measured_source: str = ""
    n: int = 0
    mean_j_per_sample: float = math.nan
    ci95_low_j_per_sample: float = math.nan
    ci95_high_j_per_sample: float = math.nan
    estimates_j_per_sample: dict[str, float] = field(default_factory=dict)
    estimate_parts_j_per_sample: dict[str, float] = field(default_factory=dict)
    estimate_error_pct: float = math.nan
    estimate_error_computed: bool = False
    co2_g_per_1000_samples: float = math.nan
    peer_j_per_sample: float = math.nan  # `--peer codecarbon`: the peer tool's figure
    simulated_accelerator: str = ""  # the suite's `simulate` accelerator ("" without one)
    simulated_j_per_sample: float = math.nan
    simulated_sparse_ideal_j_per_sample: float = math.nan
    simulated_vs_estimate_pct: float = math.nan
    repetitions: CaseRepetitions | None = None
    unstable_reason: str = ""  # why cases.csv marks the figure unstable ("" when stable)
    vs_dense: VsDense | None = None  # against the dense case of its group
    preparation: Preparation | None = None  # what making its model cost (cases.csv)
    break_even: BreakEven | None = None  # an inference variant's (harness.rows.break_even)
    started_utc: str = ""  # when the case began and ended (cases.csv), for the timeline
    finished_utc: str = ""

    @property
    def ok(self) -> bool:
        """Finished and measured: status 'ok' (or, without a cases.csv row, usable data)."""
        if self.in_cases_csv:
            return finished({"status": self.status})
        return bool(self.repetitions and self.repetitions.energy_j_per_sample)

    @property
    def modelled(self) -> bool:
        """True when any part of the measured figure comes from a model, not a counter."""
        return is_modelled(self.measured_source)

    @property
    def status_word(self) -> str:
        return self.status.strip().lower() or "no status"

    @property
    def group(self) -> GroupKey:
        """Model, dataset, mode, batch size, device and precision (`harness.rows.vs_dense`)."""
        return group_key(self.__dict__)

    @property
    def variant_label(self) -> str:
        """`magnitude sparsity=0.9`: the variant, wrapping at spaces."""
        return short_variant(self.variant) or self.case_id

    @property
    def label(self) -> str:
        """A short label for plots: `magnitude sparsity=0.9, inference, bs64`."""
        parts = (self.variant_label, self.mode, f"bs{self.batch_size}" if self.batch_size else "")
        return ", ".join(p for p in parts if p)


_ID_FIELDS = ("case_id", "model", "variant", "mode", "batch_size", "device", "dataset", "precision")


def _id_fields(row: dict[str, str]) -> dict[str, str]:
    """The columns that name a case, from a cases.csv or measurements.csv row."""
    return {name: row.get(name, "") for name in _ID_FIELDS}


def build_cases(
    case_rows: list[dict[str, str]], reps: dict[str, CaseRepetitions]
) -> list[CaseView]:
    """Merge cases.csv rows with the repetitions read from measurements.csv: cases.csv
    first, then measured-only cases; each with its comparison with dense
    (`harness.rows.vs_dense`)."""
    views: list[CaseView] = []
    seen: set[str] = set()
    for row in case_rows:
        case_id = row.get("case_id") or ""
        if not case_id or case_id in seen:
            continue
        seen.add(case_id)
        views.append(_view_from_case_row(len(views) + 1, row, reps.get(case_id)))
    for case_id, rep in reps.items():
        if case_id in seen:
            continue
        view = CaseView(
            index=len(views) + 1,
            **{**_id_fields(rep.names), "case_id": case_id},
            status="not in cases.csv",
            error="measured, but cases.csv has no row for it (interrupted run?)",
            in_cases_csv=False,
            repetitions=rep,
        )
        views.append(view)
    energies = case_energies(case_rows, reps)
    vs = vs_dense_all(energies)
    break_evens = run_break_evens(case_rows, energies, vs)
    for view in views:
        rep = reps.get(view.case_id)
        _fill_measured(view, rep.recorded_sources if rep else set())
        view.vs_dense = vs.get(view.case_id)
        view.break_even = break_evens.get(view.case_id)
    return views


def _view_from_case_row(index: int, row: dict[str, str], rep: CaseRepetitions | None) -> CaseView:
    view = CaseView(
        index=index,
        **_id_fields(row),
        status=row.get("status", ""),
        error=row.get("error", ""),
        accuracy=parse_float(row.get("accuracy")),
        sparsity=parse_float(row.get("sparsity")),
        params_removed=parse_float(row.get("params_removed")),
        started_utc=row.get("started_utc", ""),
        finished_utc=row.get("finished_utc", ""),
        measured_source=row.get("measured_source", ""),
        mean_j_per_sample=parse_float(row.get("energy_j_per_sample_mean")),
        ci95_low_j_per_sample=parse_float(row.get("energy_j_per_sample_ci95_low")),
        ci95_high_j_per_sample=parse_float(row.get("energy_j_per_sample_ci95_high")),
        estimate_error_pct=parse_float(row.get("estimate_error_pct")),
        co2_g_per_1000_samples=parse_float(row.get("co2_g_per_1000_samples")),
        peer_j_per_sample=parse_float(row.get("peer_energy_j_per_sample")),
        simulated_accelerator=row.get("simulated_accelerator") or "",
        simulated_j_per_sample=parse_float(row.get("simulated_energy_j_per_sample")),
        simulated_sparse_ideal_j_per_sample=parse_float(
            row.get("simulated_sparse_ideal_energy_j_per_sample")
        ),
        simulated_vs_estimate_pct=parse_float(row.get("simulated_vs_estimate_pct")),
        repetitions=rep,
        unstable_reason=unstable_reason_of(row),
        preparation=preparation_of(row),
    )
    n = parse_float(row.get("n"))
    view.n = int(n) if math.isfinite(n) else 0
    for column in ESTIMATE_COLUMNS:
        view.estimates_j_per_sample[column] = parse_float(row.get(column))
    for part in ESTIMATE_PARTS:
        view.estimate_parts_j_per_sample[part] = parse_float(row.get(f"est_dense_hw_{part}_j"))
    return view


def _fill_measured(view: CaseView, sources: set[str]) -> None:
    """Fill measured figures that cases.csv lacks from the repetitions in measurements.csv."""
    values = view.repetitions.energy_j_per_sample if view.repetitions else []
    if not view.measured_source and sources:
        view.measured_source = combine_sources(sources)
    if not math.isfinite(view.mean_j_per_sample) and values:
        summary = summarize(values)
        view.mean_j_per_sample = summary.mean
        view.ci95_low_j_per_sample = summary.ci95_low
        view.ci95_high_j_per_sample = summary.ci95_high
        view.n = summary.n
    elif view.n == 0:
        view.n = len(values)
    dense = view.estimates_j_per_sample.get(DENSE_HW_COLUMN, math.nan)
    if not math.isfinite(view.estimate_error_pct):
        error = estimate_error_pct(dense, view.mean_j_per_sample)
        if error is not None:  # the one definition, as cases.csv would have it
            view.estimate_error_pct, view.estimate_error_computed = error, True
