"""The judge pool as a Ray Serve application (docs/architecture.md §2.1): autoscaled judge replicas behind one ingress.

```
trainer ──ObjectRef[TrajectoryBatch]──► JudgeIngress.score ─┬─ plan requests (judge/reward.py)
HTTP POST <prefix> (bearer token) ────► JudgeIngress.__call__│  cache / fan out / retry on replica death
                                                            ├──► JudgeDeployment.judge ×N  (@serve.batch → backend)
                                                            └─ parse + rewards (judge/reward.py)
```

The ingress owns nothing but plumbing: judge/reward.py plans the requests and turns raw verdicts into
rewards; the ingress hands it a backend whose `complete` fans requests out to the judge replicas as
many concurrent handle calls, so load spreads over replicas and the autoscaler sees the queue.
Identical requests are judged once (cache keyed by scenario, candidates, judge model, prompt hash),
and a replica dying mid-request costs a retry on another replica, or after `max_request_attempts`
an explicit `judge_error` verdict, never a silent zero. A request that outlives `request_timeout_s`
(a hung replica or backend) ends the same way, and Serve's health check replaces the hung replica.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import ray
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError
from starlette.requests import Request
from starlette.responses import JSONResponse

from judge.backends import make_backend
from judge.backends.base import JudgeRequest, prompt_hash
from judge.config import JudgeConfig
from judge.http_request import BadJudgeRequest, HttpLimits, parse_judge_request
from judge.reward import score_batch
from judge.serve_config import JudgePoolConfig
from rollout.batch import TrajectoryBatch
from scenarios.schema import ScenarioRow

logger = logging.getLogger(__name__)

# Failures that mean "that replica is gone", not "this request is bad": worth another replica.
_REPLICA_LOST = (RayActorError, ReplicaUnavailableError, DeploymentUnavailableError)
# Seconds for planning and parsing one batch in the ingress, on top of its requests' deadlines.
SCORE_SLACK_S = 60.0


def score_timeout_s(pool_cfg: JudgePoolConfig) -> float:
    """Deadline of one batch's score call through the ingress.

    Each request's judge call and the one-off judge-model lookup before it are each bounded by
    `request_timeout_s` (a duplicate request waits on its twin, which started earlier), so a batch
    ends within twice that plus the ingress's own planning and parsing.
    """
    return 2 * pool_cfg.request_timeout_s + SCORE_SLACK_S


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


@dataclass(frozen=True)
class IngressSettings:
    """The ingress's slice of JudgePoolConfig (replica counts excluded, so rescaling never restarts it)."""

    enable_cache: bool
    cache_size: int
    max_request_attempts: int
    # sha256 of the bearer token HTTP callers must send; "" = no token required (loopback only).
    token_sha256: str
    # Caps on HTTP requests (body, items, candidates, text length).
    http_limits: HttpLimits
    # Seconds one judge call may take, retries on lost replicas included; then it is a `judge_error`.
    request_timeout_s: float


def candidate_hash(request: JudgeRequest) -> str:
    """sha256 over the request's candidate texts, in order (part of the verdict cache key)."""
    digest = hashlib.sha256()
    for text in request.candidates:
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()


@serve.deployment(name="JudgeDeployment")
class JudgeDeployment:
    """One judge replica: a backend (offline / vllm / openai) fed batches by `@serve.batch`.

    Args:
        stuck_after_s: a backend call running longer than this fails the health check, so Serve
            replaces the replica (the ingress gave up on its requests at the same deadline).
    """

    def __init__(
        self,
        judge_cfg: JudgeConfig,
        backend_cfg: Any,
        max_batch_size: int,
        batch_wait_timeout_s: float,
        stuck_after_s: float,
    ):
        self._backend = make_backend(judge_cfg.backend, backend_cfg)
        self._replica = serve.get_replica_context().replica_id.unique_id
        self._stuck_after_s = stuck_after_s
        # Start times (monotonic) of backend calls in flight, by call id.
        self._running: dict[int, float] = {}
        self.judge.set_max_batch_size(max_batch_size)
        self.judge.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def check_health(self) -> None:
        """Serve's periodic probe: fail when a backend call hangs or the backend reports itself dead.

        Runs on the replica's event loop while backend calls run in worker threads, so it answers
        even when a call is stuck; a replica whose whole process hangs misses the probe's timeout.
        """
        now = time.monotonic()
        oldest = min(self._running.values(), default=now)
        if now - oldest > self._stuck_after_s:
            raise RuntimeError(f"judge backend call running for {now - oldest:.0f} s (limit {self._stuck_after_s:g} s)")
        self._backend.check_health()

    def describe(self) -> str:
        """The judge model: part of the ingress's cache keys, needed before any request is judged."""
        return self._backend.model

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def judge(self, requests: list[JudgeRequest]) -> list[JudgeOutput]:
        """Judge a batch; a backend failure becomes one error verdict per request, not a dead replica."""
        call = id(requests)
        self._running[call] = time.monotonic()
        try:
            # A worker thread: backends block (vLLM generate, offline latency), the event loop must not.
            outputs: Sequence[Any] = await asyncio.to_thread(self._backend.complete, requests)
        except Exception as exc:  # process boundary: keep serving, report the failure per request
            logger.exception("judge backend failed on a batch of %d requests", len(requests))
            outputs = [exc] * len(requests)
        finally:
            del self._running[call]
        return [
            JudgeOutput(
                text="" if isinstance(out, Exception) else out,
                error=f"{type(out).__name__}: {out}" if isinstance(out, Exception) else "",
                judge_model=self._backend.model,
                prompt_hash=prompt_hash(request.messages),
                seed=request.seed,
                replica=self._replica,
            )
            for request, out in zip(requests, outputs, strict=True)
        ]

    def __del__(self) -> None:
        self._backend.close()


