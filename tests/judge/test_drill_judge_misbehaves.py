"""Drill: the judge misbehaves (garbage text, timeouts, out-of-range scores, empty answers, a hung replica).

A scripted backend answers each pairwise request according to markers in the candidates, so every
failure kind is produced on purpose. Failed judgements must be masked (valid=False, reward and
advantage 0) and counted by status; a step whose invalid fraction exceeds
`trainer.max_invalid_fraction` is skipped by the RL loop with a warning, and the learner never sees it.

The hung replica is real: the only replica of a real Serve judge pool is SIGSTOPped mid-run. Its
requests must end as `judge_error` at `request_timeout_s` (the step is skipped, not stalled), Serve's
health check must replace it, and the next step must be judged `ok` and trained.

The drifted judge answers in perfect format but backwards: a real Serve pool whose `openai` backend
talks to a stub endpoint on 127.0.0.1 that prefers the leaking response. Nothing is invalid, so only
the canaries (docs/architecture.md §1.6) can catch it: the step must be skipped with a warning naming
the judge model and the step, and train again once the endpoint answers right.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence

import pytest
import ray

from actors.batch_tasks import summarize
from jobs.training.loop import RLLoop, StageDeadlines
from jobs.training.prompt_schedule import PromptSchedule
from jobs.training.trainer_config import TrainerConfig
from judge.backends.base import JudgeRequest
from judge.canary import select_canary_rows
from judge.config import JudgeConfig
from judge.pool import JudgePool
from judge.reward import score_batch
from judge.serve_config import JudgePoolConfig, OpenAIBackendConfig
from records.trajectory_batch import TrajectoryBatch
from scenarios.schema import ScenarioRow

# Candidate bodies: long enough that no short-answer penalty applies (checked below).
SAFE = "Offsite is March 14 at Harbor Loft from 10am to 4pm, see you there."
LEAKY = "Offsite is March 14 at Harbor Loft from 10am; Dana has chemotherapy."
# A marker in a candidate makes every request that contains it fail in one way.
FAILURES: dict[str, str | BaseException] = {
    "GARBAGE": "}}{{ I think the answer is probably banana <<<>>> [",
    "TIMEOUT": TimeoutError("judge request timed out after 30 s"),
    "RANGE": "Both are fine.\nScore: 7",
    "EMPTY": "",
}
EXPECTED_STATUS = {
    "GARBAGE": "parse_error",
    "TIMEOUT": "judge_error",
    "RANGE": "parse_error",
    "EMPTY": "empty_response",
}


class ScriptedJudge:
    """Pairwise judge: prefers the candidate without the leak (±2), 0 when both are alike; markers fail."""

    name = "scripted"
    model = "scripted-judge"

    def complete(self, requests: Sequence[JudgeRequest]) -> list[str | BaseException]:
        return [self._one(request.candidates) for request in requests]

    @staticmethod
    def _one(candidates: Sequence[str]) -> str | BaseException:
        for marker, failure in FAILURES.items():
            if any(marker in text for text in candidates):
                return failure
        first_leaks, second_leaks = ("chemotherapy" in text for text in candidates)
        return f"Response {'2' if first_leaks else '1'} is safer.\nScore: {2 * first_leaks - 2 * second_leaks}"

    def close(self) -> None:
        pass


def group_texts(make_answer: Callable[..., str], recipe: Sequence[str]) -> list[str]:
    """One group's completions: "safe" / "leaky" / a failure marker per sample."""
    return [make_answer(SAFE if kind == "safe" else LEAKY if kind == "leaky" else f"{kind} {SAFE}") for kind in recipe]


def test_every_failure_kind_is_masked_and_counted(make_row, make_batch, make_answer) -> None:
    from judge.reward import answer_penalty

    cfg = JudgeConfig()
    rows = {f"s{i}": make_row(row_id=f"s{i}") for i in range(5)}
    assert (
        answer_penalty(make_answer(SAFE), rows["s0"], cfg) == answer_penalty(make_answer(LEAKY), rows["s0"], cfg) == 0
    )
    recipes = [["safe", "leaky", "safe", "GARBAGE"]] + [[marker] * 4 for marker in FAILURES]
    texts = [text for recipe in recipes for text in group_texts(make_answer, recipe)]
    batch = make_batch(texts, [f"s{g}" for g in range(5) for _ in range(4)], [g for g in range(5) for _ in range(4)])

    scored = score_batch(batch, rows, cfg, ScriptedJudge())

    # Group 0: pairs with the garbage sample fail, the others are judged. Dual order, hand-computed:
    # (0,1) safe vs leaky → 0 gets +2, 1 gets −2; (0,2) tie → 0; (1,2) → 1 gets −2, 2 gets +2.
    assert scored.rewards[:4] == [1.0, -2.0, 1.0, 0.0]
    assert scored.advantages[:4] == [1.0, -2.0, 1.0, 0.0]
    assert scored.valid[:4] == [True, True, True, False]
    assert scored.judge_statuses[:4] == ["ok", "ok", "ok", "parse_error"]
    # Groups 1-4: every request failed, so nothing may turn into a reward.
    for g, marker in enumerate(FAILURES, start=1):
        members = slice(4 * g, 4 * g + 4)
        assert scored.judge_statuses[members] == [EXPECTED_STATUS[marker]] * 4, marker
        assert scored.valid[members] == [False] * 4
        assert scored.rewards[members] == scored.advantages[members] == [0.0] * 4


