"""Human labels and judge views of judge-eval on the PrivacyAlign fixture rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.evaluation.human_labels import (
    HumanLabel,
    human_labels,
    judge_view,
    labelled_rows,
    mean_preference,
)
from scenarios.loading import load_rows

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "privacyalign" / "example_rows.jsonl"


@pytest.fixture(scope="module")
def rows():
    return load_rows(FIXTURES).rows


def test_majority_labels_and_mean_preference(rows):
    first, second = rows
    # Row 1: both annotators flag a leak in A (2/2); one of two flags an omission in B (a tie → False).
    assert human_labels(first) == {"a": HumanLabel(True, False), "b": HumanLabel(False, False)}
    # agent_b (+2) and agent_b_slightly (+1) → mean 1.5.
    assert mean_preference(first) == pytest.approx(1.5)
    assert human_labels(second) == {"a": HumanLabel(False, False), "b": HumanLabel(True, False)}
    assert mean_preference(second) == pytest.approx(-2.0)


def test_with_annotations_view_hides_the_judged_responses_labels(rows):
    first = rows[0]
    view = judge_view(first, "a", "with_annotations")
    for ann, orig in zip(view.annotations, first.annotations, strict=True):
        assert not ann.response_a_labels.leaks and ann.response_a_labels.leaks_details == ""
        assert ann.response_b_labels == orig.response_b_labels  # the other side's flags stay
        assert ann.preference == "unsure" and ann.preference_value is None and ann.explanation == ""
    assert any(ann.response_b_labels.omits for ann in judge_view(first, "a", "with_annotations").annotations)
    assert not any(ann.response_b_labels.omits for ann in judge_view(first, "b", "with_annotations").annotations)
    assert judge_view(first, "b", "without_annotations").annotations == ()
    assert first.annotations[0].response_a_labels.leaks  # the original row is untouched
    with pytest.raises(ValueError, match="unknown judge-eval variant"):
        judge_view(first, "a", "both")


def test_labelled_rows_drop_rows_without_annotations(rows):
    from dataclasses import replace

    assert labelled_rows([rows[0], replace(rows[1], annotations=())]) == [rows[0]]
