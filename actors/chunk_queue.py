"""The work queue of a pool's generation waves, and its work item.

Kept apart from the engine modules: the queue actor's process imports this file only (not vLLM).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
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


@dataclass
class _Wave:
    """One wave's chunks not yet handed out, and the chunks each rank's current call holds."""

    pending: list[PromptChunk]
    max_chunks_per_take: int
    leases: dict[int, list[PromptChunk]] = field(default_factory=dict)


class ChunkSchedule:
    """Every wave of one pool, handed out by guided self-scheduling, with a lease per (wave, rank).

    Plain Python, so its rules are unit-tested without Ray; the pool runs it as the :data:`ChunkQueue` actor.

    One actor for the pool's life rather than one per wave: creating an actor starts a worker
    process, which cost every wave ~0.5 s before its first sample on a 2-core box (measured).

    A (wave, rank) lease lives until that rank's engine process, in a later call, reports the call
    that held it as finished: then its batch was returned. A restarted engine reports nothing, so a
    dead attempt's lease stays until Ray's retry of that call re-takes it, in whatever order Ray runs
    the retry and the rank's later calls (it does not keep their submission order; measured).
    """

    def __init__(self, num_engines: int):
        self.num_engines = num_engines
        self.waves: dict[int, _Wave] = {}
        # Totals over all waves, for tests and drills: chunks taken per rank (re-issued ones count
        # again) and chunks re-issued.
        self.taken: dict[int, int] = {}
        self.requeued = 0

    def add_wave(self, wave: int, chunks: list[PromptChunk], max_chunks_per_take: int) -> int:
        """Queue wave `wave` (ids never repeat); returns `wave`, so engines get it once it is queued."""
        assert wave not in self.waves, f"wave {wave} queued twice"
        self.waves[wave] = _Wave(list(chunks), max_chunks_per_take)
        return wave

    def take(
        self, wave: int, rank: int, first: bool = False, finished: Sequence[int] = ()
    ) -> tuple[list[PromptChunk], bool]:
        """The next share of `wave` for `rank`, and whether chunks are left after it.

        Args:
            wave: the wave id `add_wave` returned.
            rank: the engine's rank.
            first: the first take of a call: chunks an earlier, dead attempt of it took go back to the front.
            finished: with `first`, waves whose calls this engine process finished since its last call.
        """
        for old in finished:
            self._release(old, rank)
        state = self.waves.get(wave)
        if state is None:  # every chunk was generated and returned, and the wave forgotten
            return [], False
        if first:
            lost = state.leases.pop(rank, [])
            state.pending[:0] = lost
            self.requeued += len(lost)
        share = min(state.max_chunks_per_take, math.ceil(len(state.pending) / self.num_engines))
        chunks, state.pending = state.pending[:share], state.pending[share:]
        if chunks:
            state.leases.setdefault(rank, []).extend(chunks)
        self.taken[rank] = self.taken.get(rank, 0) + len(chunks)
        return chunks, bool(state.pending)

    def _release(self, wave: int, rank: int) -> None:
        state = self.waves.get(wave)
        if state is not None:
            state.leases.pop(rank, None)
            if not state.pending and not state.leases:
                del self.waves[wave]

    def stats(self) -> dict[str, Any]:
        """Chunks taken per rank and re-issued (totals), chunks pending and waves still held."""
        return {
            "taken": dict(self.taken),
            "requeued": self.requeued,
            "pending": sum(len(s.pending) for s in self.waves.values()),
            "waves": len(self.waves),
        }


# The schedule as the pool's queue actor; zero CPUs: it only hands out chunk lists.
ChunkQueue = ray.remote(num_cpus=0)(ChunkSchedule)
