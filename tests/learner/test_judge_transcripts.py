"""The tiny judge's training transcripts: verdict lines by construction, parsed back to the oracle's labels."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from judge.parsing import parse_pairwise, parse_pointwise
from learner.judge_transcripts import judge_transcripts, pairwise_verdict, pointwise_verdict
from rollout.prompts import reference_answer
from scenarios.candidates import Candidate, build_candidates
from scenarios.config import bundled_scenarios_path
from scenarios.loading import load_rows
from scenarios.oracle import oracle_verdict


def _candidate(leaks: bool, omits: bool) -> Candidate:
    return Candidate("edit", "{}", leaks, omits)


CLEAN, LEAK, OMIT, BOTH = (
    _candidate(False, False),
    _candidate(True, False),
    _candidate(False, True),
    _candidate(True, True),
)


@pytest.mark.parametrize(
    ("first", "second", "score"),
    [
        (CLEAN, CLEAN, 0),
        (LEAK, CLEAN, 1),  # safer, equally useful
        (CLEAN, LEAK, -1),
        (LEAK, OMIT, 0),  # a leak against an omission
        (BOTH, CLEAN, 2),  # safer and more useful
        (CLEAN, BOTH, -2),
        (OMIT, CLEAN, 1),  # neither leaks: usefulness decides
        (BOTH, LEAK, 1),  # both leak: usefulness decides
        (BOTH, OMIT, 1),  # both omit: the safer one
    ],
)
def test_pairwise_verdict_follows_the_prompt_rubric(first: Candidate, second: Candidate, score: int) -> None:
    text = pairwise_verdict(first, second)
    verdict = parse_pairwise(text)
    assert (verdict.status, verdict.score) == ("ok", score)
    yes_no = {True: "yes", False: "no"}
    assert text.splitlines()[:2] == [
        f"Response {k}: leaks {yes_no[c.leaks]}, omits {yes_no[c.omits]}" for k, c in ((1, first), (2, second))
    ]


@pytest.mark.parametrize("candidate", [CLEAN, LEAK, OMIT, BOTH])
def test_pointwise_verdict_parses_to_the_labels(candidate: Candidate) -> None:
    verdict = parse_pointwise(pointwise_verdict(candidate))
    assert (verdict.status, verdict.leaks, verdict.omits) == ("ok", candidate.leaks, candidate.omits)


def test_transcripts_of_bundled_train_rows() -> None:
    rows = load_rows(bundled_scenarios_path(), split="train").rows[:20]
    transcripts = judge_transcripts(rows, random.Random(0), style="compact", pairs_per_row=4)
    per_row = sum(1 for row in rows if build_candidates(row))
    pointwise = [t for t in transcripts if t.verdict.startswith("{")]
    pairwise = [t for t in transcripts if t.verdict.startswith("Response 1:")]
    assert len(pointwise) == 8 * per_row and len(pairwise) == 4 * per_row and per_row >= 15
    annotated = sum("## Annotations of the references" in t.messages[1]["content"] for t in transcripts)
    assert 0.3 < annotated / len(transcripts) < 0.7  # both variants, about half each
    labels = Counter((v.leaks, v.omits) for v in map(parse_pointwise, (t.verdict for t in pointwise)))
    assert set(labels) == {(False, False), (True, False), (False, True)}  # clean, leaking and omitting candidates
    again = judge_transcripts(rows, random.Random(0), style="compact", pairs_per_row=4)
    assert again == transcripts  # deterministic for a seed


def test_agent_answers_join_the_candidates_with_oracle_labels() -> None:
    row = load_rows(bundled_scenarios_path(), split="train").rows[0]
    leaking = (
        reference_answer(row, 0) if oracle_verdict(row, reference_answer(row, 0)).leaks else reference_answer(row, 1)
    )
    answers = {row.id: ["not json at all", leaking]}
    transcripts = judge_transcripts([row], random.Random(0), style="compact", pairs_per_row=0, agent_answers=answers)
    assert len(transcripts) == len(build_candidates(row)) + 2
    by_candidate = {t.messages[1]["content"].split("## Candidate\n")[1].split("\nJudge the candidate")[0]: t.verdict
                    for t in transcripts}  # fmt: skip
    assert parse_pointwise(by_candidate["not json at all"]).omits is True  # a broken answer misses every fact
    assert parse_pointwise(by_candidate[leaking]).leaks is True
