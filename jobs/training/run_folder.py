"""The driver's files of a run (config, metrics, summary, TensorBoard, curves), kept in `trainer.storage`.

The driver always writes a local directory with the crash-safe writes of jobs/run_files.py. When
`trainer.storage` is a path (local disk or a shared mount) that directory *is* the storage: nothing is
copied. When it is an object-store URI the directory is a private staging copy, uploaded by `push`
(before every checkpoint, so storage never holds a checkpoint newer than its metrics, and at the end);
`--resume` first `pull`s the files back. Checkpoints never pass through here: the learner ranks write
them to storage themselves (learner/checkpoint.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from cluster.storage import RunStorage
from jobs.run_files import write_atomic

# What a resumed run reads back: its config, the metrics it appends to, the summary it extends.
RESUMED_FILES = ("config.yaml", "metrics.jsonl", "summary.json")


class RunFolder:
    """A run's storage and the local directory the driver writes (the same place for a path)."""

    def __init__(self, storage: RunStorage):
        self.storage = storage
        if storage.is_local:
            self.local = storage.local_path()
        else:
            self.local = Path(tempfile.mkdtemp(prefix="privacyalign-run-"))  # owner-only (0700)

    def create(self) -> None:
        """Make the run directory (owner-only) where the run is written in place."""
        if self.storage.is_local:
            self.local.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.local, 0o700)

    def pull(self) -> None:
        """Copy RESUMED_FILES that exist in an object store into the staging directory."""
        if self.storage.is_local:
            return
        for name in RESUMED_FILES:
            text = self.storage.read_text(name)
            if text is not None:
                write_atomic(self.local / name, text)

    def push(self) -> None:
        """Upload the staging directory to an object store (each file is one atomic PUT)."""
        if not self.storage.is_local:
            self.storage.upload(self.local, "")

    def close(self) -> None:
        """Remove the staging copy (an object store holds what was pushed)."""
        if not self.storage.is_local:
            shutil.rmtree(self.local, ignore_errors=True)
