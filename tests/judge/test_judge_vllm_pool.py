"""The `vllm` judge backend end to end: a real vLLM engine in a Serve judge replica, on the tiny judge.

The tiny judge (`build-model --size judge`, compact prompts) answers with verdict lines, so this is a
real model's output through Serve's batching and the verdict parser: nearly every request must parse,
every status is counted, and a sample without a usable verdict is masked (valid False, zero
advantage), never rewarded. One engine for the whole module, stopped with the application.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from ray import serve

from judge.backends.base import prompt_hash
from judge.config import JudgeConfig
from judge.pool import JudgePool
from judge.reward import parse_outputs, plan_requests
from judge.serve_config import JudgePoolConfig, VllmBackendConfig
from records.trajectory_batch import JUDGE_STATUSES, TrajectoryBatch
from scenarios.config import bundled_scenarios_path
from scenarios.loading import load_rows
from scenarios.schema import ScenarioRow

pytestmark = pytest.mark.integration

JUDGE_CFG = JudgeConfig(backend="vllm", prompt_style="compact", seed=3)


@pytest.fixture(scope="module")
def rows() -> dict[str, ScenarioRow]:
    return {row.id: row for row in load_rows(bundled_scenarios_path(), max_rows=2).rows}


@pytest.fixture(scope="module")
def vllm_pool(tiny_judge_dir: Path, rows: dict[str, ScenarioRow]) -> Iterator[JudgePool]:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("RAY_SERVE_QUEUE_LENGTH_RESPONSE_DEADLINE_S", "1.0")
    ray.init(num_cpus=2, include_dashboard=False, namespace="judge-vllm-test")
    pool_cfg = JudgePoolConfig(
        app_name="judge-vllm",
        min_replicas=1,
        max_replicas=1,
        initial_replicas=1,
        max_ongoing_requests=32,
        num_cpus_per_replica=1,
        max_batch_size=16,
        batch_wait_timeout_s=0.05,
        enable_http=False,
        vllm=VllmBackendConfig(model=str(tiny_judge_dir), max_model_len=1024, max_tokens=48),
    )
    pool = JudgePool.start(JUDGE_CFG, pool_cfg, rows)
    yield pool
    pool.shutdown()  # stops the replica, whose destructor shuts the engine down
    serve.shutdown()
    ray.shutdown()


def make_batch(rows: dict[str, ScenarioRow]) -> TrajectoryBatch:
    row = next(iter(rows.values()))
    texts = [row.response_a.action_raw, row.response_b.action_raw, "not a tool call", json.dumps({"type": "x"})]
    n = len(texts)
    return TrajectoryBatch(
        scenario_ids=[row.id] * n,
        group_ids=[0] * n,
        prompt_ids=[[1]] * n,
        completion_ids=[[2, 3]] * n,
        completion_logprobs=[[-0.5, -0.5]] * n,
        completion_texts=texts,
        finish_reasons=["stop"] * n,
    )


def test_vllm_judge_statuses_are_counted_and_masked(vllm_pool: JudgePool, rows: dict[str, ScenarioRow]) -> None:
    batch = make_batch(rows)

    # Request level: one output per planned call, with provenance; each parses to a known status.
    calls = plan_requests(batch, rows, JUDGE_CFG)
    outputs = serve.get_app_handle("judge-vllm").judge_many.remote([c.request for c in calls]).result()
    assert len(outputs) == len(calls) == 12  # 6 pairs × dual order
    for call, out in zip(calls, outputs, strict=True):
        assert out.judge_model == str(vllm_pool.pool_cfg.vllm.model) and out.seed == JUDGE_CFG.seed
        assert out.prompt_hash == prompt_hash(call.request.messages) and out.replica
        assert out.error == ""  # the engine answered every request
    verdicts = parse_outputs(calls, [o.text for o in outputs])
    request_statuses = Counter(v.status for v in verdicts)
    print(f"\nvllm tiny judge, per request: {dict(request_statuses)}")
    assert sum(request_statuses.values()) == len(calls)
    # Malformed answers are judged too (the format penalty is separate); the verdict line still parses.
    assert request_statuses["ok"] >= 0.9 * len(calls), [o.text for o in outputs]

    # Sample level: the same batch through the pool's trainer API.
    scored = ray.get(vllm_pool.async_score(ray.put(batch)))
    statuses = scored.judge_statuses or []
    print(f"vllm tiny judge, per sample: {dict(Counter(statuses))}")
    assert len(statuses) == len(batch) and set(statuses) <= set(JUDGE_STATUSES)
    for status, valid, reward, adv in zip(
        statuses, scored.valid or [], scored.rewards or [], scored.advantages or [], strict=True
    ):
        if status != "ok":
            assert (valid, reward, adv) == (False, 0.0, 0.0)
        else:
            assert valid
    valid_advantages = [a for a, v in zip(scored.advantages or [], scored.valid or [], strict=True) if v]
    assert abs(sum(valid_advantages)) < 1e-9  # group-mean baseline over the valid samples only


def test_tiny_judge_agrees_with_the_oracle_on_unseen_test_rows(vllm_pool: JudgePool) -> None:
    """Leak verdicts on candidates of test-split rows, whose private matters the judge never saw.

    judge-eval measures this on the whole split (README); here a few rows guard against a judge that
    parses but no longer judges (a broken build, a prompt that drifted from the one it was trained on).
    """
    from judge.parsing import parse_pointwise
    from judge.reward import judge_request
    from scenarios.candidates import build_candidates

    test_rows = load_rows(bundled_scenarios_path(), split="test", max_rows=6).rows
    labelled = [(row, c) for row in test_rows for c in build_candidates(row)]
    requests = [
        judge_request(f"t{i}", "pointwise", row.judge_view(), (c.answer,), JUDGE_CFG)
        for i, (row, c) in enumerate(labelled)
    ]
    outputs = serve.get_app_handle("judge-vllm").judge_many.remote(requests).result()
    verdicts = [parse_pointwise(o.text) for o in outputs]
    assert all(v.status == "ok" for v in verdicts), [o.text for o in outputs]
    leak_right = sum(v.leaks == c.leaks for v, (_, c) in zip(verdicts, labelled, strict=True)) / len(labelled)
    print(f"\ntiny judge leak accuracy on {len(labelled)} test-split candidates: {leak_right:.1%}")
    assert leak_right >= 0.8  # judge-eval on all 96 test rows: 90 %
