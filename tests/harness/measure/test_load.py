"""other_cpu_pct: CPU time outside the measured process tree, on this machine.

Other processes run on this machine too, so every check is one their load cannot break:
a lower bound from work whose CPU time is known, or a difference between two trackers
sampled at the same instants (the neighbours' load cancels out).
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from harness.measure.load import MachineLoad

TICK_S = 0.01  # /proc/uptime and /proc/PID/stat count in 10 ms steps


def busy(cpu_s: float) -> float:
    """Burn `cpu_s` of this process's CPU time; returns what it burnt."""
    start = time.process_time()
    while time.process_time() - start < cpu_s:
        pass
    return time.process_time() - start


@pytest.fixture
def sleeper():
    """A process that uses no CPU: the root of a tree that is not this one."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_work_outside_the_tree_counts_as_other(sleeper):
    load = MachineLoad(root_pid=sleeper.pid)  # this process is outside that tree
    load.start()
    begin = load.sample()
    burnt_s = busy(0.6)
    end = load.sample()
    load.close()
    capacity_s = load.cpus * (end[0] - begin[0])
    other_pct = load.other_cpu_pct(begin, end)
    assert other_pct is not None
    assert other_pct * capacity_s / 100 >= burnt_s - 3 * TICK_S


CHILD = """
import sys, time
start = time.process_time()
while time.process_time() - start < 0.5:
    pass
print(time.process_time(), flush=True)
sys.stdin.read()  # alive until the parent closes stdin
"""


def test_the_trees_own_work_and_live_children_are_not_other(sleeper):
    mine, elsewhere = MachineLoad(), MachineLoad(root_pid=sleeper.pid)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    mine.tree.refresh()  # the child is a live descendant now
    begin_mine, begin_elsewhere = mine.sample(), elsewhere.sample()
    own_s = busy(0.3)
    child_s = float(child.stdout.readline())  # the child's whole CPU time, burnt meanwhile
    end_mine, end_elsewhere = mine.sample(), elsewhere.sample()
    child.stdin.close()
    child.wait()
    capacity_s = mine.cpus * (end_mine[0] - begin_mine[0])
    tree_s = end_mine[2] - begin_mine[2]
    assert tree_s == pytest.approx(own_s + child_s, abs=0.1)  # start-up of the child, ticks
    difference = elsewhere.other_cpu_pct(begin_elsewhere, end_elsewhere) - mine.other_cpu_pct(
        begin_mine, end_mine
    )
    assert difference == pytest.approx(100 * tree_s / capacity_s, abs=5)


def test_a_child_waited_for_counts_as_the_tree():
    load = MachineLoad()
    begin = load.sample()
    code = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", code], check=True)  # never seen alive by the tree
    end = load.sample()
    assert end[2] - begin[2] >= 0.4 - 2 * TICK_S


def test_a_window_too_short_for_the_idle_counter_has_no_figure():
    load = MachineLoad()
    assert load.other_cpu_pct(load.sample(), load.sample()) is None
    assert load.other_cpu_pct(None, load.sample()) is None
