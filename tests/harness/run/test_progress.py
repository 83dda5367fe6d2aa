"""The run's ETA: epochs of training left x seconds per epoch + windows left x seconds each."""

from __future__ import annotations

import pytest
from rich.console import Console

from harness.run.progress import Eta, RunProgress, eta_text
from harness.spec.case import Case


def test_the_eta_is_unknown_until_an_epoch_is_timed_then_counts_training():
    eta = Eta(epochs_left=10, windows_left=4, measure_prior_s=5.0)
    assert eta.remaining_s(now=0.0) is None
    eta.epoch_done(7.0)  # 9 epochs of 7 s left, then 4 windows of 5 s (the prior)
    assert eta.remaining_s(now=7.0) == pytest.approx(9 * 7.0 + 4 * 5.0)
    for _ in range(9):
        eta.epoch_done(6.0)
    eta.measuring_since = 70.0
    assert eta.remaining_s(now=72.0) == pytest.approx(4 * 5.0 - 2.0)  # 2 s of it spent
    eta.window_done(now=78.0)  # that window took 8 s: the rest are expected to as well
    assert eta.remaining_s(now=78.0) == pytest.approx(3 * 8.0)
    eta.measuring_since = 78.0
    eta.window_done(now=84.0, count=2)  # a torchrun case: two windows in 6 s
    assert eta.windows_left == 1 and eta.remaining_s(now=84.0) == pytest.approx((8 + 3) / 2)


def test_a_run_from_cache_has_an_eta_at_once():
    assert Eta(0, 3, 4.0).remaining_s(now=0.0) == pytest.approx(12.0)


def test_eta_words():
    assert eta_text(None) == "ETA after the first epoch"
    assert eta_text(65.4) == "ETA 1:05"
    assert eta_text(3725) == "ETA 1:02:05"


def test_the_bar_names_the_exact_case_with_its_brackets():
    clock = iter(float(t) for t in range(100))
    console = Console(record=True, width=200, force_terminal=True)
    case = Case("lenet5", "digits", "magnitude", (("sparsity", 0.5),), "inference", 64, "cpu")
    with RunProgress(console, Eta(0, 1, 1.0), clock=lambda: next(clock)) as progress:
        progress.start_case(case)
        progress.measuring()
        description = progress.progress.tasks[0].description
        progress.progress.refresh()
    assert description == "lenet5/magnitude[sparsity=0.5]/inference/bs64/cpu: measuring"
    assert "magnitude[sparsity=0.5]" in console.export_text()  # not taken for markup


def test_the_bar_counts_windows_and_names_the_round():
    clock = iter(float(t) for t in range(100))
    console = Console(record=True, width=200, force_terminal=True)
    case = Case("lenet5", "digits", "dense", (), "inference", 64, "cpu", control=True)
    with RunProgress(console, Eta(0, 4, 1.0), clock=lambda: next(clock)) as progress:
        progress.window(case, 2)
        description = progress.progress.tasks[0].description
        progress.window_done()
        progress.add_windows(2)  # a round measured again
        progress.skip_windows(1)  # a case that failed
        task = progress.progress.tasks[0]
    assert description == "lenet5/dense (control)/inference/bs64/cpu: round 3"
    assert (task.completed, task.total, progress.eta.windows_left) == (1, 5, 4)


def test_the_eta_stays_whole_at_80_columns():
    clock = iter(float(t) for t in range(100))
    console, out = Console(width=80), Console(record=True, width=80)
    case = Case(
        "torchvision.models:resnet50",
        "cifar10",
        "magnitude",
        (("sparsity", 0.5),),
        "training",
        256,
        "cuda:0",
    )
    with RunProgress(console, Eta(3, 4, 1.0), clock=lambda: next(clock)) as progress:
        progress.start_case(case)
        progress.phase("fine-tuning, epoch 2 of 3")
        out.print(progress.progress.make_tasks_table(progress.progress.tasks))
    lines = out.export_text().splitlines()
    assert len(lines) == 1 and lines[0].rstrip().endswith("0/4 ETA after the first epoch")
    assert lines[0].startswith("torchvision.models:resnet50/magnitud…")  # its end is cut