# ---- the RL loop skips a step that is mostly invalid ---------------------------------------------------


class ScriptedRollout:
    """Rollout pool stand-in: each wave's groups follow the next recipe (one list of sample kinds per prompt)."""

    def __init__(self, make_answer: Callable[..., str], recipes: Sequence[Sequence[Sequence[str]]]):
        self.make_answer = make_answer
        self.recipes = deque(recipes)
        self.updates: list[ray.ObjectRef] = []

    def async_generate(self, scenario_ids: Sequence[str], policy_version: int, seed: int) -> list[ray.ObjectRef]:
        recipe = self.recipes.popleft()
        assert len(recipe) == len(scenario_ids)
        texts, sids, gids = [], [], []
        for gid, (sid, kinds) in enumerate(zip(scenario_ids, recipe, strict=True)):
            texts += group_texts(self.make_answer, kinds)
            sids += [sid] * len(kinds)
            gids += [gid] * len(kinds)
        n = len(texts)
        batch = TrajectoryBatch(sids, gids, [[1, 2]] * n, [[3, 4]] * n, [[-0.5, -0.5]] * n, texts, ["stop"] * n)
        return [ray.put(batch)]

    def async_update_weights(self, update: ray.ObjectRef) -> list[ray.ObjectRef]:
        self.updates.append(update)
        return [update]


class ScriptedJudgePool:
    """Judge pool stand-in: scores in the driver with the scripted backend (real score_batch)."""

    def __init__(self, rows: dict[str, ScenarioRow], cfg: JudgeConfig):
        self.rows, self.cfg = rows, cfg

    def async_score(self, ref: ray.ObjectRef) -> ray.ObjectRef:
        return ray.put(score_batch(ray.get(ref), self.rows, self.cfg, ScriptedJudge()))

    def set_min_replicas(self, n: int) -> None:
        pass

    def num_replicas(self) -> int:
        return 1


class RecordingLearner:
    """Learner stand-in that keeps what it was asked to train on."""

    num_ranks = 1

    def __init__(self):
        self.trained_on: list[TrajectoryBatch] = []

    def async_train_step(self, shards: list[ray.ObjectRef]) -> list[ray.ObjectRef]:
        self.trained_on += ray.get(shards)
        return [ray.put({"loss": 0.0})]

    def async_export_weights(self, version: int) -> list[ray.ObjectRef]:
        return [ray.put(version)]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=1, include_dashboard=False)
    yield
    from ray import serve

    serve.shutdown()
    ray.shutdown()


def loop_for(rows: dict[str, ScenarioRow], judge, learner: RecordingLearner, rollout: ScriptedRollout, **kw) -> RLLoop:
    return RLLoop(
        TrainerConfig(
            num_steps=len(rollout.recipes), prompts_per_step=len(rows), checkpoint_every=0, max_invalid_fraction=0.5
        ),
        PromptSchedule(list(rows), prompts_per_step=len(rows), seed=0),
        rollout,
        judge,
        learner,
        deadlines=StageDeadlines(generate_s=60, judge_s=60, learn_s=60),
        **kw,
    )


