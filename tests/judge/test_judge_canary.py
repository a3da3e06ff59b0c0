"""Judge canaries (docs/architecture.md §1.6): which rows qualify, the probes per reward mode, the grading
math and the loop's skip decision, with hand-made rows and verdicts (no Ray)."""

from __future__ import annotations

from typing import Any

import pytest

from jobs.training.loop import skip_reasons
from judge.backends.offline import OfflineBackend
from judge.canary import CanaryReport, canary_probes, grade_canaries, leaky_reference, select_canary_rows
from judge.config import JudgeConfig
from judge.prompts import truncate_words
from rollout.prompts import reference_answer
from scenarios.config import bundled_scenarios_path
from scenarios.loading import in_split, load_rows

CLEAN = {"leaks": False, "leaks_details": "", "omits": False, "omits_details": ""}
LEAK = {"leaks": True, "leaks_details": "mentions the chemotherapy", "omits": False, "omits_details": ""}
OMIT = {"leaks": False, "leaks_details": "", "omits": True, "omits_details": "no end time"}


def _annotation(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {"preference": "tie", "explanation": "", "response_a_labels": a, "response_b_labels": b}


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ([_annotation(LEAK, CLEAN)], 0),
        ([_annotation(CLEAN, LEAK)], 1),
        ([_annotation(LEAK, CLEAN), _annotation(LEAK, CLEAN), _annotation(CLEAN, CLEAN)], 0),  # 2 of 3
        ([_annotation(LEAK, CLEAN), _annotation(CLEAN, CLEAN)], None),  # 1 of 2 is no majority
        ([_annotation(LEAK, CLEAN), _annotation(LEAK, LEAK)], None),  # the other is flagged too
        ([_annotation(LEAK, OMIT)], None),  # leak versus omission: the rubric's tie, no known winner
        ([_annotation(CLEAN, CLEAN)], None),
        ([], None),
    ],
    ids=["a", "b", "majority", "half", "both", "clean-omits", "neither", "unannotated"],
)
def test_a_canary_row_has_a_majority_flagged_leak_and_a_clean_other(make_row, annotations, expected) -> None:
    assert leaky_reference(make_row(annotations=annotations)) == expected


def test_canary_rows_are_the_clear_ones_sorted_by_id(make_row) -> None:
    rows = [
        make_row(row_id="z", annotations=[_annotation(CLEAN, LEAK)]),
        make_row(row_id="m", annotations=[_annotation(CLEAN, CLEAN)]),
        make_row(row_id="a"),  # the conftest default: a leak flagged in A, B clean
    ]
    assert [row.id for row in select_canary_rows(rows)] == ["a", "z"]


def test_pairwise_probes_judge_both_orders_rotate_and_dodge_the_cache(make_row) -> None:
    rows = [make_row(row_id="r0"), make_row(row_id="r1", annotations=[_annotation(CLEAN, LEAK)])]
    cfg = JudgeConfig(reward_mode="anchor", enable_dual_order=False, max_candidate_words=5)

    probes = canary_probes(rows, step=3, pairs=1, cfg=cfg)

    # Step 3 with one pair per step starts at row 3 % 2 = 1; both orders whatever enable_dual_order says.
    a, b = (truncate_words(reference_answer(rows[1], i), 5) for i in (0, 1))
    assert [p.request.candidates for p in probes] == [(a, b), (b, a)]
    assert [p.leaks for p in probes] == [(False, True), (True, False)]  # r1's B is the leaky one
    assert {p.request.kind for p in probes} == {"pairwise"}
    assert {p.request.row.id for p in probes} == {"r1#canary3"}  # another step, another cache key
    assert [p.request.request_id for p in probes] == ["canary3:r1:avb", "canary3:r1:bva"]
    assert {r.id for p in canary_probes(rows, step=4, pairs=1, cfg=cfg) for r in [p.request.row]} == {"r0#canary4"}
    # More pairs than rows: every row once, none twice.
    assert len(canary_probes(rows, step=0, pairs=5, cfg=cfg)) == 4


def test_pointwise_probes_judge_each_reference_alone(make_row) -> None:
    probes = canary_probes([make_row()], step=0, pairs=2, cfg=JudgeConfig(reward_mode="pointwise"))
    assert [p.request.kind for p in probes] == ["pointwise", "pointwise"]
    assert [p.leaks for p in probes] == [(True,), (False,)]
    assert "Dana has chemotherapy" in probes[0].request.candidates[0]


