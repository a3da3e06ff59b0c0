"""A judge's answer with its provenance, and the ingress's cache of answers (one judge call per distinct request).

Kept apart from the Serve application so the cache's rules (concurrent duplicates wait for one call,
failures are never remembered) are plain asyncio code a unit test can drive without Ray.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from judge.backends.base import JudgeRequest


@dataclass(frozen=True)
class JudgeOutput:
    """A judge's raw answer to one request and where it came from (provenance travels with it)."""

    # Raw completion text; empty when `error` is set.
    text: str
    # Why there is no answer ("" = answered); downstream this becomes status `judge_error`.
    error: str
    # Judge model that answered (backend's model name).
    judge_model: str
    # Hash of the rendered judge prompt (judge/backends/base.py `prompt_hash`).
    prompt_hash: str
    # Sampling seed the backend used.
    seed: int
    # Serve replica that answered ("" when no replica did).
    replica: str
    # True when served from the cache instead of a fresh judge call.
    cached: bool = False


def candidate_hash(request: JudgeRequest) -> str:
    """sha256 over the request's candidate texts, in order (part of the verdict cache key)."""
    digest = hashlib.sha256()
    for text in request.candidates:
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()


class VerdictCache:
    """LRU of in-flight or finished verdicts; a future per key so concurrent duplicates wait for one call.

    Size 0 holds nothing (the cache is off): every claim is evicted at once, so every request is judged.
    """

    def __init__(self, size: int):
        self._size = size
        self._entries: OrderedDict[tuple[str, ...], asyncio.Future[JudgeOutput]] = OrderedDict()

    def get(self, key: tuple[str, ...]) -> asyncio.Future[JudgeOutput] | None:
        future = self._entries.get(key)
        if future is not None:
            self._entries.move_to_end(key)
        return future

    def claim(self, key: tuple[str, ...]) -> asyncio.Future[JudgeOutput]:
        """A new entry for `key` that later identical requests wait on; the claimer must settle or abandon it."""
        future: asyncio.Future[JudgeOutput] = asyncio.get_running_loop().create_future()
        self._entries[key] = future
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return future

    def settle(self, key: tuple[str, ...], future: asyncio.Future[JudgeOutput], verdict: JudgeOutput) -> None:
        """Answer the waiters; a failure is not remembered, so a later identical request tries again."""
        future.set_result(verdict)
        if verdict.error:
            self._drop(key, future)

    def abandon(self, key: tuple[str, ...], future: asyncio.Future[JudgeOutput]) -> None:
        """The claimer was cancelled: waiters are cancelled too, and the next caller judges afresh."""
        future.cancel()
        self._drop(key, future)

    def _drop(self, key: tuple[str, ...], future: asyncio.Future[JudgeOutput]) -> None:
        if self._entries.get(key) is future:  # not a newer claim of the same key
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
