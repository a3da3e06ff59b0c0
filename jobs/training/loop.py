"""The single-controller RL loop: generate → judge → learn → sync weights, sync or async.

The driver holds ObjectRefs and small metric dicts only. Trajectories go rollout actor → judge pool
→ reshard task → learner ranks through the object store; the driver's `DriverFetcher` measures what
it did fetch so a test can hold it to that.

A wave's judge calls are submitted together with its generation, one per engine ref, and run as soon
as that ref is ready. In the async schedule the lookahead waves are therefore generated *and judged*
while the current step learns, so with a latency-bound judge a step costs about its slowest stage.

Timing metrics, per step (seconds):
    time/generate, time/judge, time/learn, time/sync: each stage's own duration: launch → last
        engine done; wave generated → scored; train step submitted → done; weights exported →
        loaded by every engine (async: the latest sync that finished, usually the previous step's).
    time/generate_wait, time/judge_wait, time/sync_wait: what this step spent waiting on that stage
        (0 when it finished while an earlier step learned); time/step: the whole step.
Stage ends are stamped when the driver sees them, which it does whenever it waits (`RLLoop._wait`).
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
class Stage:
    """A stage's output refs and when the driver saw the last of them ready (`perf_counter` seconds)."""

    refs: list[ray.ObjectRef]
    started_at: float
    done_at: float | None = None


@dataclass
class RolloutWave:
    """One step's samples in flight: which step, which weights made it, its generation and judge stages.

    `judging.refs` are the judge's outputs, one per generation ref, submitted at launch; `summary`
    is the scalar statistics task over them (all the driver ever fetches of a wave).
    """

    step: int
    policy_version: int
    generation: Stage
    judging: Stage
    summary: ray.ObjectRef


