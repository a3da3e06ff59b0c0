"""`privacyalign train` with its learner rank on another node than the driver, outputs in an object store.

Three raylets on this machine (`ray.cluster_utils.Cluster`) stand in for three machines; each has its
own TMPDIR, where its learner rank stages checkpoint files as on a node's local disk, and the drivers
run from their own working directories:

- head: the driver joins it (cluster.address); the rollout engine and the judge pool run here;
- learner node (`learner_node`): the only node a learner rank pinned to it can use;
- stray node (`stray_node`): its processes reach another S3 server, as a node whose mount or
  object-store settings differ would.

1. A 2-step run (checkpoint every step) with trainer.storage=s3://... puts config, metrics, summary
   and both checkpoints into the S3-compatible server (moto on 127.0.0.1); the driver's disk keeps none.
2. A higher-step checkpoint whose upload was killed (files, no state file) is planted.
3. `--resume s3://... trainer.num_steps=3` from a fresh working directory continues at step 2 with
   the first run's metrics intact, and adds step 3.
4. A run whose learner rank sits on the stray node stops with exit 2, naming the sentinel, the rank
   and the node, before anything is trained.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster

from cluster.storage import SENTINEL, RunStorage

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
PIN = 0.01
SMALL = [
    "trainer.prompts_per_step=2",
    "trainer.checkpoint_every=1",
    "trainer.eval_max_prompts=2",
    "trainer.eval_samples_per_prompt=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_plot=false",
    "rollout.samples_per_prompt=2",
    "rollout.max_tokens=48",
    "judge_pool.max_replicas=1",
    "judge.backend=offline",  # storage is under test; the default LLM judge has its own e2e test
]
RUN_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def cluster(s3_server, other_s3_server) -> Iterator[dict]:
    """Head (driver's node) + learner node + stray node, each with its own TMPDIR; yields paths and envs."""
    # Short path: Ray's unix sockets live under it and must stay under 108 characters.
    root = Path(tempfile.mkdtemp(prefix="pa-mn-", dir="/tmp"))
    tmp = {name: root / name for name in ("head", "learner", "stray", "driver1", "driver2", "driver3")}
    for path in tmp.values():
        path.mkdir()

    def node_env(name: str, s3_env: dict[str, str]) -> dict[str, str]:
        return {**s3_env, "TMPDIR": str(tmp[name]), "VLLM_CPU_KVCACHE_SPACE": "1"}

    ray_cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 3, "env_vars": node_env("head", s3_server), "include_dashboard": False},
    )
    ray_cluster.add_node(num_cpus=1, resources={"learner_node": 1}, env_vars=node_env("learner", s3_server))
    ray_cluster.add_node(num_cpus=1, resources={"stray_node": 1}, env_vars=node_env("stray", other_s3_server))
    try:
        ray_cluster.wait_for_nodes()
        ray.init(address=ray_cluster.address, include_dashboard=False)
        nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
        ray.shutdown()  # the drivers under test connect on their own
        yield {"address": ray_cluster.address, "tmp": tmp, "s3_env": s3_server, "nodes": nodes}
    finally:
        ray_cluster.shutdown()
        subprocess.run(["rm", "-rf", str(root)], check=False)


