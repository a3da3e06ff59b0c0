"""`ray job submit -- privacyalign train` against a `ray start --head` cluster on loopback, token auth on.

This is how users run on a real cluster: the job must join the running cluster (RAY_ADDRESS is set by
the job supervisor) instead of starting a private one. `privacyalign serve-judge` joins it the same
way, and must stop on SIGTERM (what Kubernetes sends) by draining, deleting its app and exiting 0.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _live_members(pgid: int) -> list[psutil.Process]:
    """Processes of process group `pgid` that still run (zombies have finished and only await a reaper)."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _stop_process_group(pgid: int, grace_s: float = 5.0) -> None:
    """What `ray stop` does (SIGTERM, then SIGKILL after a grace period), limited to the head we started.

    `ray stop` would end every Ray process on the machine, other people's clusters included.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while _live_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _live_members(pgid):
            return


def _submit(command: list[str], env: dict[str, str], deadline: float) -> subprocess.CompletedProcess[str]:
    """`ray job submit`, again while the head's job agent has not registered yet (`ray start` returns first)."""
    while True:
        timeout = max(1.0, deadline - time.monotonic())
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        if "No available agent to submit job" not in result.stdout + result.stderr or time.monotonic() > deadline - 60:
            return result
        time.sleep(1.0)


@pytest.fixture(scope="module")
def head_cluster():
    """A one-node cluster started the way the README says, with token authentication, once per module.

    `ray start` runs in a new session, so the head's daemons and workers share its process group and
    teardown can stop exactly them; its own temp dir keeps its sockets and logs apart from other clusters.
    """
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "VLLM_CPU_KVCACHE_SPACE": "1",
    }
    env.pop("RAY_ADDRESS", None)
    # Short on purpose: Ray's Unix socket paths under it must stay within the 107-byte limit.
    temp_dir = tempfile.mkdtemp(prefix="rjs-", dir="/tmp")
    dashboard_port, gcs_port = _free_port(), _free_port()
    start = [
        str(BIN / "ray"),
        "start",
        "--head",
        f"--port={gcs_port}",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=4",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        f"--temp-dir={temp_dir}",
    ]
    launcher = subprocess.Popen(
        start, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        out, _ = launcher.communicate(timeout=180)
        assert launcher.returncode == 0, out.decode(errors="replace")[-3000:]
        yield env, f"http://127.0.0.1:{dashboard_port}", f"127.0.0.1:{gcs_port}"
    finally:
        if launcher.poll() is None:
            launcher.kill()
        _stop_process_group(launcher.pid)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_serve_judge_drains_deletes_its_app_and_exits_0_on_sigterm(head_cluster, tmp_path):
    # First in the module: Serve's HTTP options are cluster-wide and fixed by whoever starts Serve first.
    env, _, gcs = head_cluster
    port, app = _free_port(), "judge-sigterm"
    log = tmp_path / "serve-judge.log"
    args = [f"judge_pool.app_name={app}", f"judge_pool.http_port={port}", "judge_pool.num_cpus_per_replica=0.25"]
    # Each request takes 3 s, so the one sent before SIGTERM is still in flight when it arrives.
    args += ["judge.offline_latency_s=3", "data.max_rows=4"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", "serve-judge", *args],
            cwd=REPO,
            env={**env, "RAY_ADDRESS": gcs, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while "serving" not in log.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        row = json.loads((REPO / "scenarios" / "bundled" / "scenarios.jsonl").read_text().splitlines()[0])
        candidates = [row["response_a"]["action_raw"], row["response_b"]["action_raw"]]
        body = {"items": [{"scenario_id": row["id"], "candidates": candidates}]}
        url = f"http://127.0.0.1:{port}/judge"
        with httpx.Client(timeout=120) as client:
            in_flight = client.build_request("POST", url, json=body)
            replies: list[httpx.Response] = []
            sender = threading.Thread(target=lambda: replies.append(client.send(in_flight)))
            sender.start()
            # Poll until the request's connection is up (the proxy routes it within milliseconds).
            deadline = time.monotonic() + 30
            while not any(c.raddr and c.raddr.port == port for c in psutil.Process().net_connections()):
                assert time.monotonic() < deadline, "the request never connected"
                time.sleep(0.05)
            sent_at = time.monotonic()
            os.kill(proc.pid, signal.SIGTERM)
            sender.join(timeout=120)
            rc = proc.wait(timeout=120)
            stopped_s = time.monotonic() - sent_at
        output = log.read_text(errors="replace")
        assert rc == 0, output[-3000:]
        assert "Traceback" not in output and "judge pool 'judge-sigterm' deleted" in output, output[-3000:]
        (reply,) = replies  # the request in flight when SIGTERM came was answered, not cut off
        assert reply.status_code == 200 and [c["judge_status"] for c in reply.json()["choices"]] == ["ok", "ok"]
        # The app is gone from the cluster (the proxy, part of the cluster's Serve, stays up).
        assert httpx.post(url, json=body, timeout=30).status_code == 404
        print(f"\nserve-judge: SIGTERM to exit 0 in {stopped_s:.1f} s, the in-flight request answered")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def test_submitted_async_train_job_joins_the_running_cluster(head_cluster, tmp_path, tiny_model_dir):
    # tiny_model_dir: built (or found) in .cache/models before the clock starts, so the job only loads it.
    env, address, _ = head_cluster
    run_dir = tmp_path / "submitted-run"
    submission_id = f"test-train-{secrets.token_hex(4)}"
    submit = [
        str(BIN / "ray"),
        "job",
        "submit",
        f"--address={address}",
        f"--submission-id={submission_id}",
        f"--working-dir={REPO}",
        "--",
        "privacyalign",
        "train",
        f"--run-dir={run_dir}",
        f"model.cache_dir={tiny_model_dir.parent}",  # the model the fixture built
        "trainer.num_steps=2",
        "trainer.schedule=async",
        "trainer.max_staleness=1",
        "trainer.prompts_per_step=2",
        "trainer.eval_max_prompts=1",
        "trainer.eval_samples_per_prompt=1",
        "trainer.checkpoint_every=0",
        "trainer.enable_progress_bar=false",
        "rollout.max_tokens=32",
        "judge.backend=offline",  # what is tested is the submission; the LLM judge has its own e2e test
    ]
    started = time.monotonic()
    try:
        result = _submit(submit, env, deadline=started + 600)
    finally:
        # The job's entrypoint runs in its own session, outside the head's process group: a job left
        # running by a timeout is stopped through Ray (a no-op once it has finished).
        stop = [str(BIN / "ray"), "job", "stop", f"--address={address}", submission_id]
        subprocess.run(stop, env=env, capture_output=True, timeout=120)
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
    env, address, _ = head_cluster
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
    env, _, _ = head_cluster
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
