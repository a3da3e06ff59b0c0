"""The judge pool as a Ray Serve application (docs/architecture.md §2.1): autoscaled judge replicas behind one ingress.

```
trainer ──ObjectRef[TrajectoryBatch]──► JudgeIngress.score ─┬─ plan requests (judge/reward.py)
HTTP POST <prefix> (bearer token) ────► JudgeIngress.__call__│  cache / fan out / retry on replica death
                                                            ├──► JudgeDeployment.judge ×N  (@serve.batch → backend)
                                                            └─ parse + rewards (judge/reward.py)
```

The ingress owns nothing but plumbing: judge/reward.py plans the requests and turns raw verdicts into
rewards, judge/http_api.py checks HTTP callers' tokens and writes their responses, and
judge/verdicts.py holds the verdict cache; the ingress hands it a backend whose `complete` fans requests out to the judge replicas in
chunks, one handle call per chunk (`split_for_replicas`): at least one chunk per running replica so
load spreads, none larger than `max_batch_size` so the autoscaler still sees a queue. A handle call
per request cost more than the judging itself on small requests. A replica judges the chunks that
arrive together in one backend call of at most `max_batch_size` requests.
Identical requests are judged once (cache keyed by scenario, candidates, judge model, prompt hash;
only misses are sent), and a replica dying mid-call costs its chunk a retry on another replica, or
after `max_request_attempts` an explicit `judge_error` verdict per request, never a silent zero. A
chunk that outlives `request_timeout_s` (a hung replica or backend) ends the same way, and Serve's
health check replaces the hung replica.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import ray
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError
from starlette.requests import Request
from starlette.responses import JSONResponse

from judge.backends import make_backend
from judge.backends.base import JudgeRequest, prompt_hash
from judge.config import JudgeConfig
from judge.http_api import handle_http
from judge.http_request import HttpLimits
from judge.reward import score_batch
from judge.serve_config import JudgePoolConfig
from judge.verdicts import JudgeOutput, VerdictCache, candidate_hash
from records.trajectory_batch import TrajectoryBatch
from scenarios.schema import ScenarioRow

logger = logging.getLogger(__name__)

# Failures that mean "that replica is gone", not "this request is bad": worth another replica.
_REPLICA_LOST = (RayActorError, ReplicaUnavailableError, DeploymentUnavailableError)
# Deployment name of the judge replicas (Serve reports replica counts under it).
JUDGE_DEPLOYMENT = "JudgeDeployment"
# Seconds the ingress waits for Serve to report how many judge replicas run before it assumes one.
REPLICA_LOOKUP_TIMEOUT_S = 10.0
# Seconds a replica count stays good for splitting batches. A lookup (`serve.status()`) costs ~20 ms
# on 2 cores, as much as Serve's whole round trip; a count this old costs one call's spreading at most.
REPLICA_COUNT_MAX_AGE_S = 1.0
# Seconds for planning, the replica lookup and parsing of one batch in the ingress, on top of its
# requests' deadlines.
SCORE_SLACK_S = 60.0

T = TypeVar("T")


def score_timeout_s(pool_cfg: JudgePoolConfig) -> float:
    """Deadline of one batch's score call through the ingress.

    Each chunk's judge call and the one-off judge-model lookup before it are each bounded by
    `request_timeout_s` (a duplicate request waits on its twin, which started earlier), so a batch
    ends within twice that plus the ingress's own planning, replica lookup and parsing.
    """
    return 2 * pool_cfg.request_timeout_s + SCORE_SLACK_S


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
    # Most requests per handle call to a replica (judge_pool.max_batch_size, which also caps its backend calls).
    max_batch_size: int


def split_for_replicas(items: Sequence[T], max_batch_size: int, replicas: int) -> list[list[T]]:
    """`items` cut into contiguous chunks of near-equal size: one handle call each.

    As few chunks as keep each within `max_batch_size`, but at least one per running replica (while
    items remain), so every replica gets a share of a batch in a single call.
    """
    if not items:
        return []
    parts = min(len(items), max(replicas, -(-len(items) // max_batch_size)))
    size, extra = divmod(len(items), parts)
    chunks, start = [], 0
    for k in range(parts):
        end = start + size + (k < extra)
        chunks.append(list(items[start:end]))
        start = end
    return chunks


def running_replicas(app_name: str) -> int:
    """Judge replicas of `app_name` RUNNING now (0 when the app or its judge deployment is missing)."""
    app = serve.status().applications.get(app_name)
    if app is None or JUDGE_DEPLOYMENT not in app.deployments:
        return 0
    return int(app.deployments[JUDGE_DEPLOYMENT].replica_states.get("RUNNING", 0))


class ReplicaCount:
    """The running judge replicas, looked up at most once per `max_age_s`; concurrent askers share a lookup.

    `lookup` blocks (a controller call), so it runs in the default executor, never in the ingress's
    score threads, which may all be waiting on this very count. A failed or slow lookup answers 1:
    it costs spreading, never verdicts.
    """

    def __init__(self, lookup: Callable[[], int], max_age_s: float, timeout_s: float):
        self._lookup = lookup
        self._max_age_s = max_age_s
        self._timeout_s = timeout_s
        self._value = 1
        self._looked_up_at = -math.inf
        self._pending: asyncio.Task[int] | None = None

    async def get(self) -> int:
        if time.monotonic() - self._looked_up_at < self._max_age_s:
            return self._value
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._pending)

    async def _refresh(self) -> int:
        try:
            async with asyncio.timeout(self._timeout_s):
                self._value = max(1, await asyncio.to_thread(self._lookup))
            self._looked_up_at = time.monotonic()
        except Exception as exc:  # a slow or restarting controller costs spreading, never the verdicts
            logger.warning("judge replica count unknown (%s); splitting as for one replica", exc)
            self._value = 1
        finally:
            self._pending = None
        return self._value


def _total_requests(chunks: list[list[JudgeRequest]]) -> int:
    """Size of a replica's batch for `@serve.batch`: requests, not chunks (max_batch_size counts requests)."""
    return sum(len(chunk) for chunk in chunks)