def _train(cluster: dict, workdir: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    """`privacyalign train` as a driver joining the cluster from its own working directory and TMPDIR."""
    workdir_path = cluster["tmp"][workdir]
    env = {
        **os.environ,
        **cluster["s3_env"],
        "TMPDIR": str(workdir_path),
        "PYTHONPATH": str(REPO_ROOT),
        "CI": "true",
        "VLLM_CPU_KVCACHE_SPACE": "1",
    }
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", "train", *args, f"cluster.address={cluster['address']}"],
        cwd=workdir_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


def _metrics(storage: RunStorage) -> list[dict]:
    return [json.loads(line) for line in (storage.read_text("metrics.jsonl") or "").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def runs(cluster, tiny_model_dir) -> Iterator[dict]:
    """The 2-step run and its resume, both storing into s3://<bucket>/multinode-run."""
    uri = "s3://privacyalign-test/multinode-run"
    common = [f"model.cache_dir={tiny_model_dir.parent}", f"learner.resources_per_rank={{learner_node: {PIN}}}"]
    with pytest.MonkeyPatch.context() as env:
        for key, value in cluster["s3_env"].items():
            env.setenv(key, value)  # this process reads the bucket too
        storage = RunStorage.resolve(uri)
        facts: dict = {"storage": storage, "uri": uri}
        started = time.monotonic()
        facts["run1"] = _train(cluster, "driver1", ["--run-dir", uri, "trainer.num_steps=2", *SMALL, *common])
        facts["run1_s"] = time.monotonic() - started
        facts["metrics_run1"] = _metrics(storage)
        facts["checkpoints_run1"] = {
            name: (
                json.loads(storage.read_text("checkpoints", name, "learner_state.json")),
                storage.exists("checkpoints", name, "rng", "rank_0.pt"),
                storage.exists("checkpoints", name, "model.safetensors"),
            )
            for name in storage.list_dirs("checkpoints")
        }
        # A save of step 9 killed mid-upload: rank files are there, the state file (written last) is not.
        storage.upload(tiny_model_dir / "config.json", "checkpoints/step_000009/config.json")
        started = time.monotonic()
        facts["run2"] = _train(cluster, "driver2", ["--resume", uri, "trainer.num_steps=3"])
        facts["run2_s"] = time.monotonic() - started
        print(f"multinode storage runs: first {facts['run1_s']:.0f} s, resume {facts['run2_s']:.0f} s")
        yield facts


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    return log


def test_run_with_a_remote_learner_rank_stores_everything_in_the_object_store(runs, cluster):
    _ok(runs["run1"])
    storage: RunStorage = runs["storage"]
    assert [r["step"] for r in runs["metrics_run1"]] == [0, 1, 2, 2]
    checkpoints = runs["checkpoints_run1"]
    assert sorted(checkpoints) == ["step_000001", "step_000002"]
    for step in (1, 2):
        state, has_rng, has_weights = checkpoints[f"step_{step:06d}"]
        assert state["step"] == step and state["cursor"]["step"] == step
        assert has_rng and has_weights
    assert "storage: s3://privacyalign-test/multinode-run" in storage.read_text("config.yaml")
    assert storage.exists("tensorboard")
    # Nothing landed on the driver's disk or in the learner node's staging area.
    for name in ("driver1", "learner"):
        tree = cluster["tmp"][name].rglob("*")
        leftovers = [str(p) for p in tree if "privacyalign" in p.name or p.name in ("checkpoints", "runs")]
        assert leftovers == [], name


def test_resume_reads_storage_and_continues_at_the_right_step_with_metrics_intact(runs):
    log = _ok(runs["run2"])
    storage: RunStorage = runs["storage"]
    uri = runs["uri"]
    assert f"resumed from {uri}/checkpoints/step_000002 (trainer step 2, learner step 2)" in log
    metrics = _metrics(storage)
    assert [r["step"] for r in metrics] == [0, 1, 2, 2, 3, 3]
    assert metrics[:4] == runs["metrics_run1"], "the first run's records must survive the resume unchanged"
    state = json.loads(storage.read_text("checkpoints", "step_000003", "learner_state.json"))
    assert state["step"] == 3 and state["cursor"] == {"step": 3, "prompts_consumed": 6}
    assert json.loads(storage.read_text("summary.json"))["steps"] == 3
    # keep_last=2: steps 2 and 3 remain; the killed upload of step 9 was never taken for a checkpoint.
    assert storage.list_dirs("checkpoints") == ["step_000002", "step_000003", "step_000009"]


def test_a_rank_that_sees_other_storage_stops_the_run_naming_path_rank_and_node(cluster, tiny_model_dir):
    uri = "s3://privacyalign-test/stray-run"
    result = _train(
        cluster,
        "driver3",
        [
            "--run-dir",
            uri,
            "trainer.num_steps=1",
            *SMALL,
            f"model.cache_dir={tiny_model_dir.parent}",
            f"learner.resources_per_rank={{stray_node: {PIN}}}",
        ],
    )
    assert result.returncode == 2, (result.stdout + result.stderr)[-4000:]
    stray = next(node for node, resources in cluster["nodes"].items() if "stray_node" in resources)
    assert f"learner rank 0 on node {stray}" in result.stderr
    assert f"cannot see the run's storage: {uri}/{SENTINEL}, written by the driver just now, does not exist" in (
        result.stderr
    )