class _VerdictCache:
    """LRU of in-flight or finished verdicts; a future per key so concurrent duplicates wait for one call."""

    def __init__(self, size: int):
        self._size = size
        self._entries: OrderedDict[tuple[str, ...], asyncio.Future[JudgeOutput]] = OrderedDict()

    def get(self, key: tuple[str, ...]) -> asyncio.Future[JudgeOutput] | None:
        future = self._entries.get(key)
        if future is not None:
            self._entries.move_to_end(key)
        return future

    def put(self, key: tuple[str, ...], future: asyncio.Future[JudgeOutput]) -> None:
        self._entries[key] = future
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def drop(self, key: tuple[str, ...]) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


class JudgeCallFailed(RuntimeError):
    """No judge answer for a request (replicas lost, backend error): reward.py records `judge_error`."""


class _FanOutBackend:
    """The backend score_batch sees inside the ingress: each `complete` fans out to the judge replicas.

    score_batch runs in a worker thread; its requests are judged on the ingress's event loop, where
    the handle calls, the cache and the retries live. Verdicts are kept for provenance.
    """

    def __init__(self, ingress: JudgeIngress, loop: asyncio.AbstractEventLoop):
        self._ingress = ingress
        self._loop = loop
        self.verdicts: list[JudgeOutput] = []

    def complete(self, requests: Sequence[JudgeRequest]) -> list[str | Exception]:
        future = asyncio.run_coroutine_threadsafe(self._ingress.judge_many(requests), self._loop)
        verdicts = future.result()
        self.verdicts.extend(verdicts)
        return [JudgeCallFailed(v.error) if v.error else v.text for v in verdicts]


