"""The `openai` judge backend: any OpenAI-compatible `/v1/chat/completions` endpoint over httpx.

Hosted APIs and `vllm serve` processes speak the same protocol, so one backend covers both. Requests
run concurrently up to `max_concurrency`; 429, 5xx, timeouts and connection errors are retried with
capped exponential backoff (a `Retry-After` header is honoured up to the cap); any other failure is
final. A request that fails for good yields its own error entry (status `judge_error` downstream)
instead of failing the whole batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx

from judge.backends.base import JudgeRequest
from judge.serve_config import OpenAIBackendConfig, is_loopback

logger = logging.getLogger(__name__)

# HTTP statuses worth retrying: rate limiting, request timeout and server-side failures.
_RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))


class JudgeCallError(RuntimeError):
    """One judge request failed for good (non-retryable status, or retries exhausted)."""


class OpenAIBackend:
    """Judge through an OpenAI-compatible chat-completions endpoint."""

    def __init__(self, cfg: OpenAIBackendConfig):
        if not cfg.model:
            raise ValueError("openai backend: set judge_pool.openai.model to the judge model name the endpoint serves")
        self.cfg = cfg
        self.name = "openai"
        self.model = cfg.model
        api_key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
        host = urlsplit(cfg.base_url).hostname or ""
        if api_key and cfg.base_url.startswith("http://") and not is_loopback(host):
            # Plain HTTP off this machine would put the key on the wire in clear text.
            raise ValueError(
                f"refusing to send the API key from ${cfg.api_key_env} over plain http:// to {host}: use an "
                "https:// judge_pool.openai.base_url, a loopback host (127.0.0.1, ::1, localhost), or unset "
                f"{cfg.api_key_env} (or set judge_pool.openai.api_key_env='') for an endpoint that needs no key"
            )
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._url = cfg.base_url.rstrip("/") + "/chat/completions"

    def complete(self, requests: Sequence[JudgeRequest]) -> list[str | JudgeCallError]:
        """Raw completion text per request, or the JudgeCallError that request ended with.

        Synchronous on purpose (the backend protocol is); the Serve replica calls it in a worker
        thread, so the event loop made here never nests in the replica's own loop.
        """
        return asyncio.run(self._complete_all(list(requests)))

    async def _complete_all(self, requests: list[JudgeRequest]) -> list[str | JudgeCallError]:
        limit = asyncio.Semaphore(self.cfg.max_concurrency)
        timeout = httpx.Timeout(self.cfg.timeout_s)
        async with httpx.AsyncClient(timeout=timeout, headers=self._headers) as client:

            async def one(request: JudgeRequest) -> str | JudgeCallError:
                async with limit:
                    try:
                        return await self._post_with_retries(client, request)
                    except JudgeCallError as exc:
                        return exc

            return list(await asyncio.gather(*(one(r) for r in requests)))

    async def _post_with_retries(self, client: httpx.AsyncClient, request: JudgeRequest) -> str:
        body = {
            "model": self.cfg.model,
            "messages": list(request.messages),
            "max_tokens": self.cfg.max_tokens,
            "temperature": self.cfg.temperature,
            "seed": request.seed,
        }
        for attempt in range(self.cfg.max_retries + 1):
            retry_after: float | None = None
            try:
                response = await client.post(self._url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                problem = f"{type(exc).__name__}"
            else:
                if response.status_code == 200:
                    return _content(response)
                problem = f"HTTP {response.status_code}"
                if response.status_code not in _RETRYABLE_STATUS:
                    raise JudgeCallError(f"judge endpoint answered {problem} (not retryable)")
                retry_after = _retry_after(response)
            if attempt == self.cfg.max_retries:
                raise JudgeCallError(f"judge endpoint failed after {attempt + 1} attempts; last: {problem}")
            delay = min(self.cfg.backoff_cap_s, retry_after or self.cfg.backoff_base_s * 2**attempt)
            logger.debug("judge request: %s, retry %d in %.2fs", problem, attempt + 1, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def check_health(self) -> None:
        """Nothing to probe for free: an outage shows per request (retries, then `judge_error`)."""

    def close(self) -> None:
        """Nothing held between calls: each `complete` opens and closes its own HTTP client."""


def _content(response: httpx.Response) -> str:
    """The first choice's message text; a malformed body is a final error, not a retry."""
    try:
        content = response.json()["choices"][0]["message"].get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise JudgeCallError(f"judge endpoint returned a malformed completion ({type(exc).__name__})") from None
    return content or ""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
