"""What a run shows while it works: one bar over the windows to measure, the exact case
and what it is doing (preparing, round 3/5), and an ETA that counts preparation
(training, fine-tuning) as well as measuring.

The ETA is remaining epochs x seconds per epoch + remaining windows x seconds per
window, each the mean of the last few. Epochs to run come from the model cache
(`training_plan`: what is not cached yet); seconds per epoch and per case are learned
as the run goes (a prior from the suite's windows until the first window is measured).
Until the first epoch of a run that must train has ended, the ETA is unknown and says
so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn
from rich.table import Column
from rich.text import Text

from harness.errors import EnergyHarnessError
from harness.prepare.hardware import check_device
from harness.prepare.pipeline import training_plan
from harness.run.case import CaseContext, CaseProgress, variant_params
from harness.spec.case import Case

if TYPE_CHECKING:
    from rich.progress import Task

Clock = Callable[[], float]
RECENT = 3  # epochs or cases whose mean predicts the next ones


def _recent_mean(values: list[float], default: float) -> float:
    recent = values[-RECENT:]
    return sum(recent) / len(recent) if recent else default


@dataclass
class Eta:
    """Remaining seconds of a run: epochs of training left and windows left to measure.

    `measure_prior_s`: seconds per window until one has been timed. Times are given by
    the caller (`now`), so the model is exact to test.
    """

    epochs_left: int
    windows_left: int
    measure_prior_s: float
    epoch_s: list[float] = field(default_factory=list)
    measure_s: list[float] = field(default_factory=list)
    measuring_since: float | None = None

    def epoch_done(self, seconds: float) -> None:
        self.epoch_s.append(seconds)
        self.epochs_left = max(0, self.epochs_left - 1)

    def window_done(self, now: float, count: int = 1) -> None:
        """`count` windows have ended (a torchrun case reports its windows at once)."""
        if self.measuring_since is not None:
            self.measure_s.append((now - self.measuring_since) / count)
        self.measuring_since = None
        self.windows_left = max(0, self.windows_left - count)

    def remaining_s(self, now: float) -> float | None:
        """Seconds left, or None while an epoch is to run and none has been timed. Rates
        are the mean of the last RECENT epochs and windows: the first ones are slower."""
        if self.epochs_left and not self.epoch_s:
            return None
        per_epoch = _recent_mean(self.epoch_s, 0.0)
        per_window = _recent_mean(self.measure_s, self.measure_prior_s)
        spent = now - self.measuring_since if self.measuring_since is not None else 0.0
        return self.epochs_left * per_epoch + max(0.0, self.windows_left * per_window - spent)


def eta_text(seconds: float | None) -> str:
    """`ETA 1:05`, `ETA 1:02:05`, or `ETA after the first epoch` while unknown."""
    if seconds is None:
        return "ETA after the first epoch"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"ETA {hours}:{minutes:02d}:{secs:02d}" if hours else f"ETA {minutes}:{secs:02d}"


class _EtaColumn(ProgressColumn):
    def __init__(self, eta: Eta, clock: Clock) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self.eta, self.clock = eta, clock

    def render(self, task: Task) -> Text:
        return Text(eta_text(self.eta.remaining_s(self.clock())), style="progress.remaining")


_BAR_WIDTH = 12


class _CaseColumn(ProgressColumn):
    """The case and its phase, cut (with an ellipsis) to leave the bar, the count and the
    whole ETA their room: the ETA never wraps, the case's name gives way."""

    def __init__(self, console: Console, eta: Eta, clock: Clock) -> None:
        super().__init__(table_column=Column(no_wrap=True, overflow="ellipsis"))
        self.console, self.eta, self.clock = console, eta, clock

    def render(self, task: Task) -> Text:
        count = f"{int(task.completed)}/{int(task.total or 0)}"
        eta = eta_text(self.eta.remaining_s(self.clock()))
        room = self.console.width - (_BAR_WIDTH + len(count) + len(eta) + 3)
        text = Text(task.description)
        text.truncate(max(8, room), overflow="ellipsis")
        return text


def planned_epochs(ctx: CaseContext, todo: list[Case]) -> int:
    """Epochs of training and fine-tuning the cases still need (each model once when the
    run has a cache). A case whose plan cannot be made counts none: it says why itself."""
    s = ctx.suite.settings
    plans: list[dict[str, int]] = []
    for case in todo:
        try:
            check_device(case.device)
            plans.append(
                training_plan(
                    case.model,
                    ctx.dataset(case),
                    case.variant,
                    variant_params(case, ctx.suite),
                    seed=s.seed,
                    train_config=ctx.suite.train_config(),
                    cache=ctx.cache,
                    model_options=case.factory_options,
                )
            )
        except (EnergyHarnessError, OSError, ValueError):
            continue
    if ctx.cache is None:  # nothing is kept: every case prepares its models again
        return sum(sum(plan.values()) for plan in plans)
    return sum({k: v for plan in plans for k, v in plan.items()}.values())


class RunProgress(CaseProgress):
    """The bar (transient), the case and its phase, lines that stay, and the ETA."""

    def __init__(self, console: Console, eta: Eta, clock: Clock = time.monotonic) -> None:
        self.eta, self.clock = eta, clock
        self.progress = Progress(
            _CaseColumn(console, eta, clock),  # first: a narrow terminal cuts the phase
            BarColumn(bar_width=_BAR_WIDTH),
            MofNCompleteColumn(),
            _EtaColumn(eta, clock),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task("", total=eta.windows_left)
        self.case_label = ""
        self.last_mark = clock()

    def __enter__(self) -> RunProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def say(self, message: str) -> None:
        """A line that stays above the bar, as it is (no markup), wrapped at spaces and
        indented."""
        self.progress.console.print(Padding(Text(message), (0, 0, 0, 2)), highlight=False)

    def phase(self, text: str) -> None:
        """What the current case is doing, in the bar."""
        self.progress.update(self.task, description=f"{self.case_label}: {text}")

    def start_case(self, case: Case) -> None:
        self.case_label = case.case_id
        self.last_mark = self.clock()
        self.phase("preparing")

    def epoch_done(self, epoch: int, mean_loss: float) -> None:
        now = self.clock()
        self.eta.epoch_done(now - self.last_mark)
        self.last_mark = now

    def measuring(self) -> None:
        self.eta.measuring_since = self.clock()
        self.phase("measuring")

    def window(self, case: Case, round_no: int) -> None:
        self.case_label = case.case_id
        self.eta.measuring_since = self.clock()
        self.phase(f"round {round_no + 1}")

    def window_done(self, count: int = 1) -> None:
        self.eta.window_done(self.clock(), count)
        self.progress.advance(self.task, count)

    def add_windows(self, count: int) -> None:
        self.eta.windows_left += count
        self.progress.update(self.task, total=(self.progress.tasks[0].total or 0) + count)

    def skip_windows(self, count: int) -> None:
        """A case that will not be measured: its windows leave the plan."""
        self.eta.windows_left = max(0, self.eta.windows_left - count)
        self.progress.update(self.task, total=max(0, (self.progress.tasks[0].total or 0) - count))