@serve.deployment(name=JUDGE_DEPLOYMENT)
class JudgeDeployment:
    """One judge replica: a backend (offline / vllm / openai) fed batches of chunks by `@serve.batch`.

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

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01, batch_size_fn=_total_requests)
    async def judge(self, chunks: list[list[JudgeRequest]]) -> list[list[JudgeOutput]]:
        """Judge the chunks that arrived together (at most max_batch_size requests in all) in one backend call.

        A backend failure becomes one error verdict per request, not a dead replica.
        """
        requests = [request for chunk in chunks for request in chunk]
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
        verdicts = iter(
            JudgeOutput(
                text="" if isinstance(out, Exception) else out,
                error=f"{type(out).__name__}: {out}" if isinstance(out, Exception) else "",
                judge_model=self._backend.model,
                prompt_hash=prompt_hash(request.messages),
                seed=request.seed,
                replica=self._replica,
            )
            for request, out in zip(requests, outputs, strict=True)
        )
        return [[next(verdicts) for _ in chunk] for chunk in chunks]

    def __del__(self) -> None:
        self._backend.close()


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
        self._cache = VerdictCache(settings.cache_size if settings.enable_cache else 0)
        self._judge_model: str | None = None
        app_name = serve.get_replica_context().app_name
        self._replicas = ReplicaCount(
            lambda: running_replicas(app_name), REPLICA_COUNT_MAX_AGE_S, REPLICA_LOOKUP_TIMEOUT_S
        )
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
        return {"judge_calls": self.judge_calls, "cache_entries": len(self._cache)}

    async def settings(self) -> tuple[JudgeConfig, list[str]]:
        """The judge config this pool scores with and the scenario ids it holds (checked by jobs that attach)."""
        return self._judge_cfg, sorted(self._rows)

    async def judge_many(self, requests: Sequence[JudgeRequest]) -> list[JudgeOutput]:
        """One verdict per request, in order.

        Cache hits, and duplicates of a request already being judged, wait for that verdict; the
        misses go to the replicas in concurrent chunks (`split_for_replicas`), so replicas share the load.
        """
        earlier: dict[int, asyncio.Future[JudgeOutput]] = {}  # index → an identical request's verdict
        claimed: dict[int, tuple[tuple[str, ...], asyncio.Future[JudgeOutput]]] = {}  # index → its cache entry
        misses: list[int] = []
        for i, key in enumerate(await self._cache_keys(requests)):
            pending = self._cache.get(key) if key is not None else None
            if pending is not None:
                earlier[i] = pending
                continue
            if key is not None:
                claimed[i] = (key, self._cache.claim(key))
            misses.append(i)
        try:
            replicas = await self._replicas.get() if len(misses) > 1 else 1
            chunks = split_for_replicas(misses, self._settings.max_batch_size, replicas)
            answers = await asyncio.gather(*(self._judge_chunk([requests[i] for i in chunk]) for chunk in chunks))
        except asyncio.CancelledError:  # claims must not outlive this call, or identical requests wait forever
            for key, future in claimed.values():
                self._cache.abandon(key, future)
            raise
        verdicts = {
            i: verdict
            for chunk, answer in zip(chunks, answers, strict=True)
            for i, verdict in zip(chunk, answer, strict=True)
        }
        for i, (key, future) in claimed.items():
            self._cache.settle(key, future, verdicts[i])
        for i, future in earlier.items():
            verdicts[i] = replace(await asyncio.shield(future), cached=True)
        return [verdicts[i] for i in range(len(requests))]

    async def __call__(self, request: Request) -> JSONResponse:
        """HTTP callers (judge/http_api.py): token check and wire format there, scoring here."""
        return await handle_http(
            request,
            token_sha256=self._settings.token_sha256,
            limits=self._settings.http_limits,
            rows=self._rows,
            score=self._score,
        )

    # ---- judging -------------------------------------------------------------------------------
    async def _score(
        self, batch: TrajectoryBatch, rows: dict[str, ScenarioRow]
    ) -> tuple[TrajectoryBatch, list[JudgeOutput]]:
        backend = _FanOutBackend(self, asyncio.get_running_loop())
        loop = asyncio.get_running_loop()
        scored = await loop.run_in_executor(self._threads, score_batch, batch, rows, self._judge_cfg, backend)
        return scored, backend.verdicts

    async def _cache_keys(self, requests: Sequence[JudgeRequest]) -> list[tuple[str, ...] | None]:
        """Verdict cache key per request; None (judge uncached) without a cache or when no replica names the model."""
        if not self._settings.enable_cache:
            return [None] * len(requests)
        try:
            model = await self._model()
        except (*_REPLICA_LOST, TimeoutError):  # no replica answers: judge uncached, ending in an explicit judge_error
            return [None] * len(requests)
        return [(r.row.id, candidate_hash(r), model, prompt_hash(r.messages)) for r in requests]

    async def _model(self) -> str:
        if self._judge_model is None:
            self._judge_model = await self._call_with_retries("describe")
        return self._judge_model

    async def _judge_chunk(self, chunk: list[JudgeRequest]) -> list[JudgeOutput]:
        """Verdicts of one handle call, in order; a failed call is one error verdict per request."""
        try:
            self.judge_calls += len(chunk)
            return await self._call_with_retries("judge", chunk)
        except Exception as exc:  # boundary of a remote call: every request must end in a verdict
            scenarios = sorted({r.row.id for r in chunk})
            logger.warning(
                "judge call of %d requests (scenarios %s) failed: %s", len(chunk), scenarios, type(exc).__name__
            )
            error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, TimeoutError):
                error = f"TimeoutError: no judge answer within {self._settings.request_timeout_s:g} s"
            return [
                JudgeOutput("", error, self._judge_model or "", prompt_hash(r.messages), r.seed, replica="")
                for r in chunk
            ]

    async def _call_with_retries(self, method: str, *args: Any) -> Any:
        """Call a JudgeDeployment method; a lost replica costs a retry (the router picks another).

        All attempts together get `request_timeout_s`; a hung replica is not retried (another call
        could hang on it again), its call ends as TimeoutError, i.e. `judge_error` for each request.
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
        max_batch_size=pool_cfg.max_batch_size,
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