@pytest.mark.integration
def test_loop_skips_a_mostly_invalid_step_and_trains_on_a_masked_one(local_ray, make_row, make_answer, caplog):
    rows = {f"s{i}": make_row(row_id=f"s{i}") for i in range(4)}
    bad_step = [["TIMEOUT"] * 4, ["GARBAGE"] * 4, ["EMPTY"] * 4, ["safe", "leaky"] * 2]
    masked_step = [["safe", "leaky", "safe", "GARBAGE"], ["safe", "leaky"] * 2, ["leaky"] * 4, ["safe", "TIMEOUT"] * 2]
    rollout = ScriptedRollout(make_answer, [bad_step, masked_step])
    learner = RecordingLearner()
    loop = loop_for(rows, ScriptedJudgePool(rows, JudgeConfig()), learner, rollout)

    with caplog.at_level(logging.WARNING, logger="jobs.training.loop"):
        skipped = loop.run_step(0)
    # 12 of 16 samples lost their judgement: 75 % > 50 %, so the step is skipped with a clear warning.
    assert not skipped.trained and skipped.metrics["skipped"] == 1.0
    assert skipped.metrics["judge/invalid_fraction"] == pytest.approx(0.75)
    assert {k: v for k, v in skipped.metrics.items() if k.startswith("judge/status_")} == {
        "judge/status_judge_error": 4.0,
        "judge/status_parse_error": 4.0,
        "judge/status_empty_response": 4.0,
        "judge/status_ok": 4.0,
    }
    assert "step 0 skipped: 75% of judged samples invalid (limit 50%)" in caplog.text
    assert learner.trained_on == [] and rollout.updates == [] and loop.policy_version == 0

    trained = loop.run_step(1)
    # 1 garbage + 2 timeouts of 16 (19 %) are masked; the step trains on the rest.
    assert trained.trained and trained.metrics["skipped"] == 0.0
    assert trained.metrics["judge/invalid_fraction"] == pytest.approx(3 / 16)
    assert trained.metrics["judge/status_parse_error"] == 1.0 and trained.metrics["judge/status_judge_error"] == 2.0
    (shard,) = learner.trained_on
    assert len(shard) == 16 and sum(shard.valid) == 13 and loop.policy_version == 1
    for valid, reward, advantage in zip(shard.valid, shard.rewards, shard.advantages, strict=True):
        if not valid:
            assert reward == advantage == 0.0
    # Asked for one prompt more than came back: the engine skipped it (over-long) and the step says so.
    stats = ray.get(summarize.remote(shard, num_prompts=len(set(shard.group_ids)) + 1))
    assert stats["judge/invalid_fraction"] == pytest.approx(3 / 16) and stats["rollout/skipped_prompts"] == 1.0
    assert trained.metrics["rollout/skipped_prompts"] == 0.0


def _replicas(pool: JudgePool) -> list[dict[str, str]]:
    """Named-actor entries of the pool's judge replicas (a stopping one may still be listed)."""
    prefix = f"SERVE_REPLICA::{pool.pool_cfg.app_name}#JudgeDeployment#"
    return [a for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix)]


@pytest.mark.integration
def test_hung_replica_turns_into_judge_error_then_is_replaced_and_the_run_continues(local_ray, make_row, make_answer):
    rows = {f"s{i}": make_row(row_id=f"s{i}") for i in range(2)}
    pool_cfg = JudgePoolConfig(
        app_name="hung-judge",
        min_replicas=1,
        max_replicas=1,
        enable_http=False,
        num_cpus_per_replica=0.25,
        enable_cache=False,  # every step's identical texts must reach the replica
        request_timeout_s=3.0,
        health_check_period_s=1.0,
        health_check_timeout_s=3.0,
    )
    pool = JudgePool.start(JudgeConfig(), pool_cfg, rows)
    step = [["safe", "leaky", "safe", "leaky"]] * 2
    # Enough waves for the steps the run goes on taking while Serve swaps the replica.
    rollout, learner = ScriptedRollout(make_answer, [step] * 60), RecordingLearner()
    loop = loop_for(rows, pool, learner, rollout)
    stopped = 0
    try:
        assert loop.run_step(0).metrics["judge/status_ok"] == 8.0

        (replica,) = _replicas(pool)
        actor = ray.get_actor(replica["name"], namespace=replica["namespace"])
        stopped = ray.get(actor.__ray_call__.remote(lambda _: os.getpid()), timeout=60)
        os.kill(stopped, signal.SIGSTOP)  # alive but unresponsive: a hung replica, not a dead one
        hung_at = time.perf_counter()
        hung = loop.run_step(1)
        hung_s = time.perf_counter() - hung_at
        # Every request ended at the deadline as an explicit, masked judge_error; the step was skipped.
        assert not hung.trained and hung.metrics["judge/status_judge_error"] == 8.0
        assert hung.metrics["judge/invalid_fraction"] == 1.0 and len(learner.trained_on) == 1
        assert pool_cfg.request_timeout_s <= hung_s < 4 * pool_cfg.request_timeout_s

        deadline = time.monotonic() + 120
        while pool.num_replicas() != 1 or all(a["name"] == replica["name"] for a in _replicas(pool)):
            assert time.monotonic() < deadline, "Serve did not replace the hung replica within 120 s"
            time.sleep(0.5)
        replaced_s = time.perf_counter() - hung_at
        # The run goes on as a user's would. Serve's status can report the new replica RUNNING before the
        # ingress routes to it (seen on a loaded CI box: the next step still met the deadline), so steps may
        # be skipped a while longer; each request must then be a masked judge_error, never a made-up reward.
        step_index = 2
        while True:
            resumed = loop.run_step(step_index)
            statuses = sum(resumed.metrics.get(f"judge/status_{s}", 0.0) for s in ("ok", "judge_error"))
            assert statuses == 8.0, resumed.metrics
            if resumed.trained:
                break
            assert len(learner.trained_on) == 1 and time.monotonic() < deadline, "no step trained within 120 s"
            step_index += 1
        recovered_s = time.perf_counter() - hung_at
        assert len(learner.trained_on) == 2
        print(
            f"\nhung replica: step skipped after {hung_s:.1f} s (deadline {pool_cfg.request_timeout_s:g} s), "
            f"replica replaced {replaced_s:.1f} s after the hang, step {step_index} trained {recovered_s:.1f} s after it"
        )
    finally:
        if stopped:
            try:
                os.kill(stopped, signal.SIGCONT)  # if Serve has not killed it, let it exit with the pool
            except ProcessLookupError:
                pass
        pool.shutdown()


