"""Judge pool config checks and the exposure rule, without starting Ray."""

from __future__ import annotations

import pytest

from judge.backends import backend_names, make_backend
from judge.config import JudgeConfig
from judge.serve_app import build_app
from judge.serve_config import (
    JudgePoolConfig,
    VllmBackendConfig,
    check_http_exposure,
    is_loopback,
    validate_pool_config,
)


def test_defaults_are_loopback_and_consistent() -> None:
    cfg = JudgePoolConfig()
    assert cfg.http_host == "127.0.0.1" and is_loopback(cfg.http_host)
    assert validate_pool_config(cfg) == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("::", False),
        ("judge.example.org", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_cross_field_errors_are_all_reported() -> None:
    cfg = JudgePoolConfig(
        min_replicas=3, max_replicas=2, initial_replicas=1, target_ongoing_requests=8, max_ongoing_requests=8
    )
    errors = validate_pool_config(cfg)
    assert len(errors) == 3
    assert "min_replicas (3)" in errors[0] and "initial_replicas (1)" in errors[1] and "never scale up" in errors[2]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_replicas": 0}, "max_replicas"),
        ({"num_cpus_per_replica": -0.5}, "num_cpus_per_replica"),
        ({"route_prefix": "judge"}, "route_prefix"),
        ({"http_port": 70000}, "http_port"),
        ({"max_request_attempts": 0}, "max_request_attempts"),
    ],
)
def test_single_field_checks(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        JudgePoolConfig(**kwargs)


def test_vllm_config_checks() -> None:
    with pytest.raises(ValueError, match="kv_cache_gib"):
        VllmBackendConfig(kv_cache_gib=0)
    with pytest.raises(ValueError, match="dtype"):
        VllmBackendConfig(dtype="int8")
    with pytest.raises(ValueError, match="judge_pool.vllm.model"):
        make_backend("vllm", VllmBackendConfig(model=""))


def test_registry_lists_all_backends() -> None:
    assert backend_names() == ["offline", "openai", "vllm"]
    with pytest.raises(ValueError, match="offline.*openai.*vllm"):
        make_backend("gpt", JudgeConfig())


def test_exposed_http_without_token_is_refused() -> None:
    # The host is the proxy's real bind (judge/pool.py reads it from a running Serve), not judge_pool.http_host.
    env = JudgePoolConfig().auth_token_env
    for exposed in ("0.0.0.0", "::", "10.1.2.3", "judge.internal"):
        with pytest.raises(ValueError, match=f"{env}.*judge_pool.http_host=127.0.0.1"):
            check_http_exposure(exposed, "", env)
        check_http_exposure(exposed, "t0ken", env)  # with a token it may serve
    check_http_exposure("127.0.0.1", "", env)  # loopback needs none
    check_http_exposure(None, "", env)  # no HTTP route at all
    build_app(JudgeConfig(), JudgePoolConfig(http_host="0.0.0.0"), None, token="t0ken")
