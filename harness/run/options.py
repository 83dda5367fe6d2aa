"""Options of one `energy-harness run` that are not in the suite file: CLI flags, shards."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError
from harness.spec.case import Case


@dataclass
class RunOptions:
    """Options of one `energy-harness run` (CLI flags; suite settings fill the rest)."""

    probes: list[str] | None = None
    powercap_root: Path | None = None
    shard: tuple[int, int] | None = None
    country: str | None = None
    region: str | None = None
    carbon_intensity: float | None = None
    pue: float | None = None
    peer: str | None = None
    cache: bool = True
    cache_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for run.json (what `--resume` reads back with `from_dict`)."""
        out = dict(self.__dict__)
        out["powercap_root"] = str(self.powercap_root) if self.powercap_root else None
        out["cache_dir"] = str(self.cache_dir) if self.cache_dir else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunOptions:
        """The options `to_dict` wrote."""
        opts = dict(data)
        for key in ("powercap_root", "cache_dir"):
            opts[key] = Path(opts[key]) if opts.get(key) else None
        if opts.get("shard"):
            opts["shard"] = tuple(opts["shard"])
        return cls(**opts)


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` -> (I, N) with 0 <= I < N (Slurm: --shard $SLURM_ARRAY_TASK_ID/$N): every
    N-th group of cases from I (`shard_cases`)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise EnergyHarnessError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise EnergyHarnessError(f"--shard {text}: need 0 <= I < N")
    return index, count


def shard_cases(cases: list[Case], shard: tuple[int, int] | None) -> list[Case]:
    """The cases of every N-th group starting at I (groups in the suite's order): a group
    is measured in rounds and compared with its dense case, so it is never split."""
    if shard is None:
        return list(cases)
    index, count = shard
    order = list(dict.fromkeys(c.group for c in cases))
    mine = {g for k, g in enumerate(order) if k % count == index}
    return [c for c in cases if c.group in mine]
