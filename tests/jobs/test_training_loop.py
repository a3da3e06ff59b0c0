"""RLLoop's schedule on a real Ray cluster with stand-in components of known stage durations.

The rollout engine and the learner are single-threaded actors (one call at a time, like the real
ones) and the judge is a latency-bound service (a task per engine ref, so concurrent requests
overlap). Their work is a fixed sleep *inside* the remote call, so each stage's own duration is
known and the loop's overlap and timing metrics can be checked against it. Deadlines: a hung engine
and a dead learner rank (its peer blocked, as in a collective) must fail the step fast, named.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import ray

from actors.group import ActorCallError
from jobs.training.loop import RLLoop, StageDeadlines, TooManySkippedSteps
from jobs.training.prompt_schedule import PromptSchedule
from jobs.training.trainer_config import TrainerConfig
from records.trajectory_batch import TrajectoryBatch

pytestmark = pytest.mark.integration

GENERATE_S, JUDGE_S, LEARN_S = 0.3, 0.5, 1.2
STEPS = 3
DEADLINES = StageDeadlines(generate_s=60, judge_s=60, learn_s=60)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@ray.remote(num_cpus=0)
class _Engine:
    def generate(self, scenario_ids: Sequence[str], version: int, seed: int) -> TrajectoryBatch:
        time.sleep(GENERATE_S)  # the stage's work
        n = len(scenario_ids)
        tokens = [[seed % 101 + i] for i in range(n)]
        return TrajectoryBatch(
            list(scenario_ids), list(range(n)), [[1]] * n, tokens, [[-0.5]] * n, ["x"] * n, ["stop"] * n, version
        )

    def update_weights(self, version: int) -> int:
        return version


@ray.remote(num_cpus=0)
def _judge(batch: TrajectoryBatch) -> TrajectoryBatch:
    time.sleep(JUDGE_S)  # a hosted judge's latency
    rewards = [ids[0] / 10 for ids in batch.completion_ids]
    return batch.with_scores(rewards, rewards, [True] * len(batch), ["ok"] * len(batch))


@ray.remote(num_cpus=0)
class _Learner:
    def train_step(self, shard: TrajectoryBatch) -> dict[str, float]:
        time.sleep(LEARN_S)
        return {"learner/samples": float(len(shard))}

    def export_weights(self, version: int) -> int:
        return version


class Rollout:
    def __init__(self) -> None:
        self.engine = _Engine.remote()

    def async_generate(self, scenario_ids: Sequence[str], policy_version: int, seed: int) -> list[ray.ObjectRef]:
        return [self.engine.generate.remote(scenario_ids, policy_version, seed)]

    def async_update_weights(self, update: ray.ObjectRef) -> list[ray.ObjectRef]:
        return [self.engine.update_weights.remote(update)]


class Judge:
    def __init__(self) -> None:
        self.min_replicas: list[int] = []

    def async_score(self, ref: ray.ObjectRef) -> ray.ObjectRef:
        return _judge.remote(ref)

    def set_min_replicas(self, n: int) -> None:
        self.min_replicas.append(n)

    def num_replicas(self) -> int:
        return max([1, *self.min_replicas[-1:]])


class Learner:
    num_ranks = 1

    def __init__(self) -> None:
        self.actor = _Learner.remote()

    def async_train_step(self, shards: list[ray.ObjectRef]) -> list[ray.ObjectRef]:
        return [self.actor.train_step.remote(shards[0])]

    def async_export_weights(self, version: int) -> list[ray.ObjectRef]:
        return [self.actor.export_weights.remote(version)]


def _run(schedule: str) -> tuple[list[dict[str, Any]], Judge]:
    judge = Judge()
    cfg = TrainerConfig(num_steps=STEPS, prompts_per_step=2, schedule=schedule, judge_prescale_replicas=2)
    loop = RLLoop(
        cfg,
        PromptSchedule([f"s{i}" for i in range(4)], prompts_per_step=2, seed=0),
        Rollout(),
        judge,
        Learner(),
        deadlines=DEADLINES,
    )
    metrics = [loop.run_step(step).metrics for step in range(STEPS)]
    loop.drain()
    return metrics, judge


def test_async_judges_the_next_wave_while_the_step_learns(local_ray) -> None:
    sync, sync_judge = _run("sync")
    async_, async_judge = _run("async")

    # Rewards depend on the seed only, never on timing: both schedules see the same samples.
    assert [m["reward/mean"] for m in async_] == [m["reward/mean"] for m in sync]
    assert [m["staleness"] for m in sync] == [0] * STEPS and [m["staleness"] for m in async_] == [0, 1, 1]
    assert all(m["dropped_stale_waves"] == 0.0 and m["driver/fetched_bytes"] < 4096 for m in sync + async_)
    # Prescale before every launch; lowered once nothing is left to judge (async: only after the last wave).
    assert sync_judge.min_replicas == [2, 0] * STEPS and async_judge.min_replicas == [2, 2, 2, 0]
    # Each step logs the replicas serving after its judging (the fake pool runs its floor, at least 1).
    assert [m["judge/replicas"] for m in sync] == [1.0] * STEPS
    assert [m["judge/replicas"] for m in async_] == [2.0, 2.0, 1.0]

    for m in sync:  # one stage after another: the step waits for each in full
        assert m["time/generate_wait"] >= GENERATE_S * 0.9 and m["time/judge_wait"] >= JUDGE_S * 0.9
        assert m["time/step"] >= GENERATE_S + JUDGE_S + LEARN_S
        assert "time/sync" in m and m["time/sync_wait"] >= m["time/sync"]
    for m in async_[1:]:  # generated and judged during the previous step's learning: no wait, own time kept
        # Bounds sit midway between overlapped and serial, so scheduling noise on a busy box passes
        # while a lost overlap (the serial step takes GENERATE_S + JUDGE_S longer) fails.
        assert m["time/generate_wait"] == 0.0 and m["time/judge_wait"] < JUDGE_S / 2
        assert m["time/generate"] >= GENERATE_S * 0.9 and m["time/judge"] >= JUDGE_S * 0.8
        assert LEARN_S <= m["time/step"] < LEARN_S + (GENERATE_S + JUDGE_S) / 2
    for m in sync + async_:
        assert m["time/learn"] >= LEARN_S and m["time/judge"] >= JUDGE_S * 0.8


@ray.remote(num_cpus=0)
def _judge_failing_on(batch: TrajectoryBatch, steps: set[int]) -> TrajectoryBatch:
    step = batch.completion_ids[0][0]  # the engine's first token is the seed, = step with trainer seed 0
    n = len(batch)
    ok = step not in steps
    return batch.with_scores([0.1] * n, [0.0] * n, [ok] * n, ["ok" if ok else "judge_error"] * n)


class FailingJudge(Judge):
    def __init__(self, steps: set[int]) -> None:
        super().__init__()
        self.steps = steps

    def async_score(self, ref: ray.ObjectRef) -> ray.ObjectRef:
        return _judge_failing_on.remote(ref, self.steps)


@pytest.mark.parametrize("limit", [2, 0])
def test_stops_after_consecutive_skipped_steps(local_ray, limit: int) -> None:
    cfg = TrainerConfig(num_steps=5, prompts_per_step=2, max_consecutive_skipped_steps=limit)
    schedule = PromptSchedule([f"s{i}" for i in range(4)], prompts_per_step=2, seed=0)
    loop = RLLoop(cfg, schedule, Rollout(), FailingJudge({0, 2, 3, 4}), Learner(), deadlines=DEADLINES)
    # A trained step in between resets the count: steps 0 and 2 are not two in a row.
    assert [loop.run_step(step).trained for step in range(3)] == [False, True, False]
    if limit:
        with pytest.raises(TooManySkippedSteps, match=r"after 2 steps in a row skipped \(steps 2\.\.3\)"):
            loop.run_step(3)
    else:  # 0 = never stop
        assert [loop.run_step(step).trained for step in (3, 4)] == [False, False]
    loop.drain()


@ray.remote(num_cpus=0, max_restarts=0)
class _Stuck:
    """A hung actor: its call never returns (a wedged engine, or a rank blocked on a dead peer)."""

    def generate(self, *args: Any) -> None:
        threading.Event().wait()

    def train_step(self, shard: TrajectoryBatch) -> None:
        threading.Event().wait()


@ray.remote(num_cpus=0, max_restarts=0)
class _Dying:
    def train_step(self, shard: TrajectoryBatch) -> None:
        os._exit(1)  # the rank's process dies mid-step


class HungSecondEngine(Rollout):
    def __init__(self) -> None:
        super().__init__()
        self.stuck = _Stuck.remote()

    def async_generate(self, scenario_ids: Sequence[str], policy_version: int, seed: int) -> list[ray.ObjectRef]:
        return [*super().async_generate(scenario_ids, policy_version, seed), self.stuck.generate.remote()]


class SecondRankDies(Learner):
    num_ranks = 2

    def __init__(self) -> None:
        super().__init__()
        self.blocked, self.dying = _Stuck.remote(), _Dying.remote()

    def async_train_step(self, shards: list[ray.ObjectRef]) -> list[ray.ObjectRef]:
        return [self.blocked.train_step.remote(shards[0]), self.dying.train_step.remote(shards[1])]


def test_hung_engine_fails_the_step_at_its_deadline_naming_it(local_ray) -> None:
    rollout = HungSecondEngine()
    # The healthy engine's actor is up before the clock starts, so on a loaded box only engine 1 is late.
    ray.get(rollout.engine.generate.remote(["s0"], 0, 0))
    cfg = TrainerConfig(num_steps=1, prompts_per_step=2)
    schedule = PromptSchedule([f"s{i}" for i in range(4)], prompts_per_step=2, seed=0)
    deadlines = StageDeadlines(generate_s=2, judge_s=60, learn_s=60)
    loop = RLLoop(cfg, schedule, rollout, Judge(), Learner(), deadlines=deadlines)
    start = time.perf_counter()
    with pytest.raises(ActorCallError, match=r"^rollout engine 1 \(generating step 0\) did not finish within 2 s$"):
        loop.run_step(0)
    assert 2 <= time.perf_counter() - start < 10
    ray.kill(rollout.stuck)


def test_dead_learner_rank_fails_the_step_at_once_while_its_peer_hangs(local_ray) -> None:
    learner = SecondRankDies()
    cfg = TrainerConfig(num_steps=1, prompts_per_step=2)
    schedule = PromptSchedule([f"s{i}" for i in range(4)], prompts_per_step=2, seed=0)
    deadlines = StageDeadlines(generate_s=60, judge_s=60, learn_s=60)  # far away: fail-fast must act, not these
    rollout = Rollout()
    # Every actor is up before the clock starts: on a loaded box their start-up alone took 15 s.
    ray.get([actor.__ray_ready__.remote() for actor in (rollout.engine, learner.blocked, learner.dying)])
    loop = RLLoop(cfg, schedule, rollout, Judge(), learner, deadlines=deadlines)
    start = time.perf_counter()
    with pytest.raises(ActorCallError, match=r"^learner rank 1 \(train step 0\) failed: ActorDiedError"):
        loop.run_step(0)
    assert time.perf_counter() - start < GENERATE_S + JUDGE_S + 10
    ray.kill(learner.blocked)
