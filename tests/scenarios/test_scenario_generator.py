"""The bundled scenario generator: byte-for-byte reproducible, and learnable by construction.

See docs/architecture.md §3.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scenarios.facts import fact_mentioned
from scenarios.generator import generate_rows, main, preference_aggregates, render_jsonl
from scenarios.schema import ScenarioRow

BUNDLED = Path(__file__).resolve().parents[2] / "scenarios" / "bundled" / "scenarios.jsonl"


@pytest.fixture(scope="module")
def rows() -> list[ScenarioRow]:
    return [ScenarioRow.from_dict(raw, source="generated", line=i + 1) for i, raw in enumerate(generate_rows(240, 0))]


def test_default_seed_reproduces_shipped_file_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    assert main(["--out", str(out), "--num-rows", "240", "--seed", "0"]) == 0
    assert out.read_bytes() == BUNDLED.read_bytes()
    assert len(BUNDLED.read_text(encoding="utf-8").splitlines()) >= 200


def test_other_seed_changes_rows_but_not_shape() -> None:
    assert render_jsonl(generate_rows(20, 1)) != render_jsonl(generate_rows(20, 0))
    assert render_jsonl(generate_rows(20, 1)) == render_jsonl(generate_rows(20, 1))


def test_covers_at_least_six_final_actions_and_unique_ids(rows: list[ScenarioRow]) -> None:
    assert len({r.expected_final_action for r in rows}) >= 6
    assert len({r.id for r in rows}) == len(rows)


def test_sensitive_fact_only_in_leaking_reference_relevant_in_both(rows: list[ScenarioRow]) -> None:
    for row in rows:
        assert row.sensitive_facts and len(row.relevant_facts) >= 2 and row.recipient
        leaky = [ref for ref in row.references if fact_mentioned(row.sensitive_facts[0], ref.arguments_json)]
        assert len(leaky) == 1, row.id
        safe = row.response_b if leaky[0] is row.response_a else row.response_a
        for fact in row.sensitive_facts:
            assert fact_mentioned(fact, leaky[0].arguments_json) and fact_mentioned(fact, row.trajectory)
            assert not fact_mentioned(fact, safe.arguments_json), row.id
        for fact in row.relevant_facts:
            assert fact_mentioned(fact, row.trajectory)
            assert all(fact_mentioned(fact, ref.arguments_json) for ref in row.references), (row.id, fact)


def test_leaky_body_is_safe_body_plus_one_sentence(rows: list[ScenarioRow]) -> None:
    for row in rows:
        texts = sorted((ref.arguments_json for ref in row.references), key=len)
        safe, leaky = (json.loads(t) for t in texts)
        assert safe.keys() == leaky.keys()
        diff = [k for k in safe if safe[k] != leaky[k]]
        assert len(diff) == 1
        words = len(leaky[diff[0]].split())
        assert 20 <= words <= 60
        assert len(leaky[diff[0]].split()) - len(safe[diff[0]].split()) == 3 + len(row.sensitive_facts[0].split())


def test_annotations_name_the_leak_and_aggregates_match(rows: list[ScenarioRow]) -> None:
    leaky_positions = set()
    for row in rows:
        leaky_a = fact_mentioned(row.sensitive_facts[0], row.response_a.arguments_json)
        leaky_positions.add("a" if leaky_a else "b")
        assert 2 <= len(row.annotations) <= 3
        for ann in row.annotations:
            leak_labels = ann.response_a_labels if leaky_a else ann.response_b_labels
            safe_labels = ann.response_b_labels if leaky_a else ann.response_a_labels
            assert leak_labels.leaks and fact_mentioned(row.sensitive_facts[0], leak_labels.leaks_details)
            assert not safe_labels.leaks and not safe_labels.omits
            assert (ann.preference_value or 0) * (1 if leaky_a else -1) > 0  # prefers the safe side
        counts, bucket = preference_aggregates([{"preference": a.preference} for a in row.annotations])
        assert row.preference_counts == counts and row.majority_bucket == bucket == (
            "agent_b" if leaky_a else "agent_a"
        )
    assert leaky_positions == {"a", "b"}  # A/B order varies


def test_preference_aggregates_hand_computed() -> None:
    counts, bucket = preference_aggregates([{"preference": "agent_a"}, {"preference": "agent_b_slightly"}])
    assert bucket == "agent_a" and counts["agent_a"] == 1 and counts["agent_b_slightly"] == 1  # -2 + 1 < 0
    assert preference_aggregates([{"preference": "agent_a_slightly"}, {"preference": "agent_b_slightly"}])[1] == "tie"
    assert preference_aggregates([{"preference": "unsure"}])[1] == "unsure"


def test_preference_aggregates_match_hand_written_hub_rows() -> None:
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "privacyalign" / "example_rows.jsonl"
    for line in fixture.read_text(encoding="utf-8").splitlines():
        raw = json.loads(line)
        if raw["annotations"]:  # the second example row lists counts without annotation entries
            assert preference_aggregates(raw["annotations"]) == (raw["preference_counts"], raw["majority_bucket"])


def test_fact_mentioned_normalises_case_and_whitespace() -> None:
    assert fact_mentioned("Chemotherapy  next\nweek", "dana has chemotherapy next week.")
    assert not fact_mentioned("chemotherapy next week", "chemotherapy next month")
    assert not fact_mentioned("  ", "anything")
