"""Measure one group of single-process cases in rounds (`harness.run.rounds`).

1. Every model of the group is prepared first (trained, compressed, evaluated; from the
   cache when it can be), so no preparation sits between the windows it would bias. A
   case that cannot run gets its skipped or failed row at once.
2. The rounds: in this process (`processes = 1`) or spread over fresh worker processes
   (`harness.run.processes`), so that process-level effects (memory layout, thread
   pools) are part of the variance the intervals see, as pyperf does with its workers.
   Each window's rows are appended to measurements.csv as soon as it ends, with its
   round, its place in the round and its process.
3. Disturbed windows (`harness.rows.disturbed`: a busy machine, an outlier) are kept,
   marked and left out, and the cases that lack usable rounds are measured again, with
   dense, in extra rounds: at most `repetitions` more.
4. The cases.csv rows, from the windows as written (so a resumed group gives the same
   rows), each variant against dense round by round, with the A/A control's floor.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError
from harness.measure.clock import utc_now_iso
from harness.prepare.cache import ModelCache
from harness.prepare.hardware import DeviceUnavailable, check_device
from harness.prepare.pipeline import PreparedModel
from harness.rows.cases import case_figures, failed_case_row
from harness.rows.columns import STATUS_FAILED, STATUS_SKIPPED, finished
from harness.rows.csvfile import iter_rows, read_rows
from harness.rows.disturbed import BUSY, busy_reason, outlier_reasons
from harness.rows.measurements import measurement_rows
from harness.rows.repetitions import CaseRepetitions, case_repetitions
from harness.run.case import CaseContext, failure_row, prepare_case
from harness.run.group_rows import Member, group_rows
from harness.run.processes import run_worker, worker_spec
from harness.run.rounds import (
    CaseFailed,
    RoundPlan,
    RoundSettings,
    WindowDone,
    make_bench,
    measure_rounds,
    plan_rounds,
    split_over_processes,
)
from harness.spec.case import Case
from harness.spec.variants import DENSE, VariantUnsupported
from harness.workloads.precision import PrecisionUnsupported, check_precision_supported

RowDone = Callable[[Case, dict[str, Any]], None]


@dataclass
class GroupRun:
    """The state of one group while its rounds run: its members and its windows."""

    ctx: CaseContext
    members: dict[str, Member]
    rows: list[dict[str, Any]] = field(default_factory=list)  # its measurements.csv rows
    peer_j: dict[str, list[float]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # case_id -> error
    marked: bool = False  # an outlier was marked since the file was last written
    broken: str = ""  # why a worker process ended early: no more rounds are run
    pending: set[str] = field(default_factory=set)  # members whose rows are still to write

    @property
    def dense_id(self) -> str | None:
        return next(
            (i for i, m in self.members.items() if m.case.variant == DENSE and not m.case.control),
            None,
        )

    def add(self, event: WindowDone | CaseFailed) -> None:
        """A window (its rows appended at once) or a case that failed in its rounds."""
        if isinstance(event, CaseFailed):
            self.failed[event.case_id] = event.error
            return
        member = self.members[event.case_id]
        limit = self.ctx.suite.settings.stable_max_other_cpu_pct
        reason = busy_reason(event.record.get("other_cpu_pct"), limit)
        rows = measurement_rows(
            self.ctx.run_id, member.case, event.place.round, [event.record], event.place, reason
        )
        self.ctx.measurements.append_many(rows)
        self.rows.extend(rows)
        self.ctx.progress.window_done()
        if event.peer_energy_j is not None:
            self.peer_j.setdefault(event.case_id, []).append(
                event.peer_energy_j / event.record["samples"]
            )
        for warning in event.record.get("warnings", []):
            self.ctx.log(f"warning: {event.case_id}: {warning}")

    def repetitions(self) -> dict[str, CaseRepetitions]:
        return case_repetitions([_texts(r) for r in self.rows])

    def mark_outliers(self) -> None:
        """Mark each case's outlier windows as disturbed (in memory; `_write_marks` puts
        them in the file). Judged afresh each time over every window not busy, the ones
        marked before included, so that leaving outliers out never makes the rest look
        like outliers in turn."""
        candidates = [
            {**row, "disturbed": False, "disturbed_reason": ""}
            for row in self.rows
            if not str(row.get("disturbed_reason") or "").startswith(BUSY)
        ]
        found: dict[tuple[str, str], str] = {}
        for case_id, rep in case_repetitions([_texts(r) for r in candidates]).items():
            by_window = dict(zip(rep.repetitions, rep.energy_j_per_sample, strict=True))
            for label, reason in outlier_reasons(by_window).items():
                found[(case_id, label)] = reason
        for row in self.rows:
            old = str(row.get("disturbed_reason") or "")
            if old.startswith(BUSY):
                continue
            new = found.get((row["case_id"], str(row["repetition"])), "")
            if new != old:
                row["disturbed"], row["disturbed_reason"] = bool(new), new
                self.marked = True

    def usable_rounds(self) -> dict[str, int]:
        """case_id -> rounds it can be compared in: with dense where the group has it
        (both usable in the same round), else its own usable windows."""
        reps = self.repetitions()

        def usable(case_id: str) -> set[str]:
            rep = reps.get(case_id)
            return set(rep.rounds) if rep is not None and not rep.all_disturbed else set()

        dense_rounds = usable(self.dense_id) if self.dense_id in self.active() else None
        out = {}
        for case_id in self.active():
            rounds = usable(case_id)
            paired = dense_rounds is not None and case_id != self.dense_id
            out[case_id] = len(rounds & dense_rounds) if paired else len(rounds)
        return out

    def active(self) -> list[str]:
        """The members still measured (not failed in their rounds)."""
        return [i for i in self.members if i not in self.failed]

    def next_round(self) -> int:
        numbers = [int(r["round"]) for r in self.rows if str(r.get("round", "")) != ""]
        return max(numbers, default=-1) + 1


def _texts(row: dict[str, Any]) -> dict[str, str]:
    """A row as the CSV reader gives it back."""
    return {k: _text(v) for k, v in row.items()}


def _text(value: Any) -> str:
    """A row's value as the CSV reader gives it back."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _prepare_members(
    ctx: CaseContext, cases: list[Case], cache: ModelCache | None, on_row: RowDone
) -> dict[str, Member]:
    """Every case's model and bench, the control a copy of dense's model in memory of its
    own; a case that cannot run gets its row (skipped or failed) at once."""
    members: dict[str, Member] = {}
    dense: PreparedModel | None = None
    for case in cases:
        started = utc_now_iso()
        ctx.progress.start_case(case)
        try:
            check_device(case.device)
            check_precision_supported(case.precision, case.device, case.variant)
            if case.control:
                if dense is None:
                    raise VariantUnsupported(case.variant_label, "its dense case did not prepare")
                prepared = copy.deepcopy(dense)
            else:
                prepared = prepare_case(ctx, case, ctx.dataset(case), cache)
            bench = make_bench(case, prepared, ctx.dataset(case), ctx.suite.settings.seed)
        except (VariantUnsupported, DeviceUnavailable, PrecisionUnsupported) as exc:
            on_row(case, failed_case_row(ctx.run_id, case, STATUS_SKIPPED, str(exc), started))
            continue
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the case fails; the group goes on
            on_row(case, failure_row(ctx.run_id, case, exc, started))
            continue
        if case.variant == DENSE and not case.control:
            dense = prepared
        members[case.case_id] = Member(case, prepared, bench, started)
    return members


