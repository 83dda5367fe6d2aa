"""A loop of 2 ranks on gloo that tracks 3 epochs (run by torchrun in test_ranks.py)."""

from __future__ import annotations

import sys
import time

import torch.distributed as dist

import harness

dist.init_process_group("gloo")
with harness.track("ddp", out=sys.argv[1], probes=["rapl"], timeline_hz=0, epochs=3) as t:
    for epoch in range(3):
        with harness.phase(f"epoch-{epoch + 1}", samples=10):
            time.sleep(0.3)
            dist.barrier()
dist.destroy_process_group()
