"""Find probes through the `energy_harness.probes` entry-point group and build them.

Built-in probes register the same way as third-party ones (see pyproject.toml), so a
new probe is one class plus one entry point in the package that ships it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

from harness.errors import EnergyHarnessError
from probes.base import Probe, ProbeOptions

GROUP = "energy_harness.probes"


@dataclass(frozen=True)
class ProbeStatus:
    """What `energy-harness probes` shows for one probe."""

    name: str
    source: str
    available: bool
    reason: str
    domains: tuple[str, ...]
    default: bool
    warnings: tuple[str, ...] = ()  # parts left out, or why it is skipped (Probe.warnings)


def discover() -> dict[str, object]:
    """Probe name -> entry point, sorted by name. Raises if nothing is registered."""
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    if not found:
        raise EnergyHarnessError(
            f"no probes registered in the entry-point group {GROUP!r}: the package is not "
            "installed; run `pip install -e .` (or `make test`) in the repository"
        )
    return dict(sorted(found.items()))


def _construct(name: str, entry_point, options: ProbeOptions) -> tuple[Probe | None, str]:
    """Build one probe; a broken plugin becomes a reason, never a crash."""
    try:
        cls = entry_point.load()
        return cls(options), ""
    except Exception as exc:
        return None, f"probe {name!r} failed to load ({type(exc).__name__}: {exc})"


def probe_statuses(options: ProbeOptions | None = None) -> list[ProbeStatus]:
    """The status of every registered probe on this machine."""
    options = options or ProbeOptions()
    rows = []
    for name, entry_point in discover().items():
        probe, error = _construct(name, entry_point, options)
        if probe is None:
            rows.append(ProbeStatus(name, "?", False, error, (), False))
            continue
        reason = probe.unavailable_reason()
        domains = tuple(d.name for d in probe.domains()) if reason is None else ()
        rows.append(
            ProbeStatus(
                name,
                probe.source,
                reason is None,
                reason or "",
                domains,
                probe.default,
                tuple(probe.warnings()),
            )
        )
        probe.close()
    return rows


@dataclass(frozen=True)
class SelectedProbes:
    """The probes to measure with, and what the user should hear about them.

    `warnings`: each chosen probe's warnings (a zone it leaves out), and those of default
    probes skipped as unavailable that have something to say (a GPU hidden by MIG).
    """

    probes: list[Probe]
    warnings: tuple[str, ...] = ()


def load_probes(names: list[str] | None, options: ProbeOptions | None = None) -> list[Probe]:
    """The probes to measure with (`select_probes` without the warnings)."""
    return select_probes(names, options).probes


def select_probes(names: list[str] | None, options: ProbeOptions | None = None) -> SelectedProbes:
    """The probes to measure with, and their warnings.

    With `names`, exactly those (an unknown or unavailable one is an error that says
    why). Without, every available probe marked `default` (peers are opt-in).
    """
    options = options or ProbeOptions()
    registered = discover()
    if names:
        unknown = [n for n in names if n not in registered]
        if unknown:
            raise EnergyHarnessError(
                f"unknown probe {', '.join(map(repr, unknown))}; known probes: "
                f"{', '.join(registered)}"
            )
        chosen = list(dict.fromkeys(names))
    else:
        chosen = list(registered)
    probes: list[Probe] = []
    warnings: list[str] = []
    for name in chosen:
        probe, error = _construct(name, registered[name], options)
        if probe is None:
            if names:
                raise EnergyHarnessError(error)
            continue
        reason = probe.unavailable_reason()
        if reason is None and (names or probe.default):
            probes.append(probe)
            warnings.extend(probe.warnings())
        elif names:
            probe.close()
            raise EnergyHarnessError(f"probe {name!r} is unavailable: {reason}")
        else:
            if probe.default:
                warnings.extend(probe.warnings())
            probe.close()
    if not probes:
        raise EnergyHarnessError("no probe is available; `energy-harness probes` says why")
    return SelectedProbes(probes, tuple(warnings))
