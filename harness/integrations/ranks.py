"""A tracked training under torchrun: which counters this rank reads, and who writes.

The rules are the DDP runner's (`harness.run.ddp.ownership`): a GPU a rank runs on
belongs to that rank, every whole-node domain (RAPL, the modelled CPU and RAM) to local
rank 0, so each counter of a node is read once. Rank 0 gathers every rank's window and
writes; the gather is a collective, so every rank ends the same phases (as every rank of
a DDP loop runs the same epochs).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from harness.rows.measurements import WindowRecord
from harness.run.ddp.ownership import owned_probes
from probes.base import Probe


@dataclass(frozen=True)
class RankInfo:
    """This process in its job (torchrun's variables; one rank when they are absent)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    node: int = 0

    @classmethod
    def from_env(cls) -> RankInfo:
        env = os.environ
        if "RANK" not in env or "WORLD_SIZE" not in env:
            return cls()
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        local_world = int(env.get("LOCAL_WORLD_SIZE", world))
        return cls(
            rank,
            int(env.get("LOCAL_RANK", rank)),
            world,
            local_world,
            int(env.get("GROUP_RANK", rank // max(1, local_world))),
        )

    @property
    def writes(self) -> bool:
        return self.rank == 0


def _gpu_in_use(info: RankInfo) -> tuple[int | None, set[int]]:
    """This rank's CUDA device and the devices the node's ranks run on (none on CPU)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None, set()
    count = torch.cuda.device_count()
    return torch.cuda.current_device(), set(range(min(count, info.local_world_size)))


def rank_probes(probes: list[Probe], info: RankInfo) -> list[Probe]:
    """The probes restricted to what this rank owns (all of them for a single process)."""
    if info.world_size == 1:
        return probes
    gpu, in_use = _gpu_in_use(info)
    return owned_probes(probes, local_rank=info.local_rank, gpu_index=gpu, gpus_in_use=in_use)


def gather(record: WindowRecord, info: RankInfo) -> list[dict[str, Any]]:
    """Every rank's window (in rank order); this rank's alone when the process group is
    not (or no longer) initialised."""
    if info.world_size > 1:
        dist = sys.modules.get("torch.distributed")
        if dist is not None and dist.is_available() and dist.is_initialized():
            records: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(records, record)
            return records
    return [record]