@serve.deployment(name="JudgeIngress", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)
class JudgeIngress:
    """Scores whole TrajectoryBatches (in-cluster handle) and judge requests over HTTP."""

    def __init__(
        self,
        judge: Any,
        judge_cfg: JudgeConfig,
        rows_box: list[Any],
        settings: IngressSettings,
    ):
        self._judge = judge
        self._judge_cfg = judge_cfg
        self._settings = settings
        # The rows ref arrives boxed in a list so Serve stores the ref, not the payload; fetch it once.
        self._rows: dict[str, ScenarioRow] = ray.get(rows_box[0]) if rows_box else {}
        self._cache = _VerdictCache(settings.cache_size) if settings.enable_cache else None
        self._judge_model: str | None = None
        self._threads = ThreadPoolExecutor(max_workers=64, thread_name_prefix="score")
        self.judge_calls = 0
        logger.info("judge ingress up: %d scenario rows, cache=%s", len(self._rows), settings.enable_cache)

    # ---- in-cluster API ------------------------------------------------------------------------
    async def score(self, batch: TrajectoryBatch) -> TrajectoryBatch:
        """`batch` with rewards, advantages, validity and judge statuses filled in."""
        scored, _ = await self._score(batch, self._rows)
        return scored

    async def stats(self) -> dict[str, int]:
        """Counters for tests and monitoring: fresh judge calls made, cache entries held."""
        return {"judge_calls": self.judge_calls, "cache_entries": len(self._cache) if self._cache else 0}

    async def settings(self) -> tuple[JudgeConfig, list[str]]:
        """The judge config this pool scores with and the scenario ids it holds (checked by jobs that attach)."""
        return self._judge_cfg, sorted(self._rows)

    async def judge_many(self, requests: Sequence[JudgeRequest]) -> list[JudgeOutput]:
        """One verdict per request, in order: many concurrent handle calls, so replicas share the load."""
        return list(await asyncio.gather(*(self._judge_cached(r) for r in requests)))

    # ---- HTTP ------------------------------------------------------------------------------------
    async def __call__(self, request: Request) -> JSONResponse:
        """POST {"items": [{"scenario_id" | "row", "candidates": [str, ...]}, ...]} → OpenAI-style verdicts."""
        if self._settings.token_sha256 and not self._authorized(request):
            return _error(401, "missing or wrong bearer token", "authentication_error")
        if request.method != "POST":
            return _error(405, 'POST a JSON body: {"items": [{"scenario_id": ..., "candidates": [...]}]}')
        limits = self._settings.http_limits
        body = await _read_body(request, limits.max_body_bytes)
        try:
            if body is None:
                raise BadJudgeRequest(413, f"body larger than {limits.max_body_bytes} bytes")
            batch, rows = parse_judge_request(body, self._rows, limits)
        except BadJudgeRequest as exc:
            return _error(exc.status, str(exc))
        try:
            scored, verdicts = await self._score(batch, rows)
        except Exception:  # process boundary: log the traceback here, tell the caller nothing internal
            logger.exception("judging an HTTP request of %d candidates failed", len(batch))
            return _error(500, "judging failed; see the judge pool's logs", "server_error")
        return JSONResponse(self._response_json(scored, verdicts))

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        return hmac.compare_digest(hashlib.sha256(token.encode()).hexdigest(), self._settings.token_sha256)

    def _response_json(self, scored: TrajectoryBatch, verdicts: list[JudgeOutput]) -> dict[str, Any]:
        assert scored.rewards is not None and scored.advantages is not None
        assert scored.valid is not None and scored.judge_statuses is not None
        choices = [
            {
                "index": i,
                "scenario_id": scored.scenario_ids[i],
                "group": scored.group_ids[i],
                "reward": scored.rewards[i],
                "advantage": scored.advantages[i],
                "valid": scored.valid[i],
                "judge_status": scored.judge_statuses[i],
            }
            for i in range(len(scored))
        ]
        return {
            "id": f"judge-{uuid.uuid4().hex}",
            "object": "judge.verdicts",
            "created": int(time.time()),
            "model": verdicts[0].judge_model if verdicts else "",
            "choices": choices,
            "verdicts": [
                {
                    "content": v.text,
                    # Whether the call failed, not why: exception text stays in the pool's logs.
                    "error": "judge call failed" if v.error else "",
                    "judge_model": v.judge_model,
                    "prompt_hash": v.prompt_hash,
                    "seed": v.seed,
                    "cached": v.cached,
                }
                for v in verdicts
            ],
            "usage": {"judge_requests": len(verdicts), "cache_hits": sum(v.cached for v in verdicts)},
        }

    # ---- judging -------------------------------------------------------------------------------
    async def _score(
        self, batch: TrajectoryBatch, rows: dict[str, ScenarioRow]
    ) -> tuple[TrajectoryBatch, list[JudgeOutput]]:
        backend = _FanOutBackend(self, asyncio.get_running_loop())
        loop = asyncio.get_running_loop()
        scored = await loop.run_in_executor(self._threads, score_batch, batch, rows, self._judge_cfg, backend)
        return scored, backend.verdicts

    async def _judge_cached(self, request: JudgeRequest) -> JudgeOutput:
        if self._cache is None:
            return await self._judge_with_retries(request)
        try:
            model = await self._model()
        except (*_REPLICA_LOST, TimeoutError):  # no replica answers: judge uncached, ending in an explicit judge_error
            return await self._judge_with_retries(request)
        key = (request.row.id, candidate_hash(request), model, prompt_hash(request.messages))
        pending = self._cache.get(key)
        if pending is not None:
            return replace(await asyncio.shield(pending), cached=True)
        future: asyncio.Future[JudgeOutput] = asyncio.get_running_loop().create_future()
        self._cache.put(key, future)
        try:
            verdict = await self._judge_with_retries(request)
        except asyncio.CancelledError:  # let the next caller judge it afresh
            self._cache.drop(key)
            future.cancel()
            raise
        future.set_result(verdict)
        if verdict.error:  # failures are not remembered: a later identical request tries again
            self._cache.drop(key)
        return verdict

    async def _model(self) -> str:
        if self._judge_model is None:
            self._judge_model = await self._call_with_retries("describe")
        return self._judge_model

    async def _judge_with_retries(self, request: JudgeRequest) -> JudgeOutput:
        try:
            self.judge_calls += 1
            return await self._call_with_retries("judge", request)
        except Exception as exc:  # boundary of a remote call: every request must end in a verdict
            logger.warning("judge request for scenario %s failed: %s", request.row.id, type(exc).__name__)
            error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, TimeoutError):
                error = f"TimeoutError: no judge answer within {self._settings.request_timeout_s:g} s"
            return JudgeOutput(
                "", error, self._judge_model or "", prompt_hash(request.messages), request.seed, replica=""
            )

    async def _call_with_retries(self, method: str, *args: Any) -> Any:
        """Call a JudgeDeployment method; a lost replica costs a retry (the router picks another).

        All attempts together get `request_timeout_s`; a hung replica is not retried (another call
        could hang on it again), its request ends as TimeoutError, i.e. `judge_error`.
        """
        attempts = self._settings.max_request_attempts
        async with asyncio.timeout(self._settings.request_timeout_s):
            for attempt in range(1, attempts + 1):
                try:
                    return await getattr(self._judge, method).remote(*args)
                except _REPLICA_LOST as exc:
                    if attempt == attempts:
                        raise
                    logger.warning("judge replica lost (%s); attempt %d/%d", type(exc).__name__, attempt + 1, attempts)
        raise AssertionError("unreachable: the loop returns or raises")


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it exceeds `limit` bytes (stops reading there: no unbounded buffer)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    """OpenAI-style error body."""
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