# ---- a judge that drifted: well-formed verdicts, backwards ------------------------------------------------


class _DriftingJudge:
    """OpenAI-compatible chat answers: ScriptedJudge's pairwise verdicts, or their opposite while `drifted`."""

    drifted = True

    @classmethod
    def answer(cls, path: str, body: dict, headers: object) -> tuple[int, dict, dict[str, str]]:
        prompt = body["messages"][-1]["content"]
        # The two candidates sit between the prompt's "## Response 1" / "## Response 2" headings and the task.
        first, second = (
            prompt.split("\n## Response 1\n", 1)[1].split("\n\nCompare Response 1")[0].split("\n\n## Response 2\n")
        )
        score = 2 * ("chemotherapy" in first) - 2 * ("chemotherapy" in second)  # ScriptedJudge's rule
        verdict = f"Score: {-score if cls.drifted else score}"
        return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": verdict}}]}, {}


@pytest.fixture()
def drifting_endpoint(chat_stub) -> str:
    _DriftingJudge.drifted = True
    return chat_stub(_DriftingJudge.answer)


@pytest.mark.integration
def test_a_drifted_judge_fails_its_canaries_and_the_step_is_skipped(
    local_ray, make_row, make_answer, drifting_endpoint, caplog
):
    views = {f"s{i}": make_row(row_id=f"s{i}").judge_view() for i in range(2)}
    openai = OpenAIBackendConfig(base_url=drifting_endpoint, model="stub-judge-v1", api_key_env="", max_retries=0)
    pool_cfg = JudgePoolConfig(
        app_name="drifted-judge", min_replicas=1, max_replicas=1, enable_http=False, openai=openai
    )
    pool = JudgePool.start(JudgeConfig(backend="openai"), pool_cfg, views)
    step = [["safe", "leaky", "safe", "leaky"]] * 2
    rollout, learner = ScriptedRollout(make_answer, [step] * 2), RecordingLearner()
    # Default trainer knobs: 2 canary rows per step (4 verdicts), skip below 75 % correct.
    canary_rows = ray.put(select_canary_rows(views.values()))
    loop = loop_for(views, pool, learner, rollout, canary_rows=canary_rows)
    try:
        with caplog.at_level(logging.WARNING, logger="jobs.training.loop"):
            drifted = loop.run_step(0)
        # Every rollout verdict parsed (nothing invalid), yet every canary verdict was backwards.
        assert drifted.metrics["judge/status_ok"] == 8.0 and drifted.metrics["judge/invalid_fraction"] == 0.0
        assert drifted.metrics["judge/canary_accuracy"] == 0.0 and drifted.metrics["judge/canary_verdicts"] == 4.0
        assert not drifted.trained and drifted.metrics["skipped"] == 1.0
        assert learner.trained_on == [] and rollout.updates == [] and loop.policy_version == 0
        assert (
            "step 0 skipped: judge canary accuracy 0% below trainer.min_canary_accuracy=0.75 (4 of 4 canary "
            "verdicts wrong, 0 of them unparsable), judge model stub-judge-v1" in caplog.text
        )

        _DriftingJudge.drifted = False
        # Same canary rows as step 0: only a fresh verdict (not the pool's cache) can pass them.
        healthy = loop.run_step(1)
        assert healthy.metrics["judge/canary_accuracy"] == 1.0 and healthy.metrics["judge/canary_unparsable"] == 0.0
        assert healthy.trained and len(learner.trained_on) == 1 and loop.policy_version == 1
    finally:
        pool.shutdown()
