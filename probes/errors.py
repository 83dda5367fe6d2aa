"""The project's one exception type for errors a user can cause and fix.

It lives in `probes`, the lowest layer, so that `probes`, `benchmarks` and `harness`
can all raise it without breaking the dependency direction (harness -> probes,
harness -> benchmarks). `harness.errors` re-exports it.
"""

from __future__ import annotations


class EnergyHarnessError(Exception):
    """A problem the user can fix: the message names what was wrong and how to fix it."""
