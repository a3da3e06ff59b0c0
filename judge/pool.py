"""The trainer's view of the judge pool: start it, score batches ref-in / ref-out, hint its size, stop it.

The driver is a single controller that holds refs, never payloads (docs/architecture.md §2). `async_score`
therefore runs the ingress call inside a zero-CPU Ray task: the batch travels object store → ingress
→ task result without touching the driver, and the caller gets an ordinary ObjectRef it can pass
straight to the learner. Scaling hints go through Serve's own autoscaling config (a redeploy that
only changes replica bounds, which Serve applies in place without restarting replicas).
"""

from __future__ import annotations

import dataclasses
import logging
import os

import ray
from ray import serve

from judge.config import JudgeConfig
from judge.serve_app import build_app, score_timeout_s
from judge.serve_config import JudgePoolConfig, is_loopback, validate_pool_config
from rollout.batch import TrajectoryBatch
from scenarios.schema import ScenarioRow

logger = logging.getLogger(__name__)

JUDGE_DEPLOYMENT = "JudgeDeployment"
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


class JudgePool:
    """Handle on a running judge application; cheap to construct, safe to share by app name."""

    def __init__(self, judge_cfg: JudgeConfig, pool_cfg: JudgePoolConfig, rows_ref: ray.ObjectRef | None, token: str):
        self.judge_cfg = judge_cfg
        self.pool_cfg = pool_cfg
        self._rows_ref = rows_ref
        self._token = token

    @classmethod
    def start(
        cls,
        judge_cfg: JudgeConfig,
        pool_cfg: JudgePoolConfig,
        rows: dict[str, ScenarioRow] | ray.ObjectRef | None,
        *,
        wait: bool = True,
    ) -> JudgePool:
        """Deploy the judge application on the connected Ray cluster (the caller owns `ray.init`).

        Args:
            judge_cfg: what is judged (prompts, reward mode, backend name).
            pool_cfg: replicas, batching, cache, HTTP and backend options.
            rows: scenario rows by id, or a ref to such a dict (`ray.put` once, shared by all jobs).
            wait: block until the initial replicas are running.

        Raises:
            ValueError: inconsistent pool config, or HTTP exposed beyond loopback without a token.
        """
        errors = validate_pool_config(pool_cfg)
        if errors:
            raise ValueError("judge pool config: " + "; ".join(errors))
        rows_ref = ray.put(rows) if isinstance(rows, dict) else rows
        token = os.environ.get(pool_cfg.auth_token_env, "")
        if pool_cfg.enable_http:
            serve.start(http_options={"host": pool_cfg.http_host, "port": pool_cfg.http_port})
            if not is_loopback(pool_cfg.http_host):
                logger.info(
                    "judge HTTP route exposed on %s:%d (bearer token required)", pool_cfg.http_host, pool_cfg.http_port
                )
        else:
            serve.start(proxy_location="Disabled")
        pool = cls(judge_cfg, pool_cfg, rows_ref, token)
        pool._deploy(wait=wait)
        logger.info(
            "judge pool %s up: backend=%s replicas %d..%d",
            pool_cfg.app_name,
            judge_cfg.backend,
            pool_cfg.min_replicas,
            pool_cfg.max_replicas,
        )
        return pool

    def _deploy(self, *, wait: bool) -> None:
        app = build_app(self.judge_cfg, self.pool_cfg, self._rows_ref, self._token)
        route = self.pool_cfg.route_prefix if self.pool_cfg.enable_http else None
        target = serve.RunTarget(app, name=self.pool_cfg.app_name, route_prefix=route)
        serve.run_many([target], wait_for_applications_running=wait)

    def async_score(self, batch_ref: ray.ObjectRef) -> ray.ObjectRef:
        """ObjectRef of the scored batch; the payload never reaches the calling process."""
        return _score_via_ingress.remote(self.pool_cfg.app_name, batch_ref, score_timeout_s(self.pool_cfg))

    def set_min_replicas(self, n: int, *, wait: bool = False) -> None:
        """Raise (before a rollout wave) or lower (while the learner works) the replica floor."""
        self.set_replica_bounds(n, self.pool_cfg.max_replicas, wait=wait)

    def set_replica_bounds(self, min_replicas: int, max_replicas: int, *, wait: bool = False) -> None:
        """New autoscaling bounds, applied by Serve in place: running replicas keep their engines.

        Only the autoscaling config changes between deploys, which Serve treats as a lightweight
        update (no replica restarts). `wait=True` blocks until the new floor is running.
        """
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

    def num_replicas(self) -> int:
        """Judge replicas currently RUNNING."""
        app = serve.status().applications.get(self.pool_cfg.app_name)
        if app is None or JUDGE_DEPLOYMENT not in app.deployments:
            return 0
        return int(app.deployments[JUDGE_DEPLOYMENT].replica_states.get("RUNNING", 0))

    def stats(self) -> dict[str, int]:
        """Ingress counters: fresh judge calls made and cache entries held."""
        return serve.get_app_handle(self.pool_cfg.app_name).stats.remote().result(timeout_s=STATS_TIMEOUT_S)

    def shutdown(self) -> None:
        """Delete the application (its replicas and engines); Serve itself stays up for other apps."""
        serve.delete(self.pool_cfg.app_name)
