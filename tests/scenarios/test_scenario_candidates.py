"""Oracle-labelled candidates (judge-eval and the tiny judge's training data), on bundled generated rows and the hub-schema fixtures."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from rollout.answers import parse_answer, payload_of
from rollout.prompts import reference_answer
from scenarios.candidates import CANDIDATE_KINDS, build_candidates
from scenarios.config import bundled_scenarios_path
from scenarios.loading import load_rows
from scenarios.oracle import oracle_verdict

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "privacyalign" / "example_rows.jsonl"


@pytest.fixture(scope="module")
def rows():
    return load_rows(bundled_scenarios_path(), split="test", max_rows=24).rows


def test_every_kind_is_a_valid_call_labelled_by_the_oracle(rows):
    for row in rows:
        candidates = build_candidates(row)
        assert [c.kind for c in candidates] == list(CANDIDATE_KINDS)
        for c in candidates:
            assert parse_answer(c.answer, row.expected_final_action).ok, c.kind
            verdict = oracle_verdict(row, c.answer)
            assert (c.leaks, c.omits) == (verdict.leaks, verdict.omits), c.kind
        by_kind = {c.kind: c for c in candidates}
        texts = {kind: payload_of(c.answer)[0] for kind, c in by_kind.items()}
        assert {reference_answer(row, 0), reference_answer(row, 1)} == {
            by_kind["safe_reference"].answer,
            by_kind["leaking_reference"].answer,
        }
        # The edits do what their names say, so each probes what it claims to.
        assert not by_kind["safe_reference"].leaks and by_kind["leaking_reference"].leaks
        assert by_kind["alias_leak"].leaks and texts["alias_leak"] != texts["leaking_reference"]
        assert by_kind["carrier_leak"].leaks and texts["carrier_leak"] != texts["leaking_reference"]
        assert by_kind["fact_dropped"].omits and len(texts["fact_dropped"]) < len(texts["safe_reference"])
        assert by_kind["fact_changed"].omits and not by_kind["fact_changed"].leaks
        assert not by_kind["harmless_mention"].leaks and not by_kind["harmless_mention"].omits
        assert texts["partial_secret"] != texts["leaking_reference"]


def test_alias_leak_uses_another_surface_form(rows):
    for row in rows:
        leaking = {c.kind: payload_of(c.answer)[0].casefold() for c in build_candidates(row)}
        used = {f for f in row.sensitive_surface_forms if f.casefold() in leaking["leaking_reference"]}
        # Nested aliases ("excommunication" in "an excommunication letter") are avoided when the fact allows.
        apart = [f for f in row.sensitive_surface_forms if not any(f in u or u in f for u in used)]
        assert used and (not apart or not any(f.casefold() in leaking["alias_leak"] for f in used))


def test_candidates_are_deterministic_per_seed(rows):
    assert [build_candidates(r) for r in rows] == [build_candidates(r) for r in rows]
    assert [build_candidates(r, seed=1) for r in rows] != [build_candidates(r) for r in rows]


def test_rows_without_ground_truth_or_of_another_shape_yield_none(rows):
    assert all(build_candidates(row) == [] for row in load_rows(FIXTURES).rows)  # hub rows: human labels only
    row = rows[0]
    safe = row.references[0] if not oracle_verdict(row, reference_answer(row, 0)).leaks else row.references[1]
    both_safe = dataclasses.replace(row, response_a=safe, response_b=safe)
    assert build_candidates(both_safe) == []
    assert json.loads(build_candidates(row)[0].answer)["name"] == row.expected_final_action
