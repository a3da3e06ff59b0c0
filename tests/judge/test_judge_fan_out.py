"""How the judge ingress cuts a batch's requests into handle calls, counts replicas, and caches verdicts, without Ray."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from judge.serve_app import ReplicaCount, split_for_replicas
from judge.verdicts import JudgeOutput, VerdictCache


@pytest.mark.parametrize(
    ("n", "max_batch_size", "replicas", "sizes"),
    [
        (96, 8, 1, [8] * 12),  # the batch cap decides: the autoscaler sees 12 calls queued
        (96, 128, 1, [96]),  # one replica, one call for the whole batch
        (96, 128, 2, [48, 48]),  # one call per replica
        (10, 4, 1, [4, 3, 3]),  # as few calls as the cap allows, evened out
        (5, 128, 3, [2, 2, 1]),
        (2, 128, 4, [1, 1]),  # never an empty call
        (0, 8, 2, []),
    ],
)
def test_split_for_replicas(n: int, max_batch_size: int, replicas: int, sizes: list[int]) -> None:
    items = list(range(n))
    chunks = split_for_replicas(items, max_batch_size, replicas)
    assert [len(c) for c in chunks] == sizes
    assert [i for c in chunks for i in c] == items  # contiguous, in order: verdicts map back by position


class _Controller:
    """A replica-count lookup that answers `counts` in turn (an exception is raised), counting its calls."""

    def __init__(self, *counts: int | Exception, delay_s: float = 0.0):
        self.counts, self.delay_s, self.calls = list(counts), delay_s, 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self.calls += 1
            answer = self.counts.pop(0)
        time.sleep(self.delay_s)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_replica_count_is_looked_up_once_per_max_age_and_shared_by_concurrent_calls() -> None:
    controller = _Controller(2, 3, delay_s=0.05)
    count = ReplicaCount(controller, max_age_s=0.3, timeout_s=5)

    async def run() -> None:
        assert await asyncio.gather(*(count.get() for _ in range(5))) == [2] * 5  # one lookup for all five
        assert await count.get() == 2 and controller.calls == 1  # still fresh
        await asyncio.sleep(0.35)
        assert await count.get() == 3 and controller.calls == 2  # too old: looked up again

    asyncio.run(run())


def test_replica_count_failures_answer_one_and_are_retried() -> None:
    controller = _Controller(RuntimeError("controller restarting"), 0)
    count = ReplicaCount(controller, max_age_s=60, timeout_s=5)
    slow = ReplicaCount(_Controller(3, delay_s=0.3), max_age_s=60, timeout_s=0.05)

    async def run() -> None:
        assert await count.get() == 1  # the lookup failed: split as for one replica
        assert await count.get() == 1 and controller.calls == 2  # a failure is not cached; 0 running reads as 1
        assert await count.get() == 1 and controller.calls == 2  # a successful lookup is
        assert await slow.get() == 1  # no answer within the timeout

    asyncio.run(run())


def verdict(error: str = "") -> JudgeOutput:
    return JudgeOutput("Score: 1", error, "m", "h", 0, "r")


def test_verdict_cache_claims_settles_and_forgets_failures() -> None:
    async def run() -> None:
        cache = VerdictCache(2)
        ok_future, failed_future = cache.claim(("a",)), cache.claim(("b",))
        assert cache.get(("a",)) is ok_future
        cache.settle(("a",), ok_future, verdict())
        cache.settle(("b",), failed_future, verdict("TimeoutError"))
        assert cache.get(("a",)).result() == verdict() and cache.get(("b",)) is None
        cache.claim(("c",))
        cache.claim(("d",))
        assert cache.get(("a",)) is None and len(cache) == 2  # least recently used goes first

        abandoned = cache.claim(("e",))
        newer = cache.claim(("e",))
        cache.abandon(("e",), abandoned)  # a cancelled claimer must not drop a newer claim of the key
        assert abandoned.cancelled() and cache.get(("e",)) is newer

        off = VerdictCache(0)  # the cache switched off remembers nothing
        off.claim(("a",))
        assert off.get(("a",)) is None and len(off) == 0

    asyncio.run(run())
