"""Which Serve app a job judges with, on a real local Ray cluster + Serve: its own uniquely named pool,
or a shared `serve-judge` pool it attaches to and never reconfigures or deletes; and the token check
against the HTTP bind Serve really has.

One Ray instance (2 CPUs) and one Serve instance with a loopback proxy, as `serve-judge` starts it,
for the module; only the token test restarts Serve (its HTTP options are fixed for the life of an
instance), and it runs no Ray tasks afterwards: a worker that called Serve keeps a client of the
controller it first met. Judge replicas run the deterministic offline backend with no latency.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Callable

import pytest
import ray
from ray import serve
from ray.serve import context as serve_context
from ray.serve.schema import ServeInstanceDetails

from jobs.config_loading import load_config
from jobs.serve_judge import ServeJudgeConfig
from judge.config import JudgeConfig
from judge.pool import JudgePool, open_job_pool
from judge.serve_app import JUDGE_DEPLOYMENT
from judge.serve_config import JudgePoolConfig
from records.trajectory_batch import TrajectoryBatch
from scenarios.loading import in_split, load_data
from scenarios.schema import ScenarioRow

pytestmark = pytest.mark.integration

TOKEN_ENV = "PRIVACYALIGN_TEST_SHARED_JUDGE_TOKEN"
# A job's own pool section: small and quick to scale; its name is only the prefix of the job's app name.
JOB_POOL = JudgePoolConfig(min_replicas=1, max_replicas=2, num_cpus_per_replica=0.25, max_batch_size=4)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def apps() -> set[str]:
    return set(serve.status().applications)


def min_replicas_deployed(app: str) -> int:
    """The judge deployment's autoscaling floor as Serve holds it (what a rescale would change)."""
    details = ServeInstanceDetails(**serve_context._get_global_client().get_serve_details())
    autoscaling = details.applications[app].deployments[JUDGE_DEPLOYMENT].deployment_config.autoscaling_config
    return int(autoscaling["min_replicas"])


@pytest.fixture(scope="module")
def serve_judge_cfg() -> ServeJudgeConfig:
    """serve-judge's own defaults (stable app name, loopback HTTP), on a free port of this machine."""
    return load_config(ServeJudgeConfig, None, [f"judge_pool.http_port={free_port()}", "judge_pool.max_replicas=2"])


@pytest.fixture(scope="module")
def serve_instance(ray_cluster: None, serve_judge_cfg: ServeJudgeConfig) -> None:
    """Serve with serve-judge's loopback proxy, whichever test starts first."""
    serve.start(
        http_options={"host": serve_judge_cfg.judge_pool.http_host, "port": serve_judge_cfg.judge_pool.http_port}
    )


@pytest.fixture(scope="module")
def rows(serve_judge_cfg: ServeJudgeConfig) -> dict[str, ScenarioRow]:
    """The rows serve-judge loads (its `data` section), as judge views, as `serve_judge.main` holds them."""
    return {row.id: row.judge_view() for row in load_data(serve_judge_cfg.data).rows}


@pytest.fixture
def job_batch(rows: dict[str, ScenarioRow], make_batch: Callable[..., TrajectoryBatch]) -> TrajectoryBatch:
    """Both reference answers of three train scenarios: one peer group per scenario."""
    train = [row for row in rows.values() if in_split(row, "train")][:3]
    texts = [text for row in train for text in (row.response_a.action_raw, row.response_b.action_raw)]
    return make_batch(texts, [row.id for row in train for _ in range(2)], [g for g in range(3) for _ in range(2)])


def test_each_job_gets_its_own_app_and_deleting_one_keeps_the_other(
    serve_instance: None, rows: dict[str, ScenarioRow], job_batch: TrajectoryBatch
) -> None:
    judge_cfg = JudgeConfig()
    train = open_job_pool("train", judge_cfg, JOB_POOL, rows)
    evaluate = open_job_pool("evaluate", judge_cfg, JOB_POOL, rows)
    print(f"\njob apps: {train.app_name}, {evaluate.app_name}; running: {sorted(apps())}")
    assert train.app_name != evaluate.app_name
    assert train.app_name.startswith("privacyalign-judge-train-")
    assert evaluate.app_name.startswith("privacyalign-judge-evaluate-")
    assert {train.app_name, evaluate.app_name} <= apps() and "privacyalign-judge" not in apps()
    assert train.http_bind is None and evaluate.http_bind is None  # handle calls only

    train.shutdown()
    assert train.app_name not in apps() and evaluate.app_name in apps()
    scored = ray.get(evaluate.async_score(ray.put(job_batch)))
    assert scored.judge_statuses == ["ok"] * len(job_batch)
    evaluate.shutdown()


