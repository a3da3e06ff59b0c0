"""The engine-layout bench section's arithmetic: its row and the CPU it attributes to the engine."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jobs.benchmarks.engine_layout import _cpu_seconds, layout_row


def test_row_reports_the_share_of_the_learner_rate_kept_while_generating():
    row = layout_row("x", {"generate_s": 1.5, "generate_overlapped_s": 2.0, "learner_rate": 200.0,
                           "learner_rate_overlapped": 150.0, "engine_cpu_per_wall": 1.2})  # fmt: skip
    assert row["learner kept"] == pytest.approx(0.75)
    assert row["generate s (overlapped)"] == 2.0 and row["engine CPU s per wall s"] == 1.2


def test_cpu_seconds_count_descendants_but_not_the_skipped_subtree():
    # Each child burns 0.5 s of its own CPU, reports its exact CPU time, then idles on stdin: the
    # amounts are known however long a loaded machine takes to schedule them (a wall-clock wait
    # gave them too little CPU at load 8).
    busy = [sys.executable, "-c", "import sys, time\nend = time.process_time() + 0.5\n"
            "while time.process_time() < end: pass\nprint(time.process_time(), flush=True)\nsys.stdin.read()"]  # fmt: skip
    before = _cpu_seconds(os.getpid(), skip=-1)
    children = [subprocess.Popen(busy, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    counted, skipped = children
    try:
        counted_cpu, skipped_cpu = (float(child.stdout.readline()) for child in children)
        mid_counted = _cpu_seconds(os.getpid(), skip=skipped.pid) - before
        mid_all = _cpu_seconds(os.getpid(), skip=-1) - before
    finally:
        for child in children:
            child.stdin.close()
            child.wait(timeout=60)
    assert 0.2 < mid_counted < mid_all - 0.2
    # /proc counts whole clock ticks (10 ms), so it may trail a child's own clock by one.
    assert mid_counted > counted_cpu - 0.02, "the counted child's CPU is missing"
    # Between the two walks only this process ran, for a few ms: the difference is the skipped child.
    assert mid_all - mid_counted == pytest.approx(skipped_cpu, abs=0.05)
