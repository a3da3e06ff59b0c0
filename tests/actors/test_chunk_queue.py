"""ChunkSchedule (the ChunkQueue actor's logic), without Ray: guided self-scheduling shares, re-issue of a
dead attempt's chunks, finished waves forgotten. The actor itself runs in tests/actors/test_rollout_pool.py."""

from __future__ import annotations

from actors.chunk_queue import ChunkSchedule, PromptChunk


def _chunks(first: int, n: int) -> list[PromptChunk]:
    return [PromptChunk(scenario_ids=[f"s{i}"], group_ids=[i]) for i in range(first, first + n)]


def _take(
    queue: ChunkSchedule, wave: int, rank: int, first: bool = False, finished: tuple[int, ...] = ()
) -> tuple[list[int], bool]:
    chunks, more = queue.take(wave, rank, first, finished)
    return [g for c in chunks for g in c.group_ids], more


def test_shares_shrink_and_are_capped():
    queue = ChunkSchedule(2)
    assert queue.add_wave(0, _chunks(0, 10), 4) == 0
    # ceil(10/2)=5 capped at 4; ceil(6/2)=3; ceil(3/2)=2; ceil(1/2)=1; then empty.
    takes = [_take(queue, 0, rank, first) for rank, first in ((0, True), (1, True), (0, False), (1, False), (0, False))]
    assert [len(groups) for groups, _ in takes] == [4, 3, 2, 1, 0]
    assert [more for _, more in takes] == [True, True, True, False, False]
    assert queue.stats() == {"taken": {0: 6, 1: 4}, "requeued": 0, "pending": 0, "waves": 1}


def test_retried_call_requeues_its_lease_in_any_order_and_finished_waves_are_forgotten():
    queue = ChunkSchedule(2)
    queue.add_wave(0, _chunks(0, 6), 2)
    assert _take(queue, 0, 0, first=True) == ([0, 1], True)
    assert _take(queue, 0, 1, first=True) == ([2, 3], True)
    # Rank 1 died and its call is retried: 2, 3 come back first, then the rest is shared out.
    assert _take(queue, 0, 1, first=True) == ([2, 3], True)
    assert _take(queue, 0, 0) == ([4], True)
    assert _take(queue, 0, 1) == ([5], False)
    assert queue.stats()["requeued"] == 2

    queue.add_wave(1, _chunks(6, 2), 2)
    # Rank 0 finished wave 0 and says so; rank 1 dies again still holding 2, 3, 5 of wave 0, and
    # Ray runs its restarted engine's wave-1 call before the wave-0 retry: the lease must survive that.
    assert _take(queue, 1, 0, first=True, finished=(0,)) == ([6], True)
    assert _take(queue, 1, 1, first=True) == ([7], False)
    assert _take(queue, 0, 1, first=True, finished=(1,)) == ([2, 3], True)
    assert _take(queue, 0, 1) == ([5], False)
    assert queue.stats() == {"taken": {0: 4, 1: 9}, "requeued": 5, "pending": 0, "waves": 2}

    # Both ranks report their finished calls at their next wave: the queue keeps only that wave.
    queue.add_wave(2, [], 1)
    assert _take(queue, 2, 0, first=True, finished=(1,)) == ([], False)
    assert _take(queue, 2, 1, first=True, finished=(0,)) == ([], False)
    assert queue.stats()["waves"] == 1
    # A late first call on a forgotten wave has nothing to do.
    assert _take(queue, 0, 0, first=True) == ([], False)
