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

Canaries (docs/architecture.md §1.6): with `canary_rows`, every wave also sends the judge
`trainer.canary_pairs_per_step` requests whose verdicts are known. Their report rides in the wave's
summary stage, is logged as `judge/canary_*`, and a step whose canary accuracy is below
`trainer.min_canary_accuracy` is skipped like a step with too many invalid verdicts.

Deadlines: every stage must finish within its `StageDeadlines` seconds of its launch, else the run
fails with an `ActorCallError` naming the engine, learner rank or judge call still out (a hung actor
is not a dead one: Ray would wait forever). Learner stages are read rank by rank as they finish, so a
dead rank fails the step at once instead of after the survivors' collective timeout.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import ray

from actors.batch_tasks import reshard, summarize
from actors.group import ActorCallError, fetch_checked
from jobs.training.driver_fetch import DriverFetcher
from jobs.training.prompt_schedule import PromptSchedule
from jobs.training.trainer_config import TrainerConfig
from judge.canary import CanaryReport

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageDeadlines:
    """Seconds a stage may take from its launch before the run fails naming what is still out."""

    # One engine's generation of a wave, queueing behind earlier calls included (rollout.call_timeout_s).
    generate_s: float
    # Scoring one engine's samples once generated (judge.serve_app.score_timeout_s).
    judge_s: float
    # A collective learner call on every rank: train step or weight export (learner.call_timeout_s).
    learn_s: float


@dataclass
class Stage:
    """A stage's output refs, its deadline, and when the driver saw the last of them ready (`perf_counter` s)."""

    refs: list[ray.ObjectRef]
    started_at: float
    # What each ref is, for the deadline's message: "rollout engine 1 (generating step 3)".
    labels: list[str]
    # Seconds from `started_at` until the run fails naming the refs not ready.
    timeout_s: float
    # Read each ref as soon as it is ready (small results only): a failed learner rank then fails the
    # wait at once, while the surviving ranks would block in their collective for minutes.
    enable_fail_fast: bool = False
    done_at: float | None = None
    # Values read by fail-fast, by ref.
    values: dict[ray.ObjectRef, Any] = field(default_factory=dict)

    @property
    def deadline(self) -> float:
        return self.started_at + self.timeout_s

    def overdue_message(self, ready: set[ray.ObjectRef]) -> str:
        late = [label for ref, label in zip(self.refs, self.labels, strict=True) if ref not in ready]
        return f"{', '.join(late)} did not finish within {self.timeout_s:g} s"


@dataclass
class RolloutWave:
    """One step's samples in flight: which step, which weights made it, its generation and judge stages.

    `judging.refs` are the judge's outputs, one per generation ref, submitted at launch; `summary`
    is the scalar statistics task over them, then the canary report when canaries are sent (all the
    driver ever fetches of a wave).
    """

    step: int
    policy_version: int
    generation: Stage
    judging: Stage
    summary: Stage


class TooManySkippedSteps(RuntimeError):
    """`trainer.max_consecutive_skipped_steps` steps in a row were skipped: the judge is failing, stop."""


def skip_reasons(
    stats: dict[str, float], canaries: CanaryReport | None, max_invalid_fraction: float, min_canary_accuracy: float
) -> list[str]:
    """Why a step's update must not run (empty = train): too many invalid verdicts, or a judge failing its canaries."""
    reasons = []
    if stats["judge/invalid_fraction"] > max_invalid_fraction or stats["valid_fraction"] == 0:
        reasons.append(
            f"{stats['judge/invalid_fraction']:.0%} of judged samples invalid (limit {max_invalid_fraction:.0%}); "
            "not training on noise"
        )
    if canaries is not None and canaries.accuracy < min_canary_accuracy:
        wrong = canaries.verdicts - canaries.correct
        models = ", ".join(canaries.judge_models) or "unknown (no canary verdict came back)"
        reasons.append(
            f"judge canary accuracy {canaries.accuracy:.0%} below trainer.min_canary_accuracy="
            f"{min_canary_accuracy:g} ({wrong} of {canaries.verdicts} canary verdicts wrong, {canaries.unparsable} "
            f"of them unparsable), judge model {models}: the judge may have drifted; not training on its rewards"
        )
    return reasons


@dataclass
class StepResult:
    step: int
    metrics: dict[str, Any]
    trained: bool


