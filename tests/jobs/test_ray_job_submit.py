"""`ray job submit -- privacyalign train` against a `ray start --head` cluster on loopback, token auth on.

This is how users run on a real cluster: the job must join the running cluster (RAY_ADDRESS is set by
the job supervisor) instead of starting a private one.
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
import time
from pathlib import Path

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
        f"--temp-dir={temp_dir}",
    ]
    launcher = subprocess.Popen(
        start, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        out, _ = launcher.communicate(timeout=180)
        assert launcher.returncode == 0, out.decode(errors="replace")[-3000:]
        yield env, f"http://127.0.0.1:{dashboard_port}"
    finally:
        if launcher.poll() is None:
            launcher.kill()
        _stop_process_group(launcher.pid)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_submitted_async_train_job_joins_the_running_cluster(head_cluster, tmp_path, tiny_model_dir):
    # tiny_model_dir: built (or found) in .cache/models before the clock starts, so the job only loads it.
    env, address = head_cluster
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
