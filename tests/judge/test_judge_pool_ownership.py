"""Which judge app a job uses, without starting Ray: unique names for its own pool, checks for a shared one,
and how a call to it fails when the app never answers."""

from __future__ import annotations

import re

import pytest

from judge import pool as pool_module
from judge.config import JudgeConfig
from judge.pool import JudgePool, _settings_mismatches, job_pool_config
from judge.serve_config import JudgePoolConfig


def test_job_pools_get_unique_names_and_routes_with_http_off() -> None:
    shared = JudgePoolConfig(app_name="privacyalign-judge", enable_http=True)
    names = {job_pool_config(shared, "train").app_name for _ in range(50)}
    assert len(names) == 50
    own = job_pool_config(shared, "evaluate")
    assert re.fullmatch(r"privacyalign-judge-evaluate-[0-9a-f]{8}", own.app_name)
    assert own.route_prefix == f"/{own.app_name}" and not own.enable_http
    # The job's other settings are kept, and the shared config itself is untouched.
    assert own.max_replicas == shared.max_replicas
    assert shared.app_name == "privacyalign-judge" and shared.route_prefix == "/judge" and shared.enable_http


def test_attach_compares_every_setting_the_pool_judges_with() -> None:
    # judge.pool is read by the job, so it may differ from the pool's.
    assert _settings_mismatches(JudgeConfig(pool="shared"), JudgeConfig()) == []
    assert _settings_mismatches(JudgeConfig(reward_mode="anchor", seed=3), JudgeConfig()) == [
        "judge.reward_mode: job 'anchor', pool 'peer_pairwise'",
        "judge.seed: job 3, pool 0",
    ]


def test_judge_pool_name_is_checked_and_never_set_on_the_pool_being_started() -> None:
    with pytest.raises(ValueError, match="judge.pool"):
        JudgeConfig(pool=" privacyalign-judge")
    # serve-judge deploys a pool; naming one to attach to there is a mistake (caught before Serve starts).
    with pytest.raises(ValueError, match="judge.pool='privacyalign-judge' names a running pool"):
        JudgePool.start(JudgeConfig(pool="privacyalign-judge"), JudgePoolConfig(), None)


class _HungHandle:
    """A Serve app handle whose `judge_many` never answers: `.result(timeout_s=...)` times out, as Serve's does."""

    def __init__(self) -> None:
        self.calls: list[tuple[list, float]] = []
        self.judge_many = self

    def remote(self, requests: list) -> _HungHandle:
        self._requests = requests
        return self

    def result(self, timeout_s: float) -> list:
        self.calls.append((self._requests, timeout_s))
        raise TimeoutError("Timed out waiting for result")


def test_judging_through_a_hung_pool_raises_one_timeout_naming_app_and_what(monkeypatch) -> None:
    handle = _HungHandle()
    monkeypatch.setattr(pool_module.serve, "get_app_handle", lambda name: handle if name == "judge-x" else None)
    pool = JudgePool("judge-x", JudgeConfig(), None, score_deadline_s=7.5)
    assert pool.judge([], "nothing") == [] and handle.calls == []  # no requests, no call
    with pytest.raises(TimeoutError, match=r"^judge pool 'judge-x' did not judge step 3's canaries within 7.5 s$"):
        pool.judge(["request"], "step 3's canaries")
    assert handle.calls == [(["request"], 7.5)]  # the pool's own deadline bounds the call
