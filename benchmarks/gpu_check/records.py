"""What the check records and shares: statuses, time budgets, one step's outcome, the
context the steps fill in, and the JSON-safe copy of figures. Standard library only."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
NO_GPU = "no NVIDIA GPU/NVML on this machine"


@dataclass(frozen=True)
class Budget:
    """How long each step measures (s) and how hard; `FULL` for a GPU, `QUICK` for tests."""

    idle_s: float
    poll_s: float
    poll_hz: float
    warmup_s: float
    load_s: float
    sample_hz: float
    matmul_n: int
    overhead_pairs: int
    suite_repetitions: int
    suite_min_window_s: float
    suite_idle_s: float
    calibrate_seconds: float
    calibrate_idle_s: float
    calibrate_rounds: int

    def step_budget_s(self, number: int) -> float:
        """Planned wall time of a step (s), for the record; steps 5-6 include preparation."""
        return {
            1: 10.0,
            2: self.idle_s + self.poll_s + 5.0,
            3: self.warmup_s + self.load_s + 10.0,
            4: 10.0,
            5: 150.0 if self.suite_repetitions > 1 else 60.0,
            6: 60.0 if self.calibrate_rounds > 1 else 20.0,
        }[number]


FULL = Budget(
    idle_s=10.0,
    poll_s=3.0,
    poll_hz=1000.0,
    warmup_s=2.0,
    load_s=15.0,
    sample_hz=50.0,
    matmul_n=8192,
    overhead_pairs=2000,
    suite_repetitions=3,
    suite_min_window_s=1.0,
    suite_idle_s=3.0,
    calibrate_seconds=2.0,
    calibrate_idle_s=2.0,
    calibrate_rounds=2,
)
QUICK = Budget(
    idle_s=1.0,
    poll_s=1.0,
    poll_hz=1000.0,
    warmup_s=0.5,
    load_s=2.0,
    sample_hz=50.0,
    matmul_n=4096,
    overhead_pairs=200,
    suite_repetitions=1,
    suite_min_window_s=0.5,
    suite_idle_s=1.0,
    calibrate_seconds=0.5,
    calibrate_idle_s=0.5,
    calibrate_rounds=1,
)


@dataclass
class Step:
    """One step's outcome: status, figures (units in their names), checks, notes."""

    number: int
    name: str
    title: str
    budget_s: float
    status: str = OK
    reason: str = ""
    duration_s: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        """Print one line tagged with the step."""
        print(f"[{self.number} {self.name}] {text}", flush=True)

    def check(self, name: str, passed: bool, detail: str) -> bool:
        """Record a pass/fail check; a failed one fails the step."""
        self.checks.append({"name": name, "passed": bool(passed), "detail": detail})
        self.say(f"check {'PASSED' if passed else 'FAILED'}: {name}: {detail}")
        if not passed:
            self.status = FAILED
        return passed

    def skip(self, reason: str) -> None:
        """Mark the step skipped (not a failure) and say why."""
        self.status, self.reason = SKIPPED, reason
        self.say(f"skipped: {reason}")

    def fail(self, reason: str) -> None:
        """Mark the step failed and say why."""
        self.status, self.reason = FAILED, reason
        self.say(f"FAILED: {reason}")

    def note(self, text: str) -> None:
        """A remark worth keeping next to the figures."""
        self.notes.append(text)
        self.say(f"note: {text}")


@dataclass
class Context:
    """What the steps find out and share."""

    budget: Budget
    nvml: Any = None  # the pynvml module, once NVML started
    no_gpu_reason: str = ""  # why there is no NVIDIA GPU/NVML here ("" if there is one)
    handle: Any = None  # NVML handle of gpu:0 (cuda:0), once step 1 passed
    gpu_domains: list[str] = field(default_factory=list)
    rapl_available: bool = False
    cuda_reason: str = ""  # why torch cannot run on the GPU ("" if it can)
    suite_cases: Any = None  # step 5's ok cases (pandas DataFrame), for step 6
    suite_probes: list[str] = field(default_factory=list)
    run_dir: Path | None = None

    def gpu_skip_reason(self, needs_cuda: bool = False) -> str:
        """Why a GPU step cannot run, or "" when it can."""
        if self.no_gpu_reason:
            return f"{NO_GPU}: {self.no_gpu_reason}"
        if self.handle is None:
            return "step 1 found no usable NVML energy counter (see its checks)"
        if needs_cuda and self.cuda_reason:
            return self.cuda_reason
        return ""

    def measuring_probes(self) -> list[str]:
        """The probes of steps 5 and 6: those already chosen, else nvml (+ rapl if readable)."""
        return self.suite_probes or (["nvml", "rapl"] if self.rapl_available else ["nvml"])


def finite(value: Any) -> Any:
    """A JSON-safe copy: NaN and infinities become None, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def as_text(value: object) -> str:
    """An NVML answer or error as text (older bindings return bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)
