"""Fake sysfs trees whose number files a separate process keeps writing, as the kernel does.

`FakeSysfs(root, static, live)`: `static` maps paths (relative to `root`) to text written
once (`name`, labels); `live` maps paths to `(value, rate_per_s)`: the writer process of
tests/conftest.py rewrites each every millisecond as `value + rate x time` (an energy
counter in uJ advances at rate = watts x 1e6; a power, current or voltage file has rate 0).
"""

from __future__ import annotations

import math
import multiprocessing
import shutil
import time
from pathlib import Path

from conftest import _writer_process, counter_bytes

NO_WRAP = 2**64


class FakeSysfs:
    def __init__(self, root: Path, static: dict[str, str], live: dict[str, tuple[float, float]]):
        self.root = root
        for rel, text in static.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")
        self.live = list(live)
        for rel, (value, _) in live.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(counter_bytes(str(int(value))))
        ctx = multiprocessing.get_context("fork")
        self._value = ctx.Array("d", [v for v, _ in live.values()])
        # the writer adds power x dt x 1e6: a rate per second is given as rate / 1e6 "watts"
        self._rate = ctx.Array("d", [r / 1e6 for _, r in live.values()])
        self._override = ctx.Array("d", [math.nan] * len(live))
        self._frozen = ctx.Array("b", [0] * len(live))
        self._stop = ctx.Event()
        args = (
            [root / rel for rel in live],
            [NO_WRAP] * len(live),
            self._value,
            self._rate,
            self._override,
            self._frozen,
            self._stop,
            0.001,
        )
        self._proc = ctx.Process(target=_writer_process, args=args, daemon=True)
        self._proc.start()
        time.sleep(0.02)

    def set_value(self, rel: str, value: float, rate_per_s: float | None = None) -> None:
        """Force a file to `value` (a jump, a reset, a new power), then advance at `rate`."""
        i = self.live.index(rel)
        if rate_per_s is not None:
            self._rate[i] = rate_per_s / 1e6
        self._override[i] = float(value)
        deadline = time.monotonic() + 2
        while not math.isnan(self._override[i]) and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._proc.join(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)
