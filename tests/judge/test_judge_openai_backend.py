"""The `openai` backend against a tiny OpenAI-compatible server on 127.0.0.1 started by the test.

The server answers by a marker in the user message: `ok` → a canned completion, `flaky` → 503 on
the first call then 200, `slow` → 200 after 50 ms, `limited` → 429 with Retry-After 0 then 200, `bad` → 400, `broken` → 503
forever. Retryable failures must be retried (with capped backoff), non-retryable ones must not, and
each failure must stay confined to its own request.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping

import pytest

from judge.backends.base import JudgeRequest
from judge.backends.openai_backend import JudgeCallError, OpenAIBackend
from judge.serve_config import OpenAIBackendConfig
from scenarios.config import bundled_scenarios_path
from scenarios.loading import load_rows


class _FakeChatServer:
    """What the stub endpoint saw, and how it answers each marker."""

    calls: Counter = Counter()
    bodies: list[dict] = []
    auth: list[str] = []
    lock = threading.Lock()
    in_flight = 0
    max_in_flight = 0

    @classmethod
    def answer(cls, path: str, body: dict, headers: Mapping[str, str]) -> tuple[int, dict, dict[str, str]]:
        cls.bodies.append(body)
        cls.auth.append(headers.get("Authorization", ""))
        marker = body["messages"][-1]["content"].split()[0]
        cls.calls[marker] += 1
        if path != "/v1/chat/completions":
            return 404, {"error": "no such route"}, {}
        if marker == "bad":
            return 400, {"error": {"message": "bad request"}}, {}
        if marker == "broken" or (marker == "flaky" and cls.calls[marker] == 1):
            return 503, {"error": {"message": "overloaded"}}, {}
        if marker == "slow":
            with cls.lock:
                cls.in_flight += 1
                cls.max_in_flight = max(cls.max_in_flight, cls.in_flight)
            time.sleep(0.05)  # server-side latency, so concurrent requests overlap
            with cls.lock:
                cls.in_flight -= 1
        if marker == "limited" and cls.calls[marker] == 1:
            return 429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}
        return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"Score: 1 ({marker})"}}]}, {}


@pytest.fixture()
def server_url(chat_stub) -> str:
    _FakeChatServer.calls = Counter()
    _FakeChatServer.bodies = []
    _FakeChatServer.auth = []
    _FakeChatServer.max_in_flight = 0
    return chat_stub(_FakeChatServer.answer)


ROW = load_rows(bundled_scenarios_path(), max_rows=1).rows[0]


def _request(marker: str) -> JudgeRequest:
    return JudgeRequest(
        request_id=marker,
        kind="pointwise",
        messages=({"role": "system", "content": "You are a judge."}, {"role": "user", "content": f"{marker} judge"}),
        row=ROW,
        candidates=("candidate",),
        use_annotations=True,
        seed=7,
    )


def _backend(url: str, **overrides: object) -> OpenAIBackend:
    cfg = OpenAIBackendConfig(
        base_url=url, model="judge-model", api_key_env="TEST_JUDGE_KEY", backoff_base_s=0.01, backoff_cap_s=0.05
    )
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return OpenAIBackend(cfg)


def test_retryable_errors_are_retried_and_others_fail_alone(server_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-test")
    backend = _backend(server_url, max_retries=2)
    out = backend.complete([_request(m) for m in ("ok", "flaky", "limited", "bad", "broken")])

    assert out[:3] == ["Score: 1 (ok)", "Score: 1 (flaky)", "Score: 1 (limited)"]
    assert isinstance(out[3], JudgeCallError) and "400" in str(out[3])
    assert isinstance(out[4], JudgeCallError) and "3 attempts" in str(out[4])
    # 503/429 retried once each; 400 never retried; a permanent 503 tried 1 + max_retries times.
    assert _FakeChatServer.calls == Counter(ok=1, flaky=2, limited=2, bad=1, broken=3)
    body = _FakeChatServer.bodies[0]
    assert body["model"] == "judge-model" and body["temperature"] == 0.0 and body["seed"] == 7
    assert set(_FakeChatServer.auth) == {"Bearer sk-test"}


def test_no_retries_when_disabled_and_no_key_header(server_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_JUDGE_KEY", raising=False)
    backend = _backend(server_url, max_retries=0)
    out = backend.complete([_request("flaky"), _request("ok")])
    assert isinstance(out[0], JudgeCallError) and out[1] == "Score: 1 (ok)"
    assert _FakeChatServer.calls == Counter(flaky=1, ok=1)
    assert set(_FakeChatServer.auth) == {""}


def test_connection_refused_is_a_per_request_error() -> None:
    # Port 9 on loopback (discard) is closed here: every attempt fails at connect, quickly.
    backend = _backend("http://127.0.0.1:9/v1", max_retries=1, timeout_s=2.0)
    (out,) = backend.complete([_request("ok")])
    assert isinstance(out, JudgeCallError) and "2 attempts" in str(out)


def test_concurrency_limit_is_respected(server_url: str) -> None:
    backend = _backend(server_url, max_concurrency=2)
    out = backend.complete([_request("slow") for _ in range(6)])
    assert out == ["Score: 1 (slow)"] * 6
    assert _FakeChatServer.max_in_flight == 2


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="base_url"):
        OpenAIBackendConfig(base_url="127.0.0.1:8000")
    with pytest.raises(ValueError, match="max_concurrency"):
        OpenAIBackendConfig(max_concurrency=0)
    with pytest.raises(ValueError, match="judge_pool.openai.model"):
        OpenAIBackend(OpenAIBackendConfig(model=""))


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://judge.example.com/v1", True),
        ("http://10.0.0.5:8000/v1", True),
        ("http://127.0.0.1:8000/v1", False),
        ("http://127.3.2.1:8000/v1", False),
        ("http://[::1]:8000/v1", False),
        ("http://localhost:8000/v1", False),
        ("https://judge.example.com/v1", False),
    ],
)
def test_api_key_is_never_sent_over_plain_http_off_loopback(
    url: str, refused: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-test")
    if refused:
        with pytest.raises(ValueError, match="over plain http:// .*https://"):
            _backend(url)
    else:
        _backend(url)
    monkeypatch.delenv("TEST_JUDGE_KEY")
    _backend(url)  # no key, nothing secret to leak: any endpoint is fine
