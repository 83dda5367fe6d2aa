"""What a figure is made of, said one way everywhere: source order, combination and labels.

A domain's source is `counter` (read from hardware), `model` (modelled by a probe) or
`peer` (another tool's figure). A total combines sources as `counter+model`, counters
first. Every output shows a modelled figure as MODELLED, never as a measurement.
"""

from __future__ import annotations

from collections.abc import Iterable

from probes.base import SOURCE_COUNTER, SOURCE_MODEL, SOURCE_PEER

# Which source a total prefers for one scope (lower first); peers never enter totals.
SOURCE_RANK = {SOURCE_COUNTER: 0, SOURCE_MODEL: 1}
SOURCE_LABELS = {
    SOURCE_COUNTER: "measured",
    SOURCE_MODEL: "MODELLED",
    f"{SOURCE_COUNTER}+{SOURCE_MODEL}": "measured + modelled",
    SOURCE_PEER: "peer tool",
}


def combine_sources(sources: Iterable[str]) -> str:
    """`counter`, `model`, `counter+model` (counters first) or `none` for no source.

    Accepts combined sources too (`counter+model` is split into its parts).
    """
    parts = {part for source in sources for part in source.split("+") if part}
    return "+".join(sorted(parts, key=lambda s: (SOURCE_RANK.get(s, 9), s))) or "none"


def source_label(source: str) -> str:
    """`measured`, `MODELLED`, `measured + modelled` or `peer tool`; else the source as is."""
    return SOURCE_LABELS.get(source, source)


def is_modelled(source: str) -> bool:
    """True when any part of a figure of this source is modelled, not read from a counter."""
    return SOURCE_MODEL in source.split("+")


def energy_label(sources: Iterable[str]) -> str:
    """How an energy was obtained, in words (modelled energy said loudly)."""
    combined = combine_sources(sources)
    if combined == SOURCE_COUNTER:
        return "measured by hardware counters"
    if combined == SOURCE_MODEL:
        return "MODELLED by a probe, not measured by hardware counters"
    if is_modelled(combined):
        return "partly measured by counters, partly MODELLED by a probe"
    return "of source " + combined
