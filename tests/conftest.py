"""Shared fixtures (the tiny offline-built model, cached across the whole session) and the tier guard.

Tiers (tests/README.md): unmarked tests are the unit tier and must start no Ray cluster and need no
model; `integration` and `e2e` mark the rest, per module (`pytestmark`) or per test.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# vLLM's CPU backend sizes its KV cache from this (GiB); keep it small so engines fit beside each other.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """HF-format tiny Qwen2 checkpoint built offline (tokenizer + warm start), cached by config hash."""
    from learner.tiny_model import ensure_tiny_model

    return ensure_tiny_model(cache_dir=REPO_ROOT / ".cache" / "models")


@pytest.fixture(scope="session")
def tiny_judge_dir() -> Path:
    """The tiny judge checkpoint (`build-model --size judge`), copied from its shipped build."""
    from learner.tiny_model import TINY_JUDGE, resolve_judge_model

    return Path(resolve_judge_model(TINY_JUDGE, cache_dir=REPO_ROOT / ".cache" / "models"))


S3_BUCKET = "privacyalign-test"


@contextlib.contextmanager
def moto_server(bucket: str = S3_BUCKET) -> Iterator[dict[str, str]]:
    """A real S3-compatible server (moto in server mode) on 127.0.0.1 holding an empty `bucket`.

    Yields the environment that points pyarrow (and boto3) at it: endpoint, dummy keys, a fixed
    region, no EC2 metadata look-ups. Starts in about a second, so unit-tier tests may use it.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, f"moto server exited with {server.returncode}"
                assert time.monotonic() < deadline, "moto server did not answer within 30 s"
                time.sleep(0.1)
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        import boto3

        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        ).create_bucket(Bucket=bucket)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """One moto server for the whole session (see `moto_server`); yields its environment."""
    with moto_server() as env:
        yield env


@pytest.fixture(scope="module")
def other_s3_server() -> Iterator[dict[str, str]]:
    """A second, separate moto server: what a node configured with another object store reaches."""
    with moto_server() as env:
        yield env


@pytest.fixture
def s3_bucket(s3_server, monkeypatch) -> str:
    """The test bucket's name, with s3_server's environment set in this process for the test
    (pyarrow reads it when it opens a URI)."""
    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    return S3_BUCKET


TIER_MARKERS = ("integration", "e2e")


def _is_unit(item: pytest.Item) -> bool:
    return not any(item.get_closest_marker(name) for name in TIER_MARKERS)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture is set up, so an unmarked test fails fast instead of building the model.
    if _is_unit(item) and "tiny_model_dir" in item.fixturenames:
        pytest.fail("a test that needs tiny_model_dir belongs to the integration tier (pytest.mark.integration)")


@pytest.fixture(autouse=True)
def _unit_tier_starts_no_ray(request: pytest.FixtureRequest):
    """Fail a test left in the unit tier that leaves Ray running: it belongs to the integration tier."""
    running_before = _ray_running()
    yield
    if _is_unit(request.node) and not running_before and _ray_running():
        pytest.fail("a unit-tier test started Ray: mark it pytest.mark.integration (tests/README.md)")


def _ray_running() -> bool:
    ray = sys.modules.get("ray")  # never imported = never started; importing it here would cost seconds
    return ray is not None and ray.is_initialized()
