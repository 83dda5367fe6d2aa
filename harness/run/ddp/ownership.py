"""Who reads which counter in a distributed job, so that nothing is counted twice.

A GPU that a rank of this node runs on belongs to that rank; every whole-node domain
(RAPL package, dram, psys; the modelled CPU and RAM of the node's process tree; GPUs
that no rank uses) belongs to local rank 0.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from harness.errors import EnergyHarnessError
from harness.measure.probes import load_probes
from probes.base import Domain, Probe, ProbeOptions, Reading

GPU_SCOPE_PREFIX = "gpu:"


def owns_domain(
    domain: Domain, *, local_rank: int, gpu_index: int | None, gpus_in_use: Collection[int]
) -> bool:
    """Whether the rank with `local_rank` (running on CUDA device `gpu_index`) reads `domain`.

    The rule, so that every counter of a node is read by exactly one process: a GPU that
    a rank of this node runs on (`gpus_in_use`, CUDA numbering) belongs to that rank;
    everything else (RAPL package/dram/psys, the modelled CPU and RAM of the node's
    process tree, GPUs that no rank uses) belongs to local rank 0.
    """
    scope = domain.scope
    if scope.startswith(GPU_SCOPE_PREFIX):
        try:
            index = int(scope[len(GPU_SCOPE_PREFIX) :])
        except ValueError:
            index = -1
        if index in gpus_in_use:
            return gpu_index == index
    return local_rank == 0


class OwnedProbe(Probe):
    """A probe seen through a filter: only the domains this rank owns (same name, source)."""

    def __init__(self, inner: Probe, keep: Iterable[str]) -> None:
        super().__init__(inner.options)
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.source = inner.source  # type: ignore[misc]
        self.default = inner.default  # type: ignore[misc]
        self.min_window_s = inner.min_window_s
        self.keep = set(keep)

    def unavailable_reason(self) -> str | None:
        return self.inner.unavailable_reason()

    def warnings(self) -> list[str]:
        return self.inner.warnings()

    def domains(self) -> list[Domain]:
        return [d for d in self.inner.domains() if d.name in self.keep]

    def read(self) -> Reading:
        reading = self.inner.read()
        return Reading(
            timestamp_s=reading.timestamp_s,
            energy_j={k: v for k, v in reading.energy_j.items() if k in self.keep},
            invalid_count={k: v for k, v in reading.invalid_count.items() if k in self.keep},
            invalid_reason={k: v for k, v in reading.invalid_reason.items() if k in self.keep},
        )

    def start(self) -> None:
        self.inner.start()

    def close(self) -> None:
        self.inner.close()

    def info(self) -> dict[str, object]:
        return {**self.inner.info(), "domains_read_by_this_rank": sorted(self.keep)}


def owned_probes(
    probes: list[Probe], *, local_rank: int, gpu_index: int | None, gpus_in_use: Collection[int]
) -> list[Probe]:
    """The probes restricted to the domains this rank owns; probes left empty are closed."""
    out: list[Probe] = []
    for probe in probes:
        domains = probe.domains()
        keep = [
            d.name
            for d in domains
            if owns_domain(d, local_rank=local_rank, gpu_index=gpu_index, gpus_in_use=gpus_in_use)
        ]
        if not keep:
            probe.close()
        elif len(keep) == len(domains):
            out.append(probe)
        else:
            out.append(OwnedProbe(probe, keep))
    return out


def node_probes(names: list[str], options: ProbeOptions, node: int) -> list[Probe]:
    """The runner's probes; on another node, those of them that this node has."""
    try:
        return load_probes(names, options)
    except EnergyHarnessError as exc:
        if node == 0:
            raise
        defaults = load_probes(None, options)
        available = [p for p in defaults if p.name in names]
        for probe in defaults:
            if probe.name not in names:
                probe.close()
        if not available:
            raise
        print(f"node {node}: reading {[p.name for p in available]} only ({exc})", flush=True)
        return available
