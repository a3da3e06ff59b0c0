"""The trainer's view of the judge pool: start or attach to it, score batches ref-in / ref-out, send canaries,
hint its size, stop it.

The driver is a single controller that holds refs, never payloads (docs/architecture.md §2). `async_score`
therefore runs the ingress call inside a zero-CPU Ray task: the batch travels object store → ingress
→ task result without touching the driver, and the caller gets an ordinary ObjectRef it can pass
straight to the learner. Scaling hints go through Serve's own autoscaling config (a redeploy that
only changes replica bounds, which Serve applies in place without restarting replicas).

Ownership: a job either starts its own pool under a unique app name, or attaches to a shared
`serve-judge` pool named by `judge.pool` (`open_job_pool`). A job rescales and deletes only a pool it
started; `serve.run` under an existing name would replace another job's app.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from collections.abc import Collection
from typing import TYPE_CHECKING

import ray
from ray import serve
from ray.serve import context as serve_context
from ray.serve.config import ProxyLocation
from ray.serve.exceptions import RayServeException
from ray.serve.schema import ServeInstanceDetails

from judge.backends.base import JudgeRequest
from judge.canary import CanaryReport, canary_probes, grade_canaries
from judge.config import JOB_SIDE_FIELDS, JudgeConfig
from judge.serve_app import JudgeCallFailed, build_app, running_replicas, score_timeout_s
from judge.serve_config import JudgePoolConfig, check_http_exposure, is_loopback, validate_pool_config
from judge.verdicts import JudgeOutput
from records.trajectory_batch import TrajectoryBatch
from scenarios.schema import ScenarioRow

if TYPE_CHECKING:
    from ray.serve._private.client import ServeControllerClient

logger = logging.getLogger(__name__)

INGRESS_DEPLOYMENT = "JudgeIngress"
# Seconds for the ingress to report its counters (no judging involved).
STATS_TIMEOUT_S = 60.0


@ray.remote(num_cpus=0)
def _score_via_ingress(app_name: str, batch: TrajectoryBatch, timeout_s: float) -> TrajectoryBatch:
    """Zero-CPU hop that turns a Serve response into an ObjectRef (the task's result).

    Raises:
        TimeoutError: the ingress did not answer within `timeout_s` (its own requests have deadlines,
            so only a hung ingress gets here); the message names the app.
    """
    try:
        return serve.get_app_handle(app_name).score.remote(batch).result(timeout_s=timeout_s)
    except TimeoutError:
        raise TimeoutError(f"judge pool {app_name!r} did not score a batch within {timeout_s:g} s") from None


@ray.remote(num_cpus=0)
def _judge_canaries(pool: JudgePool, rows: list[ScenarioRow], step: int, pairs: int) -> CanaryReport:
    """Zero-CPU hop that judges step `step`'s canaries through `pool` and grades them (judge/canary.py).

    The requests go through `JudgePool.judge`, the ingress path every rollout request takes to the
    replicas, and nothing they return reaches a reward.
    """
    probes = canary_probes(rows, step, pairs, pool.judge_cfg)
    outputs = pool.judge([p.request for p in probes], f"step {step}'s canaries")
    texts = [JudgeCallFailed(out.error) if out.error else out.text for out in outputs]
    return grade_canaries(probes, texts, [out.judge_model for out in outputs])


def job_pool_config(pool_cfg: JudgePoolConfig, job: str) -> JudgePoolConfig:
    """A job's own pool: app `<judge_pool.app_name>-<job>-<8 hex>`, a route of the same name, HTTP off.

    The unique name keeps two jobs on one cluster (or a job and `serve-judge`) from redeploying or
    deleting each other's app. Jobs call their pool through in-cluster handles, so no proxy is needed.
    """
    name = f"{pool_cfg.app_name}-{job}-{uuid.uuid4().hex[:8]}"
    return dataclasses.replace(pool_cfg, app_name=name, route_prefix=f"/{name}", enable_http=False)


def open_job_pool(
    job: str,
    judge_cfg: JudgeConfig,
    pool_cfg: JudgePoolConfig,
    rows: dict[str, ScenarioRow] | ray.ObjectRef | None,
    scored_ids: Collection[str] = (),
) -> JudgePool:
    """The judge pool a job scores with: the shared one `judge.pool` names, else a new one of its own.

    Args:
        job: short job kind for the app name (`train`, `evaluate`, `judge-eval`).
        judge_cfg: the job's judge section (an attached pool must score with the same settings).
        pool_cfg: the job's pool section (its request deadline always applies; the rest only when starting).
        rows: judge views of the scenario rows, or a ref to them (used only when starting).
        scored_ids: scenarios the job will score by id through `async_score`; an attached pool must hold them.
    """
    if judge_cfg.pool:
        return JudgePool.attach(judge_cfg.pool, judge_cfg, score_timeout_s(pool_cfg), scored_ids)
    return JudgePool.start(judge_cfg, job_pool_config(pool_cfg, job), rows)


def _serve_client() -> ServeControllerClient | None:
    """The running Serve controller's client, None when Serve does not run on this cluster.

    A process that used Serve on an earlier Ray cluster (`ray.shutdown()`, then `ray.init()` again, as a
    notebook or a test session does) still caches that cluster's controller handle, and Ray reuses job
    ids across clusters, so Serve's own lookups (`serve.status`, `get_app_handle`) would trust the dead
    handle. `serve.start` checks it first; this does the same before anything else asks Serve.
    """
    client, _ = serve_context._check_cached_client_alive()  # drops a dead cached handle
    return client or serve_context._get_global_client(raise_if_no_controller_running=False)


def _http_bind(pool_cfg: JudgePoolConfig) -> tuple[str, int] | None:
    """(host, port) the judge route will really be served on; None = the app gets no HTTP route.

    Serve fixes its HTTP options when it first starts and ignores later ones (with a warning), so once
    Serve runs on the cluster its proxy's bind counts, not `judge_pool.http_host`.
    """
    if not pool_cfg.enable_http:
        return None
    # serve.status() carries no HTTP options; this is the client it reads the instance through too.
    client = _serve_client()
    if client is None:
        return pool_cfg.http_host, pool_cfg.http_port
    details = ServeInstanceDetails(**client.get_serve_details())
    # With proxies disabled Serve still reports default http_options (host 0.0.0.0): location decides.
    if details.proxy_location == ProxyLocation.Disabled or details.http_options is None:
        raise ValueError(
            "Serve already runs on this cluster without an HTTP proxy (a job's own judge pool started it), so "
            "judge_pool.enable_http cannot take effect: start serve-judge before the jobs, or set judge_pool.enable_http=false "
            "and reach the pool through in-cluster handles (judge.pool=<app name>)"
        )
    bind = (details.http_options.host, details.http_options.port)
    if bind != (pool_cfg.http_host, pool_cfg.http_port):
        logger.warning(
            "Serve already runs with its HTTP proxy on %s:%d; judge_pool.http_host/http_port (%s:%d) cannot change that",
            *bind,
            pool_cfg.http_host,
            pool_cfg.http_port,
        )
    return bind


def _settings_mismatches(job: JudgeConfig, pool: JudgeConfig) -> list[str]:
    """Judge settings that differ between a job and the pool it attaches to (job-side fields excluded)."""
    return [
        f"judge.{f.name}: job {getattr(job, f.name)!r}, pool {getattr(pool, f.name)!r}"
        for f in dataclasses.fields(JudgeConfig)
        if f.name not in JOB_SIDE_FIELDS and getattr(job, f.name) != getattr(pool, f.name)
    ]


class JudgePool:
    """Handle on a running judge application; cheap to construct, safe to share by app name, and sent
    as is to the zero-CPU tasks that judge next to the pool (canaries, training's dev/test evaluation).

    `pool_cfg` is None for a pool this process attached to (`attach`): someone else's app, which is
    never rescaled or deleted from here.
    """

    def __init__(
        self,
        app_name: str,
        judge_cfg: JudgeConfig,
        pool_cfg: JudgePoolConfig | None,
        score_deadline_s: float,
        rows_ref: ray.ObjectRef | None = None,
        token: str = "",
        http_bind: tuple[str, int] | None = None,
    ):
        self.app_name = app_name
        self.judge_cfg = judge_cfg
        self.pool_cfg = pool_cfg
        # How long one batch's score call may take (judge.serve_app.score_timeout_s of the job's pool section).
        self.score_deadline_s = score_deadline_s
        # Where the HTTP route is really served (host, port); None = handle calls only.
        self.http_bind = http_bind
        self._rows_ref = rows_ref
        self._token = token
        self._rescale_skip_logged = False
        # The floor the job asked for (judge_pool.min_replicas): pre-scaling lowers the floor back to it.
        self._configured_min = pool_cfg.min_replicas if pool_cfg is not None else 0

    @property
    def owned(self) -> bool:
        """True when this process deployed the app (and so may rescale and delete it)."""
        return self.pool_cfg is not None

    @classmethod
    def start(
        cls,
        judge_cfg: JudgeConfig,
        pool_cfg: JudgePoolConfig,
        rows: dict[str, ScenarioRow] | ray.ObjectRef | None,
        *,
        wait: bool = True,
    ) -> JudgePool:
        """Deploy the judge application under `pool_cfg.app_name` on the connected Ray cluster (the caller owns `ray.init`).

        Jobs get a unique name from `open_job_pool`; `serve-judge` deploys its stable, shared name here.

        Args:
            judge_cfg: what is judged (prompts, reward mode, backend name).
            pool_cfg: replicas, batching, cache, HTTP and backend options.
            rows: scenario rows by id, or a ref to such a dict (`ray.put` once, shared by all jobs).
            wait: block until the initial replicas are running.

        Raises:
            ValueError: inconsistent pool config, an app of that name already running, or HTTP exposed
                beyond loopback (checked against the proxy's real bind) without a token.
        """
        errors = validate_pool_config(pool_cfg)
        if judge_cfg.pool:
            errors.append(f"judge.pool={judge_cfg.pool!r} names a running pool to attach to; leave it empty here")
        if errors:  # before anything touches Ray
            raise ValueError("judge pool config: " + "; ".join(errors))
        _serve_client()  # a dead controller handle cached from an earlier cluster must not answer below
        if pool_cfg.app_name in serve.status().applications:
            raise ValueError(
                f"a Serve application named {pool_cfg.app_name!r} already runs on this cluster; deploying would "
                f"replace it. Attach jobs to it with judge.pool={pool_cfg.app_name}, or pick another judge_pool.app_name"
            )
        token = os.environ.get(pool_cfg.auth_token_env, "")
        # Before serve.start: a proxy it starts on a public address would be up before any check.
        http_bind = _http_bind(pool_cfg)
        check_http_exposure(http_bind[0] if http_bind else None, token, pool_cfg.auth_token_env)
        if pool_cfg.enable_http:
            serve.start(http_options={"host": pool_cfg.http_host, "port": pool_cfg.http_port})
            if http_bind and not is_loopback(http_bind[0]):
                logger.info("judge HTTP route exposed on %s:%d (bearer token required)", *http_bind)
        else:
            serve.start(proxy_location="Disabled")
        rows_ref = ray.put(rows) if isinstance(rows, dict) else rows
        pool = cls(pool_cfg.app_name, judge_cfg, pool_cfg, score_timeout_s(pool_cfg), rows_ref, token, http_bind)
        pool._deploy(wait=wait)
        logger.info(
            "judge pool %s up: backend=%s replicas %d..%d",
            pool_cfg.app_name,
            judge_cfg.backend,
            pool_cfg.min_replicas,
            pool_cfg.max_replicas,
        )
        return pool

    @classmethod
    def attach(
        cls, app_name: str, judge_cfg: JudgeConfig, score_deadline_s: float, scored_ids: Collection[str] = ()
    ) -> JudgePool:
        """A running shared pool (`privacyalign serve-judge`) by app name; this process never rescales or deletes it.

        `score_deadline_s` bounds each of this job's score calls (the job's deadline, not the pool's).

        The pool scores with its own judge settings and scenario rows, so both are checked against the
        job's: a run must not record one reward setup while being trained on another.

        Raises:
            ValueError: no such app, not a judge pool, other judge settings, or rows missing for `scored_ids`.
        """
        _serve_client()  # as in start: never look the app up through a dead cached controller
        try:
            handle = serve.get_app_handle(app_name)
        except RayServeException as exc:
            running = sorted(serve.status().applications)
            raise ValueError(
                f"judge.pool={app_name!r}: {exc} (apps running: {running or 'none'}). Start it on this cluster "
                f"with `privacyalign serve-judge judge_pool.app_name={app_name}`, or set judge.pool= to start this "
                "job's own pool"
            ) from None
        deployments = serve.status().applications[app_name].deployments
        if INGRESS_DEPLOYMENT not in deployments:
            raise ValueError(f"judge.pool={app_name!r} is not a judge pool (deployments: {sorted(deployments)})")
        pool_judge_cfg, pool_ids = handle.settings.remote().result()
        mismatches = _settings_mismatches(judge_cfg, pool_judge_cfg)
        if mismatches:
            raise ValueError(
                f"judge.pool={app_name!r} judges with other settings than this job: {'; '.join(mismatches)}. "
                "Set the job's judge.* to the pool's, or restart serve-judge with the job's"
            )
        missing = sorted(set(scored_ids) - set(pool_ids))
        if missing:
            raise ValueError(
                f"judge.pool={app_name!r} holds no scenario rows for {len(missing)} of the job's {len(scored_ids)} "
                f"scenarios (e.g. {missing[:3]}): start serve-judge with the job's data.source"
            )
        logger.info(
            "attached to shared judge pool %s (%d rows); this job will not rescale or delete it",
            app_name,
            len(pool_ids),
        )
        return cls(app_name, pool_judge_cfg, None, score_deadline_s)

    def _deploy(self, *, wait: bool) -> None:
        assert self.pool_cfg is not None, "only an owned pool is (re)deployed"
        app = build_app(self.judge_cfg, self.pool_cfg, self._rows_ref, self._token)
        route = self.pool_cfg.route_prefix if self.pool_cfg.enable_http else None
        target = serve.RunTarget(app, name=self.pool_cfg.app_name, route_prefix=route)
        serve.run_many([target], wait_for_applications_running=wait)

    def async_score(self, batch_ref: ray.ObjectRef) -> ray.ObjectRef:
        """ObjectRef of the scored batch; the payload never reaches the calling process."""
        return _score_via_ingress.remote(self.app_name, batch_ref, self.score_deadline_s)

    def async_canaries(self, rows_ref: ray.ObjectRef, step: int, pairs: int) -> ray.ObjectRef:
        """ObjectRef of the CanaryReport of step `step`: `pairs` rows of `rows_ref` judged by this pool.

        Args:
            rows_ref: ref to the judge views of the canary rows (`judge.canary.select_canary_rows`).
            step: the training step; picks the rows (rotating) and keeps the requests out of the verdict cache.
            pairs: canary rows to judge, two requests each (docs/architecture.md §1.6).
        """
        return _judge_canaries.remote(self, rows_ref, step, pairs)

    def judge(self, requests: list[JudgeRequest], what: str) -> list[JudgeOutput]:
        """One output per rendered request (pointwise or pairwise, in order), judged by this pool's replicas.

        The one way to the pool for requests a caller renders itself (training's dev/test evaluation,
        `evaluate`, canaries): they share the ingress's cache, retries and fan-out with rollout scoring,
        and the same deadline. A failed judgement comes back as an output with `error` set, never raised.
        Call it where the payloads already are: it blocks and returns them to the calling process.

        Args:
            requests: the requests; none means no call.
            what: what is being judged, for the timeout message (`step 3's canaries`).

        Raises:
            TimeoutError: the ingress did not answer within `score_deadline_s` (its own requests have
                deadlines, so only a hung ingress gets here); the message names the app and `what`.
        """
        if not requests:
            return []
        handle = serve.get_app_handle(self.app_name)
        try:
            return handle.judge_many.remote(requests).result(timeout_s=self.score_deadline_s)
        except TimeoutError:
            raise TimeoutError(
                f"judge pool {self.app_name!r} did not judge {what} within {self.score_deadline_s:g} s"
            ) from None

    def set_min_replicas(self, n: int, *, wait: bool = False) -> None:
        """Raise (before a rollout wave) or lower (while the learner works) the replica floor.

        Never below the configured `min_replicas`: lowering to 0 returns to the job's own floor, so a
        pre-scaled pool does not scale to zero while the learner works and cold-start its engines (a
        judge model's load) before every wave.
        """
        if self._rescalable():
            self.set_replica_bounds(max(n, self._configured_min), self.pool_cfg.max_replicas, wait=wait)

    def set_replica_bounds(self, min_replicas: int, max_replicas: int, *, wait: bool = False) -> None:
        """New autoscaling bounds, applied by Serve in place: running replicas keep their engines.

        Only the autoscaling config changes between deploys, which Serve treats as a lightweight
        update (no replica restarts). `wait=True` blocks until the new floor is running. An attached
        (shared) pool is left alone: its own autoscaler sizes it for every job using it.
        """
        if not self._rescalable():
            return
        cfg = dataclasses.replace(
            self.pool_cfg,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            initial_replicas=min(max(self.pool_cfg.initial_replicas, min_replicas), max_replicas),
        )
        errors = validate_pool_config(cfg)
        if errors:
            raise ValueError("judge pool bounds: " + "; ".join(errors))
        self.pool_cfg = cfg
        self._deploy(wait=wait)

    def _rescalable(self) -> bool:
        """Whether this process may change the pool's bounds; says once per pool when it may not."""
        if not self.owned and not self._rescale_skip_logged:
            logger.info("judge pool %s is shared (judge.pool): not rescaling it for this job", self.app_name)
            self._rescale_skip_logged = True
        return self.owned

    def num_replicas(self) -> int:
        """Judge replicas currently RUNNING."""
        return running_replicas(self.app_name)

    def stats(self) -> dict[str, int]:
        """Ingress counters: fresh judge calls made and cache entries held."""
        return serve.get_app_handle(self.app_name).stats.remote().result(timeout_s=STATS_TIMEOUT_S)

    def shutdown(self) -> None:
        """Delete the application if this process deployed it; Serve and shared pools stay up for other jobs."""
        if not self.owned:
            logger.info("leaving shared judge pool %s running", self.app_name)
            return
        serve.delete(self.app_name)
