"""Crash-safe writes of a run directory's files (config.yaml, summary.json, metrics.jsonl).

A job can be killed at any instruction (OOM, preemption, Ctrl-C). A whole-file write therefore goes
to a temporary file that replaces the target only once it is complete and on disk, so a reader (or
`--resume`) sees the old file or the new one, never half of one. Append-only logs get one `write` per
record, flushed and fsynced, so a kill can tear at most the last line.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def write_atomic(path: str | Path, text: str, mode: int = 0o600) -> Path:
    """Replace `path` with `text` atomically (temp file in the same directory + fsync + `os.replace`).

    Args:
        path: the file to write; its directory must exist.
        text: the whole new content.
        mode: permission bits of the new file (run files are owner-only by default).

    Returns:
        `path`.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # The rename itself is durable only once the directory entry is.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def append_line(path: str | Path, line: str, mode: int = 0o600) -> None:
    """Append one record (`line` plus a newline) with a single write, flushed and fsynced."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
    try:
        written = os.write(fd, data)
        while written < len(data):  # a regular file takes it whole unless the disk is full
            written += os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        os.close(fd)
