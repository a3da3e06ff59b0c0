"""ChunkQueue: guided self-scheduling shares and re-issue of a dead attempt's chunks (real local Ray)."""

from __future__ import annotations

import pytest
import ray

from actors.chunk_queue import ChunkQueue, PromptChunk

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=1, include_dashboard=False)
    yield
    ray.shutdown()


def _chunks(n: int) -> list[PromptChunk]:
    return [PromptChunk(scenario_ids=[f"s{i}"], group_ids=[i]) for i in range(n)]


def _groups(chunks: list[PromptChunk]) -> list[int]:
    return [g for c in chunks for g in c.group_ids]


def test_shares_shrink_and_are_capped(local_ray):
    queue = ChunkQueue.remote(_chunks(10), 2, 4)
    # ceil(10/2)=5 capped at 4; ceil(6/2)=3; ceil(3/2)=2; ceil(1/2)=1; then empty.
    sizes = [len(ray.get(queue.take.remote(rank))) for rank in (0, 1, 0, 1, 0)]
    assert sizes == [4, 3, 2, 1, 0]
    assert ray.get(queue.stats.remote()) == {"taken": {0: 6, 1: 4}, "requeued": 0, "pending": 0}


def test_new_attempt_of_a_rank_requeues_its_lease_first(local_ray):
    queue = ChunkQueue.remote(_chunks(6), 2, 2)
    ray.get(queue.begin_attempt.remote(0))
    ray.get(queue.begin_attempt.remote(1))
    assert _groups(ray.get(queue.take.remote(0))) == [0, 1]
    assert _groups(ray.get(queue.take.remote(1))) == [2, 3]
    ray.get(queue.begin_attempt.remote(1))  # rank 1 died and its call is retried: 2, 3 come back first
    seen = _groups(ray.get(queue.take.remote(1))) + _groups(ray.get(queue.take.remote(0)))
    seen += _groups(ray.get(queue.take.remote(1)))
    assert seen == [2, 3, 4, 5]
    assert ray.get(queue.stats.remote())["requeued"] == 2
    assert ray.get(queue.take.remote(0)) == []