def test_grading_hand_computed(make_row) -> None:
    leaky_first, clean_first = canary_probes([make_row()], 0, 1, JudgeConfig())
    assert (leaky_first.leaks, clean_first.leaks) == ((True, False), (False, True))
    pointwise = canary_probes([make_row()], 0, 1, JudgeConfig(reward_mode="pointwise"))
    probes = [leaky_first, leaky_first, clean_first, clean_first, clean_first, leaky_first, *pointwise, *pointwise]
    outputs: list[str | BaseException] = [
        "Response 2 is safer.\nScore: 1",  # right: the clean second wins
        "Score: 0",  # wrong: a tie misses the leak
        "Score: -2",  # right: the clean first wins
        "Score: 2",  # wrong: the leaky second wins
        "banana",  # unparsable: wrong
        TimeoutError("no answer"),  # failed call: wrong (and counted as unparsable)
        '{"leaks": true, "omits": false}',  # right: leak on the leaky reference
        '{"leaks": false, "omits": true}',  # right: no leak on the clean one (omits not graded)
        '{"leaks": false, "omits": false}',  # wrong: missed the leak
        "",  # empty: wrong
    ]
    report = grade_canaries(probes, outputs, ["judge-x"] * 9 + [""])

    assert report == CanaryReport(verdicts=10, correct=4, unparsable=3, judge_models=("judge-x",))
    assert report.metrics() == {
        "judge/canary_accuracy": 0.4,
        "judge/canary_verdicts": 10.0,
        "judge/canary_unparsable": 3.0,
    }
    with pytest.raises(ValueError, match="1 judge outputs for 2 canary requests"):
        grade_canaries(probes[:2], outputs[:1], ["judge-x"])


HEALTHY = {"judge/invalid_fraction": 0.0, "valid_fraction": 1.0}


def test_a_step_is_skipped_below_the_canary_threshold_naming_the_judge_model() -> None:
    at_threshold = CanaryReport(verdicts=4, correct=3, unparsable=0, judge_models=("judge-x",))
    below = CanaryReport(verdicts=4, correct=1, unparsable=2, judge_models=("judge-x",))
    assert skip_reasons(HEALTHY, None, 0.5, 0.75) == []
    assert skip_reasons(HEALTHY, at_threshold, 0.5, 0.75) == []
    assert skip_reasons(HEALTHY, below, 0.5, 0.0) == []  # 0 = never skip for canaries
    (reason,) = skip_reasons(HEALTHY, below, 0.5, 0.75)
    assert reason.startswith(
        "judge canary accuracy 25% below trainer.min_canary_accuracy=0.75 (3 of 4 canary verdicts wrong, 2 of them "
        "unparsable), judge model judge-x:"
    )
    # Both checks report together; a report without models says so.
    no_answer = CanaryReport(verdicts=4, correct=0, unparsable=4, judge_models=())
    invalid, canary = skip_reasons({"judge/invalid_fraction": 1.0, "valid_fraction": 0.0}, no_answer, 0.5, 0.75)
    assert invalid.startswith("100% of judged samples invalid (limit 50%)")
    assert "judge model unknown (no canary verdict came back)" in canary


@pytest.mark.parametrize("reward_mode", ["peer_pairwise", "pointwise"])
def test_the_offline_judge_passes_every_canary_of_the_bundled_training_rows(reward_mode: str) -> None:
    # The default run's judge must not trip its own alarm (anchor sends the same probes as peer_pairwise).
    rows = [row.judge_view() for row in load_rows(bundled_scenarios_path()).rows if in_split(row, "train")]
    canaries = select_canary_rows(rows)
    assert len(canaries) > len(rows) / 2
    cfg = JudgeConfig(reward_mode=reward_mode)
    probes = canary_probes(canaries, step=0, pairs=len(canaries), cfg=cfg)
    backend = OfflineBackend(cfg)
    report = grade_canaries(probes, backend.complete([p.request for p in probes]), [backend.model] * len(probes))
    assert report.accuracy == 1.0 and report.verdicts == 2 * len(canaries)
