"""The single-controller RL loop: generate → judge → learn → sync weights, sync or async.

The driver holds ObjectRefs and small metric dicts only. Trajectories go rollout actor → judge pool
→ reshard task → learner ranks through the object store; the driver's `DriverFetcher` measures what
it did fetch so a test can hold it to that.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import ray

from actors.batch_tasks import reshard, summarize
from jobs.training.driver_fetch import DriverFetcher
from jobs.training.prompt_schedule import PromptSchedule
from jobs.training.trainer_config import TrainerConfig

logger = logging.getLogger(__name__)


@dataclass
class RolloutWave:
    """One step's generation in flight: which step, which weights made it, and the result refs."""

    step: int
    policy_version: int
    refs: list[ray.ObjectRef]
    launched_at: float


@dataclass
class StepResult:
    step: int
    metrics: dict[str, Any]
    trained: bool


class RLLoop:
    """Runs training steps against already-started components (see jobs/training/session.py).

    Args:
        cfg: the trainer section of the config.
        schedule: which scenario ids each step uses.
        rollout: a RolloutPool (`async_generate`, `async_update_weights`).
        judge: a JudgePool (`async_score`, `set_min_replicas`).
        learner: a LearnerGroup (`async_train_step`, `async_export_weights`).
        max_invalid_fraction: skip a step whose judged samples are invalid beyond this fraction.
        policy_version: weights version the engines hold now (the learner's step count).
    """

    def __init__(
        self,
        cfg: TrainerConfig,
        schedule: PromptSchedule,
        rollout: Any,
        judge: Any,
        learner: Any,
        *,
        max_invalid_fraction: float,
        policy_version: int = 0,
    ):
        self.cfg = cfg
        self.schedule = schedule
        self.rollout = rollout
        self.judge = judge
        self.learner = learner
        self.max_invalid_fraction = max_invalid_fraction
        self.policy_version = policy_version
        self.fetcher = DriverFetcher()
        self._waves: deque[RolloutWave] = deque()
        self.dropped_stale = 0

    # ---- generation ------------------------------------------------------------------------------
    def _launch(self, step: int) -> RolloutWave:
        if self.cfg.judge_prescale_replicas:
            # Ask for judge capacity before the wave arrives; load-based autoscaling shrinks it later.
            self.judge.set_min_replicas(self.cfg.judge_prescale_replicas)
        refs = self.rollout.async_generate(
            self.schedule.ids_for_step(step), policy_version=self.policy_version, seed=self.cfg.seed * 100_003 + step
        )
        return RolloutWave(step, self.policy_version, refs, time.perf_counter())

    def _next_wave(self, step: int) -> RolloutWave:
        """This step's wave; in async mode also keep up to `max_staleness` later waves in flight."""
        if not self._waves or self._waves[0].step != step:
            self._waves.clear()
            self._waves.append(self._launch(step))
        wave = self._waves.popleft()
        if self.policy_version - wave.policy_version > self.cfg.max_staleness:
            # Too old for the importance ratio to be trusted: regenerate with current weights.
            self.dropped_stale += 1
            wave = self._launch(step)
        if self.cfg.schedule == "async":
            lookahead = self.cfg.max_staleness
            next_step = step + 1 + len(self._waves)
            while len(self._waves) < lookahead and next_step < self.cfg.num_steps:
                self._waves.append(self._launch(next_step))
                next_step += 1
        return wave

    # ---- one step --------------------------------------------------------------------------------
    def run_step(self, step: int) -> StepResult:
        timings: dict[str, float] = {}
        start = time.perf_counter()
        wave = self._next_wave(step)
        ray.wait(wave.refs, num_returns=len(wave.refs), fetch_local=False)
        timings["time/generate_wait"] = time.perf_counter() - start

        mark = time.perf_counter()
        scored = [self.judge.async_score(ref) for ref in wave.refs]
        if self.cfg.judge_prescale_replicas:
            self.judge.set_min_replicas(0)
        stats = self.fetcher.get(summarize.remote(*scored))
        timings["time/judge"] = time.perf_counter() - mark

        metrics: dict[str, Any] = dict(stats)
        metrics["staleness"] = self.policy_version - wave.policy_version
        trained = stats["judge/invalid_fraction"] <= self.max_invalid_fraction and stats["valid_fraction"] > 0
        if trained:
            mark = time.perf_counter()
            num_ranks = self.learner.num_ranks
            shards = reshard.options(num_returns=num_ranks).remote(num_ranks, *scored)
            shards = [shards] if num_ranks == 1 else list(shards)
            learn_metrics = self.fetcher.get(self.learner.async_train_step(shards))
            metrics.update(learn_metrics)  # already namespaced `learner/...`
            timings["time/learn"] = time.perf_counter() - mark

            mark = time.perf_counter()
            self.policy_version += 1
            update_ref = self.learner.async_export_weights(self.policy_version)
            sync_refs = self.rollout.async_update_weights(update_ref)
            if self.cfg.schedule == "sync":
                ray.wait(sync_refs, num_returns=len(sync_refs), fetch_local=False)
            timings["time/sync"] = time.perf_counter() - mark
        else:
            logger.warning(
                "step %d skipped: %.0f%% of judged samples invalid (limit %.0f%%); not training on noise",
                step,
                100 * stats["judge/invalid_fraction"],
                100 * self.max_invalid_fraction,
            )
        timings["time/step"] = time.perf_counter() - start
        metrics.update(timings)
        metrics["skipped"] = 0.0 if trained else 1.0
        metrics["dropped_stale_waves"] = float(self.dropped_stale)
        metrics["driver/fetched_bytes"] = float(self.fetcher.take())
        return StepResult(step, metrics, trained)

    def drain(self) -> None:
        """Forget in-flight waves (before a checkpoint restore or shutdown)."""
        self._waves.clear()