class TooManySkippedSteps(RuntimeError):
    """`trainer.max_consecutive_skipped_steps` steps in a row were skipped: the judge is failing, stop."""


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
        # The latest weight sync (async: it finishes while later steps run) and the last finished one's seconds.
        self._sync: Stage | None = None
        self._sync_s: float | None = None
        self.dropped_stale = 0
        self.consecutive_skipped = 0

    # ---- generation and judging ------------------------------------------------------------------
    def _launch(self, step: int) -> RolloutWave:
        if self.cfg.judge_prescale_replicas:
            # Ask for judge capacity before the wave arrives; lowered again once nothing is left to judge.
            self.judge.set_min_replicas(self.cfg.judge_prescale_replicas)
        launched_at = time.perf_counter()
        ids = self.schedule.ids_for_step(step)
        refs = self.rollout.async_generate(ids, policy_version=self.policy_version, seed=self.cfg.seed * 100_003 + step)
        # Submitted now, run by Ray once each engine's ref is ready: no driver round trip between stages.
        scored = [self.judge.async_score(ref) for ref in refs]
        return RolloutWave(
            step,
            self.policy_version,
            Stage(refs, launched_at),
            Stage(scored, launched_at),
            summarize.remote(*scored, num_prompts=len(ids)),
        )

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

    def _wait(self, targets: list[ray.ObjectRef], stages: list[Stage]) -> float:
        """Block until `targets` are ready, stamping each of `stages` when its last ref is ready.

        The driver has nothing else to do while it waits, so waiting on the union, one ref at a
        time, gives every overlapped stage its own end time without a thread or an extra task.
        Returns when the targets were seen ready.
        """
        stages = [s for s in stages if s.done_at is None]
        ready: set[ray.ObjectRef] = set()
        while True:
            now = time.perf_counter()
            for stage in stages:
                if stage.done_at is None and ready.issuperset(stage.refs):
                    stage.done_at = now
            if ready.issuperset(targets):
                return now
            unknown = list({*targets, *(r for s in stages if s.done_at is None for r in s.refs)} - ready)
            first, _ = ray.wait(unknown, num_returns=1, fetch_local=False)
            found, _ = ray.wait(unknown, num_returns=len(unknown), timeout=0, fetch_local=False)
            ready.update(first, found)

    def _watched(self, wave: RolloutWave | None = None) -> list[Stage]:
        """Stages still running: `wave`'s, the lookahead waves' and the latest weight sync."""
        waves = [wave, *self._waves] if wave is not None else list(self._waves)
        stages = [stage for w in waves for stage in (w.generation, w.judging)]
        return stages + ([self._sync] if self._sync is not None else [])

    # ---- one step --------------------------------------------------------------------------------
    def run_step(self, step: int) -> StepResult:
        start = time.perf_counter()
        wave = self._next_wave(step)
        self._wait([wave.summary], self._watched(wave))
        stats = self.fetcher.get(wave.summary)
        judged = time.perf_counter()
        if self.cfg.judge_prescale_replicas and not self._waves:
            self.judge.set_min_replicas(0)  # nothing in flight to judge: let load-based autoscaling shrink
        generated_at, scored_at = wave.generation.done_at, wave.judging.done_at
        assert generated_at is not None and scored_at is not None, "a ready summary implies both stages done"
        timings = {
            "time/generate": generated_at - wave.generation.started_at,
            "time/generate_wait": max(0.0, generated_at - start),
            "time/judge": scored_at - generated_at,
            "time/judge_wait": judged - max(start, generated_at),
        }

        metrics: dict[str, Any] = dict(stats)
        metrics["staleness"] = self.policy_version - wave.policy_version
        trained = stats["judge/invalid_fraction"] <= self.max_invalid_fraction and stats["valid_fraction"] > 0
        if trained:
            mark = time.perf_counter()
            num_ranks = self.learner.num_ranks
            shards = reshard.options(num_returns=num_ranks).remote(num_ranks, *wave.judging.refs)
            shards = [shards] if num_ranks == 1 else list(shards)
            learn_ref = self.learner.async_train_step(shards)
            learned = self._wait([learn_ref], self._watched())
            metrics.update(self.fetcher.get(learn_ref))  # already namespaced `learner/...`
            timings["time/learn"] = learned - mark

            mark = time.perf_counter()
            self.policy_version += 1
            update_ref = self.learner.async_export_weights(self.policy_version)
            self._note_finished_sync()
            self._sync = Stage(self.rollout.async_update_weights(update_ref), mark)
            if self.cfg.schedule == "sync":
                self._wait(self._sync.refs, [self._sync])
            timings["time/sync_wait"] = time.perf_counter() - mark
        else:
            logger.warning(
                "step %d skipped: %.0f%% of judged samples invalid (limit %.0f%%); not training on noise",
                step,
                100 * stats["judge/invalid_fraction"],
                100 * self.max_invalid_fraction,
            )
        self.consecutive_skipped = 0 if trained else self.consecutive_skipped + 1
        limit = self.cfg.max_consecutive_skipped_steps
        if limit and self.consecutive_skipped >= limit:
            # A judge that fails every step would otherwise "finish" a run that never trained.
            raise TooManySkippedSteps(
                f"stopping after {limit} steps in a row skipped (steps {step - limit + 1}..{step}): each had more "
                f"than judge.max_invalid_fraction={self.max_invalid_fraction} of its samples invalid (last: "
                f"{stats['judge/invalid_fraction']:.0%}). Check the judge (its judge/status_* counts are logged "
                "per step), or raise trainer.max_consecutive_skipped_steps (0 = never stop)"
            )
        self._note_finished_sync()
        if self._sync_s is not None:
            timings["time/sync"] = self._sync_s
        timings["time/step"] = time.perf_counter() - start
        metrics.update(timings)
        metrics["skipped"] = 0.0 if trained else 1.0
        metrics["dropped_stale_waves"] = float(self.dropped_stale)
        metrics["driver/fetched_bytes"] = float(self.fetcher.take())
        return StepResult(step, metrics, trained)

    def _note_finished_sync(self) -> None:
        if self._sync is not None and self._sync.done_at is not None:
            self._sync_s = self._sync.done_at - self._sync.started_at

    def drain(self) -> None:
        """Forget in-flight waves and their judge calls (before a checkpoint restore or shutdown)."""
        self._waves.clear()
        self._sync = None
