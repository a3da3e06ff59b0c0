"""The engine-layout bench section's arithmetic: its row and the CPU it attributes to the engine."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from jobs.benchmarks.engine_layout import _cpu_seconds, layout_row


def test_row_reports_the_share_of_the_learner_rate_kept_while_generating():
    row = layout_row("x", {"generate_s": 1.5, "generate_overlapped_s": 2.0, "learner_rate": 200.0,
                           "learner_rate_overlapped": 150.0, "engine_cpu_per_wall": 1.2})  # fmt: skip
    assert row["learner kept"] == pytest.approx(0.75)
    assert row["generate s (overlapped)"] == 2.0 and row["engine CPU s per wall s"] == 1.2


def test_cpu_seconds_count_descendants_but_not_the_skipped_subtree():
    busy = [sys.executable, "-c", "import time\nend = time.process_time() + 1.0\nwhile time.process_time() < end: pass"]
    before = _cpu_seconds(os.getpid(), skip=-1)
    counted, skipped = subprocess.Popen(busy), subprocess.Popen(busy)
    time.sleep(0.8)
    mid_counted = _cpu_seconds(os.getpid(), skip=skipped.pid) - before
    mid_all = _cpu_seconds(os.getpid(), skip=-1) - before
    counted.wait()
    skipped.wait()
    # Both children have burned ~0.7 s each by now (2 cores); the skipped one adds only to the full count.
    assert 0.2 < mid_counted < mid_all - 0.2