def test_two_jobs_share_one_serve_judge_pool_and_neither_deletes_it(
    serve_instance: None,
    serve_judge_cfg: ServeJudgeConfig,
    rows: dict[str, ScenarioRow],
    job_batch: TrajectoryBatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    start = time.monotonic()
    # What `serve_judge.main` deploys: its config, its rows, the stable app name.
    shared = JudgePool.start(serve_judge_cfg.judge, serve_judge_cfg.judge_pool, rows)
    name = serve_judge_cfg.judge_pool.app_name
    assert name == "privacyalign-judge" and shared.http_bind == ("127.0.0.1", serve_judge_cfg.judge_pool.http_port)
    floor = min_replicas_deployed(name)

    # A second serve-judge under the same name would replace the running one: refused.
    with pytest.raises(ValueError, match="already runs on this cluster"):
        JudgePool.start(serve_judge_cfg.judge, serve_judge_cfg.judge_pool, rows)

    train_ids = [i for i, row in rows.items() if in_split(row, "train")]
    jobs = {
        "train": open_job_pool("train", JudgeConfig(pool=name), JOB_POOL, rows, train_ids),
        "evaluate": open_job_pool("evaluate", JudgeConfig(pool=name), JOB_POOL, None),
    }
    assert all(job.app_name == name and not job.owned for job in jobs.values())
    assert apps() == {name}  # attaching deployed nothing

    # Both jobs score through the one pool at once.
    calls_before = shared.stats()["judge_calls"]
    refs = {kind: job.async_score(ray.put(job_batch)) for kind, job in jobs.items()}
    scored = {kind: ray.get(ref) for kind, ref in refs.items()}
    for batch in scored.values():
        assert batch.judge_statuses == ["ok"] * len(job_batch)
    assert scored["train"].rewards == scored["evaluate"].rewards
    calls = shared.stats()["judge_calls"] - calls_before

    # The trainer's pre-wave scaling hint must not reconfigure the shared pool.
    with caplog.at_level("INFO", logger="judge.pool"):
        jobs["train"].set_min_replicas(2)
        jobs["train"].set_min_replicas(0)
    assert min_replicas_deployed(name) == floor
    skipped = [r.getMessage() for r in caplog.records if "not rescaling" in r.getMessage()]
    assert len(skipped) == 1, skipped

    for job in jobs.values():
        job.shutdown()
    assert name in apps()
    assert shared.num_replicas() >= 1
    after = ray.get(shared.async_score(ray.put(job_batch)))
    assert after.judge_statuses == ["ok"] * len(job_batch)
    attached = {kind: job.app_name for kind, job in jobs.items()}
    print(
        f"\nshared pool {name!r} (serve-judge config, HTTP {shared.http_bind}): "
        f"jobs {attached} attached; {2 * len(job_batch)} samples scored by both "
        f"jobs with {calls} fresh judge calls (cache shared); floor stays {floor} after the train job's "
        f"rescale hint ({skipped[0]!r}); after both jobs shut down: running apps {sorted(apps())}, "
        f"{shared.num_replicas()} replica(s), still scoring; {time.monotonic() - start:.1f}s"
    )
    shared.shutdown()
    assert name not in apps()


def test_attach_errors_name_the_app_and_the_mismatch(serve_instance: None, rows: dict[str, ScenarioRow]) -> None:
    other = open_job_pool("evaluate", JudgeConfig(), JOB_POOL, rows)
    with pytest.raises(ValueError, match=f"judge.pool='no-such-judge'.*does not exist.*{other.app_name}"):
        open_job_pool("train", JudgeConfig(pool="no-such-judge"), JOB_POOL, rows)
    # A pool that would score with other settings, or lacks the job's rows, is refused too.
    with pytest.raises(ValueError, match="judge.reward_mode: job 'anchor', pool 'peer_pairwise'"):
        open_job_pool("train", JudgeConfig(pool=other.app_name, reward_mode="anchor"), JOB_POOL, None)
    with pytest.raises(ValueError, match="no scenario rows for 1 of the job's 1 scenarios"):
        open_job_pool("train", JudgeConfig(pool=other.app_name), JOB_POOL, None, ["not-a-row"])
    assert apps() == {other.app_name}
    other.shutdown()


def test_token_and_http_are_checked_against_the_running_serve(
    ray_cluster: None, rows: dict[str, ScenarioRow], monkeypatch: pytest.MonkeyPatch
) -> None:
    http_cfg = JudgePoolConfig(app_name="judge-http", http_port=free_port(), num_cpus_per_replica=0.25)
    # Nothing running: the attach error says so and names the app.
    serve.shutdown()
    with pytest.raises(ValueError, match="judge.pool='no-such-judge'.*no Serve instance.*privacyalign serve-judge"):
        open_job_pool("train", JudgeConfig(pool="no-such-judge"), JOB_POOL, rows)

    # A job started Serve without a proxy; an HTTP pool on it would never be reachable: refused.
    serve.start(proxy_location="Disabled")
    with pytest.raises(ValueError, match="without an HTTP proxy"):
        JudgePool.start(JudgeConfig(), http_cfg, rows)
    assert "judge-http" not in apps()
    serve.shutdown()

    # Another job or pool already started Serve with its proxy on every interface.
    exposed_port = free_port()
    serve.start(http_options={"host": "0.0.0.0", "port": exposed_port})
    # This pool's own config says loopback; Serve would ignore that, so the real bind decides.
    loopback_cfg = dataclasses.replace(http_cfg, auth_token_env=TOKEN_ENV)
    assert loopback_cfg.http_host == "127.0.0.1"
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(ValueError, match=f"refusing to serve the judge on 0.0.0.0 without a bearer token.*{TOKEN_ENV}"):
        JudgePool.start(JudgeConfig(), loopback_cfg, rows)
    assert "judge-http" not in apps()

    monkeypatch.setenv(TOKEN_ENV, "s3cret-token")
    pool = JudgePool.start(JudgeConfig(), loopback_cfg, rows)
    assert pool.http_bind == ("0.0.0.0", exposed_port)
    pool.shutdown()
    serve.shutdown()


def test_a_pool_starts_after_serve_ran_on_an_earlier_ray_cluster_in_this_process(
    ray_cluster: None, rows: dict[str, ScenarioRow]
) -> None:
    # A notebook or a test session that ran Serve and then called ray.shutdown() (not serve.shutdown())
    # keeps the dead controller's handle, and the next cluster reuses the job id that handle is keyed by.
    serve.start(proxy_location="Disabled")
    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, namespace="judge-after-restart")
    pool = JudgePool.start(JudgeConfig(), dataclasses.replace(JOB_POOL, app_name="after-restart"), rows)
    assert "after-restart" in apps()
    pool.shutdown()
