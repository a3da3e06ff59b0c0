"""`ray job submit -- privacyalign train` against a `ray start --head` cluster on loopback, token auth on.

This is how users run on a real cluster: the job must join the running cluster (RAY_ADDRESS is set by
the job supervisor) instead of starting a private one.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def head_cluster(tmp_path):
    """A one-node cluster started the way the README says, with token authentication."""
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "VLLM_CPU_KVCACHE_SPACE": "1",
    }
    env.pop("RAY_ADDRESS", None)
    dashboard_port = _free_port()
    start = [
        str(BIN / "ray"),
        "start",
        "--head",
        f"--port={_free_port()}",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=4",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
    ]
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=180)
    try:
        yield env, f"http://127.0.0.1:{dashboard_port}"
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_submitted_async_train_job_joins_the_running_cluster(head_cluster, tmp_path):
    env, address = head_cluster
    run_dir = tmp_path / "submitted-run"
    submit = [
        str(BIN / "ray"),
        "job",
        "submit",
        f"--address={address}",
        f"--working-dir={REPO}",
        "--",
        "privacyalign",
        "train",
        f"--run-dir={run_dir}",
        f"model.cache_dir={REPO / '.cache' / 'models'}",  # reuse the built tiny model
        "trainer.num_steps=2",
        "trainer.schedule=async",
        "trainer.max_staleness=1",
        "trainer.prompts_per_step=2",
        "trainer.eval_max_prompts=1",
        "trainer.eval_samples_per_prompt=1",
        "trainer.checkpoint_every=0",
        "trainer.enable_progress_bar=false",
        "rollout.max_tokens=32",
    ]
    started = time.monotonic()
    result = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=600)
    tail = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, tail
    assert "succeeded" in tail.lower(), tail
    # `ray job submit` streams the driver's log; its start says whether it joined or embedded a cluster.
    assert "(connected)" in result.stdout + result.stderr, "the job started its own cluster instead of joining"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 2.0
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r for r in records if "reward/mean" in r]
    assert [r["step"] for r in train_steps] == [1, 2]
    # Async: step 2's samples were generated while step 1 trained, by weights one version old.
    assert [r["staleness"] for r in train_steps] == [0, 1]
    assert time.monotonic() - started < 600


def test_submission_without_the_token_is_refused(head_cluster):
    env, address = head_cluster
    no_token = {k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN"}
    no_token["RAY_AUTH_TOKEN_PATH"] = "/nonexistent/auth_token"
    result = subprocess.run(
        [str(BIN / "ray"), "job", "list", f"--address={address}"],
        env=no_token,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "token" in (result.stdout + result.stderr).lower()


def test_run_without_an_address_starts_its_own_cluster_beside_a_running_one(head_cluster):
    """On a machine that also runs a `ray start` cluster, the laptop default must not join it silently."""
    env, _ = head_cluster
    code = (
        "import ray; from cluster.config import ClusterConfig; from cluster.connect import connect; "
        "info = connect(ClusterConfig(num_cpus=1, num_gpus=0)); "
        "print('RESULT', info.embedded, ray.cluster_resources()['CPU'], len(ray.nodes()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("RESULT")]
    # Its own one-node cluster with the 1 CPU it asked for, not the running head's 4.
    assert line.split()[1:] == ["True", "1.0", "1"]
