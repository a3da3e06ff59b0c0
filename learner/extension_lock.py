"""Clear a stale build lock of a JIT-compiled DeepSpeed op (FusedAdam) before the engine is created.

torch builds DeepSpeed's ops on first use and takes a lock file in the op's build directory every
time it loads one, cached or not; a process killed while holding it (a learner actor SIGKILLed while
FusedAdam compiles) leaves the file behind, and every later rank on that machine waits on it forever.
Builds finish in a minute or two, so a lock older than `stale_after_s` cannot belong to a live build.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from torch.utils.cpp_extension import _get_build_directory

logger = logging.getLogger(__name__)

# A FusedAdam CPU build takes ~1 min on 2 cores; five times that is no longer a build in progress.
STALE_AFTER_S = 300.0


def wait_for_extension_lock(name: str, stale_after_s: float = STALE_AFTER_S, poll_s: float = 1.0) -> None:
    """Return once op `name` has no build lock: wait for a live build, remove a stale lock.

    Args:
        name: the op's extension name (DeepSpeed's FusedAdam is `fused_adam`).
        stale_after_s: a lock whose file is older than this is removed with a warning.
        poll_s: seconds between looks while a (young) lock exists.
    """
    lock = Path(_get_build_directory(name, verbose=False)) / "lock"
    while True:
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return
        if age > stale_after_s:
            logger.warning(
                "removing stale build lock %s (%.0f s old, no build takes that long; left by a killed process)",
                lock,
                age,
            )
            lock.unlink(missing_ok=True)
            return
        time.sleep(poll_s)
