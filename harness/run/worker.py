"""A worker process that measures rounds, started by `harness.run.processes`.

    python -m harness.run.worker SPEC.json FD

It parses the suite the runner wrote into SPEC.json, loads the prepared models of its
cases from the model cache (a fresh process: its own memory layout, allocator and thread
pool), opens the same probes with the run's idle power, and measures its rounds
(`harness.run.rounds.measure_rounds`), writing one JSON line per event to the pipe FD
as soon as it happens. A failure before the rounds begin is one `error` line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from harness.errors import error_text
from harness.measure.meter import EnergyMeter
from harness.measure.probes import select_probes
from harness.prepare.cache import ModelCache
from harness.rows.carbon import carbon_settings
from harness.run.case import CaseContext
from harness.run.case import prepare_case as prepare
from harness.run.rounds import (
    Bench,
    CaseFailed,
    RoundPlan,
    RoundSettings,
    WindowDone,
    make_bench,
    measure_rounds,
)
from harness.spec.case import Case
from harness.spec.settings import SuiteSettings
from harness.spec.suite import parse_suite
from probes.base import ProbeOptions


def _send(stream: TextIO, line: dict[str, Any]) -> None:
    stream.write(json.dumps(line) + "\n")
    stream.flush()


def _benches(ctx: CaseContext, spec: dict[str, Any]) -> dict[str, Bench]:
    """The worker's cases, their models from the cache, each on its batch."""
    by_id = {c.case_id: c for c in ctx.suite.cases}
    cache = ModelCache(Path(spec["cache_dir"]))
    benches = {}
    for case_id in spec["case_ids"]:
        case: Case = by_id[case_id]
        data = ctx.dataset(case)
        bench = make_bench(case, prepare(ctx, case, data, cache), data, ctx.suite.settings.seed)
        bench.iterations = int(spec["iterations"].get(case_id) or 0)
        benches[case_id] = bench
    return benches


def _context(spec: dict[str, Any]) -> CaseContext:
    """The suite as the runner has it (its settings as the run uses them) and a meter."""
    suite = parse_suite(spec["suite_text"], spec["suite_source"])
    values = {f.name: spec["suite_settings"][f.name] for f in dataclasses.fields(SuiteSettings)}
    suite.settings = SuiteSettings(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    )
    root = spec["powercap_root"]
    selected = select_probes(
        spec["probes"] or None, ProbeOptions(powercap_root=root and Path(root))
    )
    meter = EnergyMeter(selected.probes)
    meter.idle_power_w = dict(spec["idle_power_w"])
    return CaseContext("", suite, meter, None, carbon_settings(), None)  # type: ignore[arg-type]


def main(argv: list[str]) -> int:
    spec_path, fd = Path(argv[0]), int(argv[1])
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        try:
            spec = json.loads(spec_path.read_text())
            sys.path[:0] = [p for p in spec["sys_path"] if p not in sys.path]
            ctx = _context(spec)
            benches = _benches(ctx, spec)
        except Exception as exc:  # noqa: BLE001 - said to the runner in one line
            _send(stream, {"kind": "error", "error": error_text(exc)})
            return 1
        plans = [RoundPlan(r, tuple(ids)) for r, ids in spec["plans"]]
        settings = RoundSettings(
            spec["min_window_s"], spec["warmup_iterations"], spec["process"], spec["peer_country"]
        )

        def emit(event: WindowDone | CaseFailed) -> None:
            if isinstance(event, WindowDone):
                line = dataclasses.asdict(event)
                _send(stream, {"kind": "window", **line})
            else:
                _send(stream, {"kind": "failed", "case_id": event.case_id, "error": event.error})

        def starting(case: Case, round_no: int) -> None:
            _send(stream, {"kind": "starting", "case_id": case.case_id, "round": round_no})

        with ctx.meter:
            measure_rounds(ctx.meter, benches, plans, settings, emit, starting)
        _send(stream, {"kind": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