def build_app(
    judge_cfg: JudgeConfig, pool_cfg: JudgePoolConfig, rows_ref: ray.ObjectRef | None, token: str
) -> serve.Application:
    """The bound application; redeploying it with other replica bounds never restarts a replica.

    `serve.run` gives every deploy a random code version unless the deployment carries one, and a
    new code version replaces all replicas (ray/serve/_private/client.py, `deployment._version or
    get_random_string()`). So each deployment gets a version derived from its constructor arguments:
    a rescale (autoscaling config only) is then a lightweight in-place update, while a change of
    backend, judge config, rows or token still rolls the replicas.

    The caller decides whether a token is required (`check_http_exposure`, against the proxy's real bind).
    """
    backend_cfg = {"vllm": pool_cfg.vllm, "openai": pool_cfg.openai}.get(judge_cfg.backend, judge_cfg)
    judge_args = (
        judge_cfg,
        backend_cfg,
        pool_cfg.max_batch_size,
        pool_cfg.batch_wait_timeout_s,
        pool_cfg.request_timeout_s,
    )
    judge = JudgeDeployment.options(
        _internal=True,
        version=_version(judge_args),
        autoscaling_config={
            "min_replicas": pool_cfg.min_replicas,
            "max_replicas": pool_cfg.max_replicas,
            "initial_replicas": pool_cfg.initial_replicas,
            "target_ongoing_requests": pool_cfg.target_ongoing_requests,
            "upscale_delay_s": pool_cfg.upscale_delay_s,
            "downscale_delay_s": pool_cfg.downscale_delay_s,
            "metrics_interval_s": pool_cfg.metrics_interval_s,
            "look_back_period_s": pool_cfg.look_back_period_s,
        },
        max_ongoing_requests=pool_cfg.max_ongoing_requests,
        health_check_period_s=pool_cfg.health_check_period_s,
        health_check_timeout_s=pool_cfg.health_check_timeout_s,
        ray_actor_options={
            "num_cpus": pool_cfg.num_cpus_per_replica,
            "num_gpus": pool_cfg.num_gpus_per_replica,
            "resources": dict(pool_cfg.resources_per_replica),
        },
    ).bind(*judge_args)
    settings = IngressSettings(
        enable_cache=pool_cfg.enable_cache,
        cache_size=pool_cfg.cache_size,
        max_request_attempts=pool_cfg.max_request_attempts,
        token_sha256=hashlib.sha256(token.encode()).hexdigest() if token else "",
        http_limits=HttpLimits.from_pool(pool_cfg),
        request_timeout_s=pool_cfg.request_timeout_s,
    )
    ingress_args = (judge_cfg, [rows_ref] if rows_ref is not None else [], settings)
    # The router lives with the replicas, so a pool pinned to judge nodes leaves nothing elsewhere.
    ingress = JudgeIngress.options(
        _internal=True,
        version=_version(ingress_args),
        ray_actor_options={"num_cpus": 0, "resources": dict(pool_cfg.resources_per_replica)},
    )
    return ingress.bind(judge, *ingress_args)


def _version(init_args: tuple[Any, ...]) -> str:
    """Stable digest of constructor arguments (dataclasses and ObjectRefs repr deterministically)."""
    return hashlib.sha256(repr(init_args).encode()).hexdigest()[:16]