def _existing_rows(ctx: CaseContext, cases: list[Case]) -> list[dict[str, Any]]:
    """The group's windows already in measurements.csv (a resumed run: `--resume` has
    dropped the rounds measured in part)."""
    ids = {c.case_id for c in cases}
    return [r for r in iter_rows(ctx.measurements.path) if r.get("case_id") in ids]


def _with_finished(ctx: CaseContext, todo: list[Case]) -> list[Case]:
    """The group's cases to measure, and those of it that finished before a resume (their
    windows and models are what the others are compared with), in the suite's order."""
    ok = {
        r.get("case_id")
        for r in read_rows(ctx.measurements.path.parent / "cases.csv")
        if finished(r)
    }
    pending = {c.case_id for c in todo}
    group = todo[0].group
    return [
        c for c in ctx.suite.cases if c.group == group and (c.case_id in pending or c.case_id in ok)
    ]


def _worker_cache(ctx: CaseContext, work: Path) -> ModelCache:
    """Where worker processes load the prepared models from: the run's cache when it can
    be written, else a cache of the group's own in a temporary folder."""
    if ctx.cache is not None and not ctx.cache.read_only:
        return ctx.cache
    cache = ModelCache(work / "cache")
    cache.root.mkdir(parents=True, exist_ok=True)
    return cache


def _round_settings(ctx: CaseContext, process: int) -> RoundSettings:
    s = ctx.suite.settings
    peer = (ctx.carbon.country or "USA") if ctx.peer == "codecarbon" else None
    return RoundSettings(ctx.min_window_s, s.warmup_iterations, process, peer)


def _next_process(group: GroupRun) -> int:
    numbers = [int(r["process"]) for r in group.rows if str(r.get("process", "")) != ""]
    return max(numbers, default=-1) + 1


