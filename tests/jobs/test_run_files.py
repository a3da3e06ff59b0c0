"""Run-directory files survive a kill: whole files are replaced atomically, a torn metrics line is dropped."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from jobs import run_files
from jobs.config import TrainConfig
from jobs.config_loading import save_config
from jobs.training.metrics import MetricsLogger, read_metrics


def test_write_atomic_replaces_whole_file_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    run_files.write_atomic(path, "old")
    run_files.write_atomic(path, "new")
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]  # no temporary left behind


def test_config_kept_whole_when_a_write_dies_before_the_rename(tmp_path: Path, monkeypatch) -> None:
    path = save_config(TrainConfig(), tmp_path / "config.yaml")
    before = path.read_text()

    def killed(*args: object) -> None:
        raise KeyboardInterrupt  # the process dies between writing the temp file and renaming it

    monkeypatch.setattr(os, "replace", killed)
    cfg = TrainConfig()
    cfg.trainer.num_steps = 7
    with pytest.raises(KeyboardInterrupt):
        save_config(cfg, path)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_resume_drops_a_torn_last_metrics_line(tmp_path: Path) -> None:
    log = MetricsLogger(tmp_path, enable_tensorboard=False)
    for step in range(4):
        log.log(step, {"reward/mean": step / 10})
    with log.path.open("a") as fh:  # a kill while step 4 was being appended
        fh.write('{"reward/mean": 0.4, "st')

    log.truncate_after(2)

    assert [r["step"] for r in read_metrics(log.path)] == [0, 1, 2]
    log.log(3, {"reward/mean": 0.3})
    lines = log.path.read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 1, 2, 3]
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