class RolloutWorkers(Protocol):
    """What the loop needs of the rollout engines (actors.rollout_pool.RolloutPool); one ref per engine."""

    def async_generate(
        self, scenario_ids: Sequence[str], policy_version: int = 0, seed: int | None = None
    ) -> list[ray.ObjectRef]: ...

    def async_update_weights(self, update: Any) -> list[ray.ObjectRef]: ...


class Judges(Protocol):
    """What the loop needs of the judge pool (judge.pool.JudgePool)."""

    def async_score(self, batch_ref: ray.ObjectRef) -> ray.ObjectRef: ...

    def async_canaries(self, rows_ref: ray.ObjectRef, step: int, pairs: int) -> ray.ObjectRef: ...

    def set_min_replicas(self, n: int) -> None: ...

    def num_replicas(self) -> int: ...


class Learners(Protocol):
    """What the loop needs of the learner ranks (jobs.training.session.LearnerGroup); one ref per rank."""

    num_ranks: int

    def async_train_step(self, shard_refs: list[ray.ObjectRef]) -> list[ray.ObjectRef]: ...

    def async_export_weights(self, version: int) -> list[ray.ObjectRef]: ...


class RLLoop:
    """Runs training steps against already-started components (see jobs/training/session.py).

    Args:
        cfg: the trainer section of the config.
        schedule: which scenario ids each step uses.
        rollout: the rollout engines.
        judge: the judge pool (`async_canaries` is called only when `canary_rows` is given).
        learner: the learner ranks (rank 0's ref first).
        deadlines: how long each stage may take.
        policy_version: weights version the engines hold now (the learner's step count).
        canary_rows: ref to the judge views of the canary rows; None = send no canaries.
    """

    def __init__(
        self,
        cfg: TrainerConfig,
        schedule: PromptSchedule,
        rollout: RolloutWorkers,
        judge: Judges,
        learner: Learners,
        *,
        deadlines: StageDeadlines,
        policy_version: int = 0,
        canary_rows: ray.ObjectRef | None = None,
    ):
        self.cfg = cfg
        self.schedule = schedule
        self.rollout = rollout
        self.judge = judge
        self.learner = learner
        self.deadlines = deadlines
        self.policy_version = policy_version
        self.canary_rows = canary_rows
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
        summary, summary_labels = [summarize.remote(*scored, num_prompts=len(ids))], [f"step {step}'s summary"]
        if self.canary_rows is not None and self.cfg.canary_pairs_per_step:
            summary.append(self.judge.async_canaries(self.canary_rows, step, self.cfg.canary_pairs_per_step))
            summary_labels.append(f"judge pool (step {step}'s canaries)")
        engines = range(len(refs))
        generate_s, judge_s = self.deadlines.generate_s, self.deadlines.generate_s + self.deadlines.judge_s
        return RolloutWave(
            step,
            self.policy_version,
            Stage(refs, launched_at, [f"rollout engine {e} (generating step {step})" for e in engines], generate_s),
            Stage(scored, launched_at, [f"judge pool (scoring engine {e}'s step {step})" for e in engines], judge_s),
            Stage(summary, launched_at, summary_labels, judge_s),
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

    def _wait(self, until: Stage, watched: list[Stage]) -> float:
        """Block until `until` is done, stamping each of `watched` when its last ref is ready.

        The driver has nothing else to do while it waits, so waiting on the union, one ref at a
        time, gives every overlapped stage its own end time without a thread or an extra task.
        Returns when `until` was seen done.

        Raises:
            ActorCallError: a watched stage passed its deadline, or a fail-fast stage's call failed.
        """
        stages = [s for s in {id(s): s for s in (until, *watched)}.values() if s.done_at is None]
        ready: set[ray.ObjectRef] = set()
        while True:
            now = time.perf_counter()
            for stage in stages:
                if stage.enable_fail_fast:
                    for ref, label in zip(stage.refs, stage.labels, strict=True):
                        if ref in ready and ref not in stage.values:
                            stage.values[ref] = fetch_checked(ref, label, self.fetcher.get)
                if stage.done_at is None and ready.issuperset(stage.refs):
                    stage.done_at = now
            if until.done_at is not None:
                return until.done_at
            pending = [s for s in stages if s.done_at is None]
            unknown = list({r for s in pending for r in s.refs} - ready)
            timeout = max(0.0, min(s.deadline for s in pending) - now)
            first, _ = ray.wait(unknown, num_returns=1, timeout=timeout, fetch_local=False)
            if not first:
                overdue = [s for s in pending if s.deadline <= time.perf_counter()]
                if overdue:
                    raise ActorCallError("; ".join(s.overdue_message(ready) for s in overdue))
                continue  # ray.wait can return a hair before its timeout (it rounds to milliseconds)
            found, _ = ray.wait(unknown, num_returns=len(unknown), timeout=0, fetch_local=False)
            ready.update(first, found)

    def _watched(self, wave: RolloutWave | None = None) -> list[Stage]:
        """Stages still running: `wave`'s, the lookahead waves' and the latest weight sync."""
        waves = [wave, *self._waves] if wave is not None else list(self._waves)
        stages = [stage for w in waves for stage in (w.generation, w.judging, w.summary)]
        return stages + ([self._sync] if self._sync is not None else [])

    # ---- one step --------------------------------------------------------------------------------
    def run_step(self, step: int) -> StepResult:
        start = time.perf_counter()
        wave = self._next_wave(step)
        self._wait(wave.summary, self._watched(wave))
        stats = self.fetcher.get(wave.summary.refs[0])
        canaries = self.fetcher.get(wave.summary.refs[1]) if len(wave.summary.refs) > 1 else None
        judged = time.perf_counter()
        if self.cfg.judge_prescale_replicas and not self._waves:
            self.judge.set_min_replicas(0)  # nothing in flight to judge: back to the configured floor
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
        if canaries is not None:
            metrics.update(canaries.metrics())
        # Replicas serving after this step's judging: the autoscaling (and pre-scaling) as a curve.
        metrics["judge/replicas"] = float(self.judge.num_replicas())
        reasons = skip_reasons(stats, canaries, self.cfg.max_invalid_fraction, self.cfg.min_canary_accuracy)
        trained = not reasons
        if trained:
            mark = time.perf_counter()
            num_ranks = self.learner.num_ranks
            shards = reshard.options(num_returns=num_ranks).remote(num_ranks, *wave.judging.refs)
            shards = [shards] if num_ranks == 1 else list(shards)
            learn_refs = self.learner.async_train_step(shards)
            ranks = [f"learner rank {r} (train step {step})" for r in range(len(learn_refs))]
            learn = Stage(learn_refs, mark, ranks, self.deadlines.learn_s, enable_fail_fast=True)
            learned = self._wait(learn, self._watched())
            metrics.update(learn.values[learn_refs[0]])  # already namespaced `learner/...`
            timings["time/learn"] = learned - mark

            mark = time.perf_counter()
            self.policy_version += 1
            self._note_finished_sync()
            self._sync = self._sync_stage(mark)
            if self.cfg.schedule == "sync":
                self._wait(self._sync, [])
            timings["time/sync_wait"] = time.perf_counter() - mark
        else:
            logger.warning("step %d skipped: %s", step, "; ".join(reasons))
        self.consecutive_skipped = 0 if trained else self.consecutive_skipped + 1
        limit = self.cfg.max_consecutive_skipped_steps
        if limit and self.consecutive_skipped >= limit:
            # A judge that fails every step would otherwise "finish" a run that never trained.
            raise TooManySkippedSteps(
                f"stopping after {limit} steps in a row skipped (steps {step - limit + 1}..{step}); the last: "
                f"{'; '.join(reasons)}. Check the judge (its judge/status_* and judge/canary_* metrics are logged "
                "per step; limits trainer.max_invalid_fraction, trainer.min_canary_accuracy), or raise "
                "trainer.max_consecutive_skipped_steps (0 = never stop)"
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

    def _sync_stage(self, mark: float) -> Stage:
        """Export the learner's weights (all ranks gather) and load them into every engine.

        Rank 0's export feeds the engines, so its failure fails their loads; the other ranks' exports
        are watched themselves (fail-fast), since a rank that dies mid-gather leaves rank 0 hanging.
        """
        version = self.policy_version
        export = self.learner.async_export_weights(version)
        loads = self.rollout.async_update_weights(export[0])
        labels = [f"rollout engine {e} (loading weights v{version})" for e in range(len(loads))]
        labels += [f"learner rank {r} (exporting weights v{version})" for r in range(1, len(export))]
        timeout_s = self.deadlines.learn_s + self.deadlines.generate_s
        return Stage(loads + export[1:], mark, labels, timeout_s, enable_fail_fast=True)

    def _note_finished_sync(self) -> None:
        if self._sync is not None and self._sync.done_at is not None:
            self._sync_s = self._sync.done_at - self._sync.started_at

    def drain(self) -> None:
        """Forget in-flight waves and their judge calls (before a checkpoint restore or shutdown)."""
        self._waves.clear()
        self._sync = None
