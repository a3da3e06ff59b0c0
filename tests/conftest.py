"""Shared fixtures (the tiny offline-built model, cached across the whole session) and the tier guard.

Tiers (tests/README.md): unmarked tests are the unit tier and must start no Ray cluster and need no
model; `integration` and `e2e` mark the rest, per module (`pytestmark`) or per test.
"""

from __future__ import annotations

import os
import sys
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