def _run_plans(
    group: GroupRun, plans: list[RoundPlan], cache: ModelCache | None, work: Path
) -> None:
    """Run `plans`: here when the suite asks for one process, else each part of them in a
    fresh worker process."""
    ctx = group.ctx
    benches = {i: group.members[i].bench for i in group.active()}

    def on_window(case: Case, round_no: int) -> None:
        ctx.progress.window(case, round_no)

    if ctx.suite.settings.process_count == 1 or cache is None:
        settings = _round_settings(ctx, _next_process(group))
        measure_rounds(ctx.meter, benches, plans, settings, group.add, on_window)
        return
    for part in split_over_processes(plans, ctx.suite.settings.process_count):
        settings = _round_settings(ctx, _next_process(group))
        cases = [group.members[i].case for i in benches]
        iterations = {i: b.iterations for i, b in benches.items()}
        spec = worker_spec(ctx, cases, part, settings, cache, iterations)
        try:
            for event in run_worker(
                spec, work, on_window=lambda c, r: on_window(group.members[c].case, r)
            ):
                group.add(event)
                if isinstance(event, WindowDone):
                    benches[event.case_id].iterations = event.record["iterations"]
        except EnergyHarnessError as exc:  # the windows measured so far are kept
            group.broken = str(exc)
            ctx.log(f"warning: {exc}; the group's rows come from the rounds measured so far")
            return


def _remeasure_disturbed(group: GroupRun, cache: ModelCache | None, work: Path) -> None:
    """Extra rounds for the cases that lack `repetitions` usable rounds (with dense, to
    pair them), at most `repetitions` of them."""
    s = group.ctx.suite.settings
    extra_done = len({r["round"] for r in group.rows if int(r["round"]) >= s.repetitions})
    for _ in range(s.repetitions - extra_done):
        group.mark_outliers()
        usable = group.usable_rounds()
        short = [i for i, n in usable.items() if n < s.repetitions and i in group.pending]
        if not short or group.broken:
            return
        dense = group.dense_id
        ids = sorted(set(short) | ({dense} if dense in group.active() else set()))
        plans = plan_rounds(ids, s.seed, group.members[ids[0]].case.group, [group.next_round()])
        group.ctx.progress.add_windows(len(ids))
        _run_plans(group, plans, cache, work)


def _write_marks(group: GroupRun) -> None:
    """Put the outliers marked in memory into measurements.csv (rewritten atomically)."""
    marks = {(r["case_id"], str(r["repetition"])): _texts(r) for r in group.rows}

    def marked(row: dict[str, str]) -> dict[str, str]:
        mark = marks.get((row["case_id"], row["repetition"]))
        if mark is not None:
            row["disturbed"], row["disturbed_reason"] = mark["disturbed"], mark["disturbed_reason"]
        return row

    group.ctx.measurements.rewrite(marked(r) for r in iter_rows(group.ctx.measurements.path))
    group.marked = False


def _finish(group: GroupRun, on_row: RowDone) -> None:
    """Every member's cases.csv row, from its windows as written."""
    ctx = group.ctx
    reps = group.repetitions()
    figures = {}
    for case_id, member in group.members.items():
        rep = reps.get(case_id)
        if case_id in group.failed or rep is None or not rep.totals:
            continue
        figures[case_id] = case_figures(
            rep.totals,
            member.case.batch_size,
            rounds=tuple(rep.rounds),
            windows=rep.windows,
            disturbed=len(rep.disturbed),
            processes=len(set(rep.processes)),
        )
    rows = group_rows(ctx, group.members, figures, group.peer_j)
    for case_id, member in group.members.items():
        if case_id in rows:
            on_row(member.case, rows[case_id])
            continue
        why = group.failed.get(case_id) or _no_window_reason(reps.get(case_id))
        on_row(
            member.case,
            failed_case_row(ctx.run_id, member.case, STATUS_FAILED, why, member.started),
        )


def _no_window_reason(rep: CaseRepetitions | None) -> str:
    if rep is None:
        return "no window was measured"
    return (
        f"no usable window: {len(rep.disturbed)} disturbed, {len(rep.unusable)} invalid "
        "(see measurements.csv); run it again on a quieter machine"
    )


def run_group(ctx: CaseContext, todo: list[Case], on_row: RowDone) -> None:
    """Prepare, measure in rounds and write the rows of one group's cases still to do
    (`todo`; after a resume, with the cases of the group that finished before)."""
    s = ctx.suite.settings
    work = Path(tempfile.mkdtemp(prefix="energy-harness-rounds-"))
    pending = {c.case_id for c in todo}

    def on_pending_row(case: Case, row: dict[str, Any]) -> None:
        if case.case_id in pending:
            on_row(case, row)

    try:
        cache = _worker_cache(ctx, work) if s.process_count > 1 else ctx.cache
        cases = _with_finished(ctx, todo)
        members = _prepare_members(ctx, cases, cache, on_pending_row)
        if not members:
            return
        group = GroupRun(ctx, members, _existing_rows(ctx, cases), pending=pending)
        done = {int(r["round"]) for r in group.rows if str(r.get("round", "")) != ""}
        todo = [r for r in range(s.repetitions) if r not in done]
        plans = plan_rounds(list(members), s.seed, cases[0].group, todo)
        _run_plans(group, plans, cache, work)
        if not group.broken:
            _remeasure_disturbed(group, cache, work)
        group.mark_outliers()
        if group.marked:
            _write_marks(group)
        _finish(group, on_pending_row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
