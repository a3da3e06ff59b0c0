"""A stale JIT build lock (left by a killed learner rank) is removed; a live build's lock is waited on."""

import os
import threading
import time

from learner.extension_lock import wait_for_extension_lock


def _lock(tmp_path, monkeypatch, age_s: float):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    lock = tmp_path / "fused_adam" / "lock"
    lock.parent.mkdir()
    lock.touch()
    os.utime(lock, (time.time() - age_s, time.time() - age_s))
    return lock


def test_stale_lock_is_removed(tmp_path, monkeypatch, caplog):
    lock = _lock(tmp_path, monkeypatch, age_s=3600)
    wait_for_extension_lock("fused_adam", stale_after_s=300)
    assert not lock.exists()
    assert "stale build lock" in caplog.text


def test_live_build_lock_is_waited_on_not_removed(tmp_path, monkeypatch):
    lock = _lock(tmp_path, monkeypatch, age_s=0)
    released = threading.Event()

    def build_then_release():
        time.sleep(0.3)
        released.set()
        lock.unlink()

    threading.Thread(target=build_then_release).start()
    wait_for_extension_lock("fused_adam", stale_after_s=300, poll_s=0.05)
    assert released.is_set()


def test_lock_of_a_build_that_never_finishes_is_removed_once_stale(tmp_path, monkeypatch):
    lock = _lock(tmp_path, monkeypatch, age_s=0)
    start = time.monotonic()
    wait_for_extension_lock("fused_adam", stale_after_s=0.5, poll_s=0.05)
    assert not lock.exists() and time.monotonic() - start >= 0.4
