"""The headline in words, the same at the end of `run` and at the top of the report.

Every energy figure says what it is: measured (a hardware counter), MODELLED (a probe's
model) or ESTIMATED (the analytic estimate), and SIMULATED (an accelerator simulated with
SCALE-Sim). The data is `harness.rows.headline`.
"""

from __future__ import annotations

import math

from harness.measure.sources import is_modelled, source_label
from harness.report.format import fmt_break_even, fmt_change, fmt_preparation, short_variant
from harness.rows.case_energy import group_fields
from harness.rows.headline import EstimateErrorSummary, GroupHeadline, Headline
from harness.spec.case import GroupKey

MODELLED_NOTE = (
    "this machine has no hardware energy counter for what ran, so every energy called "
    "measured here is a probe's model (CPU time x TDP, RAM size), not a measurement"
)


def group_title(group: GroupKey) -> str:
    """`inference: lenet5 on digits, batch 64, cpu, fp32`."""
    f = group_fields(group)
    what = f"{f['model']} on {f['dataset']}" if f["dataset"] else f["model"]
    rest = ", ".join(p for p in (f"batch {f['batch_size']}", f["device"], f["precision"]) if p)
    return f"{f['mode'] or '(no mode)'}: {what}, {rest}"


def group_answer(g: GroupHeadline) -> str:
    """One group's answer: the best variant vs dense, each figure labelled."""
    if g.best is None:
        return g.note
    v = g.best
    name = short_variant(g.best_variant)
    if v.beyond_noise and v.energy_ratio < 1:
        lead = f"best vs dense: {name}"
    else:
        lead = f"on the front, no variant saves energy vs dense beyond noise; lowest: {name}"
    change = fmt_change(v.energy_ratio, v.ratio_ci95_low, v.ratio_ci95_high)
    floor = (
        f"; noise floor (the A/A control): {v.noise_floor_pct:.1f} %"
        if math.isfinite(v.noise_floor_pct)
        else ""
    )
    return (
        f"{lead}: energy per sample {change} ({source_label(v.source)}), {v.noise_words}"
        f"{floor}; test accuracy {v.accuracy_words}{account_words(g)}"
    )


def account_words(g: GroupHeadline) -> str:
    """`; made in 3.1 J measured, this run (with dense's training: 45 J ...); break-even
    after 60 k inferences [50 k, 75 k]`: the best variant's whole account; "" when its
    preparation was not measured and it has no break-even."""
    prep, be = g.preparation, g.break_even
    parts = []
    if prep is not None and prep.known:
        whole = fmt_preparation(prep, total=True)
        parts.append(f"made in {fmt_preparation(prep)} (with dense's training: {whole})")
    if be is not None:
        parts.append(f"break-even vs dense {fmt_break_even(be)}")
    return "".join(f"; {p}" for p in parts)


def estimate_answer(h: Headline) -> str:
    """The estimate's typical error, labelled ESTIMATED against measured or MODELLED."""
    e = h.estimate_error
    if not e.n:
        return "no finished case has an estimate error"
    spread = f", {e.min_pct:+.0f} % to {e.max_pct:+.0f} %" if e.n > 1 else ""
    return (
        f"typical error {e.median_pct:+.0f} % (median of {e.n} case(s){spread}): the "
        f"ESTIMATED energy (analytic, dense-hw) against the {source_label(h.source)} one"
    )


def simulated_answer(h: Headline) -> str:
    """The simulation's typical distance from the measured and the estimated energy, by
    the estimate error's definition, labelled SIMULATED."""
    m, e = h.simulated_error, h.simulated_vs_estimate

    def typical(s: EstimateErrorSummary, other: str) -> str:
        spread = f", {s.min_pct:+.0f} % to {s.max_pct:+.0f} %" if s.n > 1 else ""
        return f"{s.median_pct:+.0f} % (median of {s.n} case(s){spread}) against the {other}"

    parts = [typical(m, f"{source_label(h.source)} energy")] if m.n else []
    parts += [typical(e, "ESTIMATED energy (dense-hw)")] if e.n else []
    return (
        f"the SIMULATED energy on {h.simulated_accelerator} (SCALE-Sim, one sample): "
        + "; ".join(parts)
    )


def headline_items(h: Headline) -> list[tuple[str, str]]:
    """The headline as (title, text): one item per group, the estimate's error, and what
    MODELLED means when any energy is modelled."""
    if not h.groups:
        return [("no finished case", "nothing to compare")]
    items = [(group_title(g.group), group_answer(g)) for g in h.groups]
    items.append(("estimate", estimate_answer(h)))
    if h.simulated_error.n or h.simulated_vs_estimate.n:
        items.append(("simulated", simulated_answer(h)))
    if is_modelled(h.source):
        items.append(("MODELLED", MODELLED_NOTE))
    return items
