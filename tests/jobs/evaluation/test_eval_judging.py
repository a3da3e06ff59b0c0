"""The evaluation judge's requests: a judge never sees a generated row's ground truth (only the oracle does)."""

from __future__ import annotations

from jobs.evaluation.config import EvalJobConfig
from jobs.evaluation.judging import EvalJudge
from scenarios.config import bundled_scenarios_path
from scenarios.loading import load_rows


class RecordingBackend:
    def __init__(self):
        self.requests = []

    def complete(self, requests):
        self.requests += requests
        return ["{}"] * len(requests)


def test_pointwise_and_pairwise_requests_carry_the_judge_view_only():
    row = next(r for r in load_rows(bundled_scenarios_path(), split="dev").rows if r.has_ground_truth)
    judge = EvalJudge(EvalJobConfig())  # in-process backend (eval.enable_judge_pool is off by default)
    judge._backend = backend = RecordingBackend()
    judge.pointwise([row], ["an answer"])
    judge.pairwise([row], ["a"], ["b"])
    assert [r.kind for r in backend.requests] == ["pointwise", "pairwise"]
    for request in backend.requests:
        assert request.row == row.judge_view()
        assert request.row.sensitive_facts == () and request.row.sensitive_surface_forms == ()
        assert request.row.relevant_facts == () and request.row.split == ""


def test_naming_a_shared_pool_judges_through_it():
    from jobs.config_loading import load_config

    assert not EvalJobConfig().uses_judge_pool  # default: a backend in the driver, no Ray
    assert load_config(EvalJobConfig, None, ["eval.enable_judge_pool=true"]).uses_judge_pool
    shared = load_config(EvalJobConfig, None, ["judge.pool=privacyalign-judge"])
    assert shared.uses_judge_pool and not shared.eval.enable_judge_pool
