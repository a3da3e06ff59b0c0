"""The driver's only door to payloads: every `ray.get` goes through here and is measured.

The single controller must hold refs, never trajectories (docs/architecture.md §2). Counting the bytes it
fetches per step turns that rule into a number a test (and the benchmark) can check: it must stay
small and must not grow with the batch size.
"""

from __future__ import annotations

import pickle
from typing import Any

import ray


class DriverFetcher:
    """`ray.get` with a running total of the (pickled) bytes the driver received."""

    def __init__(self) -> None:
        self.total_bytes = 0

    def get(self, refs: Any, *, timeout: float | None = None) -> Any:
        value = ray.get(refs, timeout=timeout)
        self.total_bytes += len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        return value

    def take(self) -> int:
        """Bytes fetched since the last call (per-step accounting)."""
        taken, self.total_bytes = self.total_bytes, 0
        return taken
