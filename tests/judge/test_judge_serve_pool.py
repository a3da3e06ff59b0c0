"""The judge pool on a real local Ray cluster + Serve: autoscaling, replica loss, cache, HTTP and auth.

One Ray instance (2 CPUs) and one Serve instance for the whole module; the judge replicas run the
deterministic offline backend with an artificial per-request latency, so load is what the test makes
it. Replica counts and throughput are printed (`pytest -s`) for the report.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import ray
from ray import serve

from judge.config import JudgeConfig
from judge.pool import JudgePool
from judge.serve_config import JudgePoolConfig
from records.trajectory_batch import JUDGE_STATUSES, TrajectoryBatch
from scenarios.config import bundled_scenarios_path
from scenarios.loading import load_rows
from scenarios.schema import ScenarioRow

pytestmark = pytest.mark.integration

LATENCY_S = 0.2
TOKEN_ENV = "PRIVACYALIGN_TEST_JUDGE_TOKEN"


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.25) -> float:
    """Poll `predicate` until true; returns the seconds it took (fails the test at the deadline)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(poll_s)
    return time.monotonic() - start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def rows() -> dict[str, ScenarioRow]:
    return {row.id: row for row in load_rows(bundled_scenarios_path(), max_rows=12).rows}


def judge_config(latency_s: float = LATENCY_S) -> JudgeConfig:
    return JudgeConfig(backend="offline", offline_latency_s=latency_s)


def pool_config(**overrides: object) -> JudgePoolConfig:
    defaults: dict[str, object] = dict(
        app_name="judge-test",
        min_replicas=1,
        max_replicas=4,
        initial_replicas=1,
        target_ongoing_requests=2.0,
        max_ongoing_requests=4,
        upscale_delay_s=0.5,
        downscale_delay_s=2.0,
        metrics_interval_s=0.25,
        look_back_period_s=1.0,
        num_cpus_per_replica=0.25,
        max_batch_size=2,
        batch_wait_timeout_s=0.0,
        enable_http=False,
    )
    defaults.update(overrides)
    return JudgePoolConfig(**defaults)  # type: ignore[arg-type]


def make_batch(rows: dict[str, ScenarioRow], tag: str, groups: int, group_size: int = 4) -> TrajectoryBatch:
    """G candidates per scenario alternating the two reference responses; `tag` makes texts unique per burst."""
    ids = list(rows)[:groups]
    scenario_ids, group_ids, texts = [], [], []
    for gid, sid in enumerate(ids):
        row = rows[sid]
        for k in range(group_size):
            ref = row.response_a if k % 2 == 0 else row.response_b
            action = json.loads(ref.action_raw)
            action["arguments"] = {**action.get("arguments", {}), "note": f"{tag}-{k}"}
            scenario_ids.append(sid)
            group_ids.append(gid)
            texts.append(json.dumps(action))
    n = len(texts)
    return TrajectoryBatch(
        scenario_ids=scenario_ids,
        group_ids=group_ids,
        prompt_ids=[[1, 2]] * n,
        completion_ids=[[3, 4, 5]] * n,
        completion_logprobs=[[-0.1, -0.2, -0.3]] * n,
        completion_texts=texts,
        finish_reasons=["stop"] * n,
    )


def timed_score(pool: JudgePool, batch: TrajectoryBatch) -> tuple[TrajectoryBatch, float]:
    before = pool.stats()["judge_calls"]
    start = time.monotonic()
    scored = ray.get(pool.async_score(ray.put(batch)))
    elapsed = time.monotonic() - start
    calls = pool.stats()["judge_calls"] - before
    return scored, calls / elapsed


@pytest.fixture(scope="module")
def pool(ray_cluster: None, rows: dict[str, ScenarioRow]) -> Iterator[JudgePool]:
    pool = JudgePool.start(judge_config(), pool_config(max_replicas=1), ray.put(rows))
    yield pool
    pool.shutdown()


def test_async_score_is_ref_in_ref_out_and_complete(pool: JudgePool, rows: dict[str, ScenarioRow]) -> None:
    batch = make_batch(rows, "basic", groups=2)
    ref = pool.async_score(ray.put(batch))
    assert isinstance(ref, ray.ObjectRef)
    scored = ray.get(ref)
    assert scored.is_scored and len(scored) == len(batch)
    assert scored.completion_texts == batch.completion_texts
    assert set(scored.judge_statuses or []) <= set(JUDGE_STATUSES)
    # The offline judge answers every request here; nothing may be silently zeroed.
    assert scored.judge_statuses == ["ok"] * len(batch)


def test_cache_judges_identical_requests_once(pool: JudgePool, rows: dict[str, ScenarioRow]) -> None:
    batch = make_batch(rows, "cache", groups=1)
    before = pool.stats()["judge_calls"]
    first = ray.get(pool.async_score(ray.put(batch)))
    fresh = pool.stats()["judge_calls"] - before
    assert fresh > 0
    second = ray.get(pool.async_score(ray.put(batch)))
    assert pool.stats()["judge_calls"] - before == fresh  # second pass: all from cache
    assert second.rewards == first.rewards and second.judge_statuses == first.judge_statuses


def test_prescaling_lowers_the_floor_back_to_the_configured_min_not_to_zero(pool: JudgePool) -> None:
    pool.set_replica_bounds(min_replicas=1, max_replicas=2)
    pool.set_min_replicas(2, wait=True)  # the trainer before a wave
    assert pool.num_replicas() == 2 and pool.pool_cfg.min_replicas == 2
    pool.set_min_replicas(0)  # the trainer once nothing is left to judge
    assert pool.pool_cfg.min_replicas == 1
    wait_for(lambda: pool.num_replicas() == 1, timeout_s=60, what="scale-down to the configured floor")
    pool.set_replica_bounds(min_replicas=1, max_replicas=1)


