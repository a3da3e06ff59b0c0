"""The work queue of one generation wave, and its work item.

Kept apart from the engine modules: the queue actor's process imports this file only (not vLLM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import ray


@dataclass(frozen=True)
class PromptChunk:
    """A work item: whole prompt groups. `prompt_token_ids` None = render from the actor's rows."""

    scenario_ids: list[str]
    group_ids: list[int]
    prompt_token_ids: list[list[int]] | None = None

    def __len__(self) -> int:
        return len(self.scenario_ids)


@ray.remote(num_cpus=0)
class ChunkQueue:
    """One wave's chunks, handed out by guided self-scheduling, with a lease per engine rank."""

    def __init__(self, chunks: list[PromptChunk], num_engines: int, max_chunks_per_take: int):
        self.pending = list(chunks)
        self.num_engines = num_engines
        self.max_chunks_per_take = max_chunks_per_take
        self.leases: dict[int, list[PromptChunk]] = {}
        self.taken: dict[int, int] = {}
        self.requeued = 0

    def begin_attempt(self, rank: int) -> None:
        """A (re)started call of `rank`: chunks an earlier attempt of it took go back to the front."""
        lost = self.leases.pop(rank, [])
        self.pending[:0] = lost
        self.requeued += len(lost)

    def take(self, rank: int) -> list[PromptChunk]:
        share = min(self.max_chunks_per_take, math.ceil(len(self.pending) / self.num_engines))
        chunks, self.pending = self.pending[:share], self.pending[share:]
        self.leases.setdefault(rank, []).extend(chunks)
        self.taken[rank] = self.taken.get(rank, 0) + len(chunks)
        return chunks

    def stats(self) -> dict[str, Any]:
        """Chunks taken per rank (re-issued ones count again), re-issued chunks, chunks left."""
        return {"taken": dict(self.taken), "requeued": self.requeued, "pending": len(self.pending)}
