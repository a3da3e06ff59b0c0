"""Reward modes, penalties and advantages (docs/architecture.md §1.3) with hand-computed values and a scripted judge."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pytest

from judge.backends.base import JudgeRequest
from judge.config import JudgeConfig
from judge.reward import (
    REWARD_MODES,
    SEVERITY,
    answer_penalty,
    candidate_text,
    plan_requests,
    score_batch,
)
from records.trajectory_batch import JUDGE_STATUSES

# Payload: 10 words (references are 10 and 11 words, so the short-answer floor is 0.5 × 10.5 = 5.25).
LONG = "one two three four five six seven eight nine ten"


class ScriptedJudge:
    """Answers each request id from a script; an Exception entry stands for a failed call."""

    name = "scripted"
    model = "scripted-judge"

    def __init__(self, script: Mapping[str, str | Exception]):
        self.script = script
        self.seen: list[JudgeRequest] = []

    def complete(self, requests: Sequence[JudgeRequest]) -> list[str | Exception]:
        self.seen.extend(requests)
        return [self.script[r.request_id] for r in requests]

    def close(self) -> None:
        return None


def _score(
    make_row: Callable, make_batch: Callable, texts: list[str], script: Mapping[str, str | Exception], **cfg_kw
) -> tuple:
    row = make_row()
    batch = make_batch(texts, [row.id] * len(texts), [0] * len(texts))
    judge = ScriptedJudge(script)
    scored = score_batch(batch, {row.id: row}, JudgeConfig(**cfg_kw), judge)
    return scored, judge


def test_peer_pairwise_g4_hand_computed(make_row: Callable, make_batch: Callable, make_answer: Callable) -> None:
    texts = [
        make_answer(LONG, name="WrongTool"),  # format −1, zero payload words → short −4
        make_answer(LONG),
        make_answer("five words are too few"),  # short: 4 × (5.25 − 5) / 5.25
        make_answer(LONG),
    ]
    script = {
        "g0:0v1": "Score: 2",  # pair (0,1): s=2, s'=−2 → 2: sample 1 better by 2
        "g0:1v0": "Score: -2",
        "g0:0v2": "Score: 1",  # swapped-order disagreement: s=1, s'=1 → (1 − 1)/2 = 0
        "g0:2v0": "Score: 1",
        "g0:1v2": "Score: -1",  # pair (1,2): only this order parses → 1 better by 1
        "g0:2v1": "no idea",
        # every pair of sample 3 fails: it is invalid, its worst status is judge_error
        "g0:0v3": "Score: 9",
        "g0:3v0": "",
        "g0:1v3": RuntimeError("replica died"),
        "g0:3v1": "",
        "g0:2v3": "garbage",
        "g0:3v2": "   ",
    }
    scored, judge = _score(make_row, make_batch, texts, script)
    assert len(judge.seen) == 12
    short = 4 * (5.25 - 5) / 5.25
    # judge parts: r0 = (−2 + 0)/2 = −1, r1 = (2 + 1)/2 = 1.5, r2 = (0 − 1)/2 = −0.5
    expected = [max(-5.0, -1 - 5), 1.5, -0.5 - short]
    assert scored.rewards[:3] == pytest.approx(expected)
    assert scored.rewards[3] == 0.0
    mean = sum(expected) / 3
    assert scored.advantages == pytest.approx([r - mean for r in expected] + [0.0])
    assert scored.valid == [True, True, True, False]
    assert scored.judge_statuses == ["ok", "ok", "ok", "judge_error"]


def test_invalid_sample_reports_worst_parse_status(make_row: Callable, make_batch: Callable, make_answer: Callable):
    texts = [make_answer(LONG)] * 2
    scored, _ = _score(make_row, make_batch, texts, {"g0:0v1": "", "g0:1v0": "Score: 5"})
    assert scored.valid == [False, False]
    assert scored.judge_statuses == ["parse_error", "parse_error"]
    assert scored.advantages == [0.0, 0.0]
    assert set(SEVERITY) == set(JUDGE_STATUSES)


def test_single_order_plans_each_pair_once(make_row: Callable, make_batch: Callable, make_answer: Callable) -> None:
    texts = [make_answer(LONG)] * 3
    script = {"g0:0v1": "Score: 1", "g0:0v2": "Score: 2", "g0:1v2": "Score: 0"}
    scored, judge = _score(make_row, make_batch, texts, script, enable_dual_order=False)
    assert [r.request_id for r in judge.seen] == ["g0:0v1", "g0:0v2", "g0:1v2"]
    # r0 = (−1 − 2)/2, r1 = (1 + 0)/2, r2 = (2 + 0)/2
    assert scored.rewards == pytest.approx([-1.5, 0.5, 1.0])
    assert scored.advantages == pytest.approx([-1.5, 0.5, 1.0])


def test_anchor_mode_against_reference_b(make_row: Callable, make_batch: Callable, make_answer: Callable) -> None:
    texts = [make_answer(LONG), make_answer(LONG)]
    script = {
        "g0:refv0": "Score: 1",  # sample 0 beats the reference by 1 in this order ...
        "g0:0vref": "Score: 1",  # ... and loses by 1 swapped: 0
        "g0:refv1": "Score: 2",
        "g0:1vref": "Score: -1",  # (2 + 1)/2 = 1.5
    }
    scored, judge = _score(make_row, make_batch, texts, script, reward_mode="anchor", anchor_reference="b")
    assert scored.rewards == pytest.approx([0.0, 1.5])
    assert scored.advantages == pytest.approx([-0.75, 0.75])
    row = make_row()
    assert judge.seen[0].candidates[0] == candidate_text(make_answer(row.response_b.arguments["body"]), 1000)


def test_pointwise_mode(make_row: Callable, make_batch: Callable, make_answer: Callable) -> None:
    texts = [make_answer(LONG)] * 4
    script = {
        "g0:0": '{"leaks": true, "omits": false}',
        "g0:1": '{"leaks": false, "omits": true}',
        "g0:2": '{"leaks": true, "omits": true}',
        "g0:3": '{"leaks": false, "omits": false}',
    }
    scored, _ = _score(make_row, make_batch, texts, script, reward_mode="pointwise", pointwise_omit_weight=0.5)
    assert scored.rewards == pytest.approx([-1.0, -0.5, -1.5, 0.0])
    assert scored.advantages == pytest.approx([-0.25, 0.25, -0.75, 0.75])


def test_penalties_hand_computed(make_row: Callable, make_answer: Callable) -> None:
    row = make_row()
    cfg = JudgeConfig()
    assert answer_penalty(make_answer(LONG), row, cfg) == 0.0
    assert answer_penalty("```json\n" + make_answer(LONG) + "\n```", row, cfg) == 0.0  # one fence is allowed
    assert answer_penalty("<think>hm</think>" + make_answer("a b"), row, cfg) == pytest.approx(4 * 3.25 / 5.25)
    assert answer_penalty(make_answer(""), row, cfg) == pytest.approx(4.0)
    assert answer_penalty("not json", row, cfg) == pytest.approx(5.0)
    lenient = JudgeConfig(format_penalty=0.5, short_answer_penalty=2.0, short_answer_floor_ratio=1.0)
    assert answer_penalty(make_answer("a b c d e f g"), row, lenient) == pytest.approx(2 * 3.5 / 10.5)


def test_groups_are_independent_and_rows_required(make_row: Callable, make_batch: Callable, make_answer: Callable):
    row = make_row()
    batch = make_batch([make_answer(LONG)] * 4, [row.id] * 4, [7, 7, 9, 9])
    script = {"g7:0v1": "Score: 2", "g7:1v0": "Score: -2", "g9:2v3": "Score: 0", "g9:3v2": "Score: 0"}
    scored = score_batch(batch, {row.id: row}, JudgeConfig(), ScriptedJudge(script))
    assert scored.rewards == pytest.approx([-2.0, 2.0, 0.0, 0.0])
    assert scored.advantages == pytest.approx([-2.0, 2.0, 0.0, 0.0])
    with pytest.raises(KeyError, match="row-1"):
        plan_requests(batch, {}, JudgeConfig())


def test_singleton_group_is_an_explicit_judge_error(make_row: Callable, make_batch: Callable, make_answer: Callable):
    scored, judge = _score(make_row, make_batch, [make_answer(LONG)], {})
    assert judge.seen == []
    assert (scored.valid, scored.judge_statuses, scored.rewards) == ([False], ["judge_error"], [0.0])


def test_candidates_are_stripped_and_truncated(make_row: Callable, make_batch: Callable) -> None:
    row = make_row()
    batch = make_batch(["<think>secret plan</think>" + " ".join(["w"] * 12), "short"], [row.id] * 2, [0, 0])
    calls = plan_requests(batch, {row.id: row}, JudgeConfig(max_candidate_words=10, enable_dual_order=False))
    assert calls[0].request.candidates == (" ".join(["w"] * 10) + " [truncated]", "short")
    assert "secret plan" not in calls[0].request.messages[1]["content"]


def test_reward_mode_registry() -> None:
    assert sorted(REWARD_MODES) == ["anchor", "peer_pairwise", "pointwise"]
    with pytest.raises(ValueError, match="anchor"):
        JudgeConfig(reward_mode="listwise")