def test_autoscaling_up_under_burst_and_back_to_min(pool: JudgePool, rows: dict[str, ScenarioRow]) -> None:
    # Throughput with the pool pinned at one replica.
    _, rate_1 = timed_score(pool, make_batch(rows, "one-replica", groups=2))
    assert pool.num_replicas() == 1

    pool.set_replica_bounds(min_replicas=1, max_replicas=4)
    t0 = time.monotonic()
    timeline: list[tuple[float, int]] = [(0.0, pool.num_replicas())]
    burst = [pool.async_score(ray.put(make_batch(rows, f"burst-{i}", groups=6))) for i in range(2)]
    pending = list(burst)
    while pending:
        _, pending = ray.wait(pending, timeout=0.5)
        timeline.append((round(time.monotonic() - t0, 1), pool.num_replicas()))
    peak = max(n for _, n in timeline)
    assert all(s == "ok" for b in ray.get(burst) for s in b.judge_statuses or [])
    wait_for(lambda: pool.num_replicas() == 1, timeout_s=60, what="scale-down to min_replicas")
    timeline.append((round(time.monotonic() - t0, 1), pool.num_replicas()))

    # Throughput with N replicas held up by the floor (the trainer's pre-wave hint).
    pool.set_replica_bounds(min_replicas=4, max_replicas=4, wait=True)
    _, rate_n = timed_score(pool, make_batch(rows, "four-replicas", groups=2))
    pool.set_replica_bounds(min_replicas=1, max_replicas=1)
    print(f"\nreplicas over time (s, running): {timeline}")
    print(f"judge throughput: {rate_1:.1f} req/s at 1 replica, {rate_n:.1f} req/s at 4 replicas")
    assert peak > 1, f"never scaled above min_replicas: {timeline}"
    assert rate_n > 1.5 * rate_1
    wait_for(lambda: pool.num_replicas() == 1, timeout_s=60, what="scale-down after the pinned phase")


def test_killed_replica_loses_no_request(pool: JudgePool, rows: dict[str, ScenarioRow]) -> None:
    pool.set_replica_bounds(min_replicas=2, max_replicas=2, wait=True)
    batch = make_batch(rows, "kill", groups=6)
    before = pool.stats()["judge_calls"]
    ref = pool.async_score(ray.put(batch))
    wait_for(lambda: pool.stats()["judge_calls"] > before + 4, timeout_s=30, what="requests in flight", poll_s=0.05)
    replicas = [
        a
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith(f"SERVE_REPLICA::{pool.pool_cfg.app_name}#JudgeDeployment#")
    ]
    assert len(replicas) == 2
    ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]))
    killed_at = time.monotonic()
    scored = ray.get(ref, timeout=120)
    recovered_s = time.monotonic() - killed_at
    statuses = scored.judge_statuses or []
    assert len(statuses) == len(batch)
    # Every request of the dead replica was retried on the live one (max_request_attempts): all ok.
    assert statuses == ["ok"] * len(batch)
    print(
        f"\nafter killing a replica mid-burst: {statuses.count('ok')} ok, {statuses.count('judge_error')} judge_error, "
        f"batch scored {recovered_s:.1f} s after the kill"
    )
    pool.set_replica_bounds(min_replicas=1, max_replicas=1)


def test_http_loopback_default_then_token_when_exposed(
    ray_cluster: None, pool: JudgePool, rows: dict[str, ScenarioRow], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert JudgePoolConfig().http_host == "127.0.0.1"
    row = next(iter(rows.values()))
    body = {"items": [{"row": row.to_dict(), "candidates": [row.response_a.action_raw, row.response_b.action_raw]}]}

    # Serve's HTTP options are cluster-wide: restart Serve for each bind.
    pool.shutdown()
    serve.shutdown()
    port = free_port()
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    loopback = JudgePool.start(
        judge_config(0.0),
        pool_config(app_name="judge-http", enable_http=True, http_port=port, auth_token_env=TOKEN_ENV),
        None,
    )
    reply = httpx.post(f"http://127.0.0.1:{port}/judge", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert [c["judge_status"] for c in data["choices"]] == ["ok", "ok"]
    assert data["model"] and all(v["prompt_hash"] and v["judge_model"] == data["model"] for v in data["verdicts"])
    assert httpx.post(f"http://127.0.0.1:{port}/judge", json={"items": []}, timeout=30).status_code == 400
    loopback.shutdown()
    serve.shutdown()

    exposed_cfg = pool_config(
        app_name="judge-http", enable_http=True, http_host="0.0.0.0", http_port=free_port(), auth_token_env=TOKEN_ENV
    )
    with pytest.raises(ValueError, match=TOKEN_ENV):
        JudgePool.start(judge_config(0.0), exposed_cfg, None)
    monkeypatch.setenv(TOKEN_ENV, "s3cret-token")
    exposed = JudgePool.start(judge_config(0.0), exposed_cfg, None)
    url = f"http://127.0.0.1:{exposed_cfg.http_port}/judge"  # bound to 0.0.0.0, but only talk over loopback
    assert httpx.post(url, json=body, timeout=30).status_code == 401
    wrong = httpx.post(url, json=body, headers={"Authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == 401
    ok = httpx.post(url, json=body, headers={"Authorization": "Bearer s3cret-token"}, timeout=60)
    assert ok.status_code == 200 and len(ok.json()["choices"]) == 2
    exposed.shutdown()
