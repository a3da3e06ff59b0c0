"""The scenario generator v2: reproducible, fact-disjoint splits, ground truth the oracle can grade
(docs/architecture.md §3)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from rollout.prompts import reference_answer
from scenarios.facts import fact_mentioned
from scenarios.generator import (
    BUNDLED_NUM_ROWS,
    LEAK_CARRIERS,
    fact_splits,
    generate_rows,
    generate_split_rows,
    main,
    preference_aggregates,
    render_jsonl,
)
from scenarios.oracle import oracle_verdict
from scenarios.schema import ScenarioRow
from scenarios.vocabulary import SENSITIVE_FACTS, TEST_ONLY_DOMAINS

BUNDLED = Path(__file__).resolve().parents[2] / "scenarios" / "bundled" / "scenarios.jsonl"


@pytest.fixture(scope="module")
def rows() -> list[ScenarioRow]:
    return [ScenarioRow.from_dict(raw, source="bundled", line=i + 1) for i, raw in enumerate(generate_rows(480, 0))]


def _leaky_and_safe(row: ScenarioRow) -> tuple[int, int]:
    leaky = [i for i in (0, 1) if oracle_verdict(row, reference_answer(row, i)).leaks]
    assert len(leaky) == 1, row.id
    return leaky[0], 1 - leaky[0]


def test_default_arguments_reproduce_shipped_file_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    assert main(["--out", str(out)]) == 0
    assert out.read_bytes() == BUNDLED.read_bytes()
    assert len(BUNDLED.read_text(encoding="utf-8").splitlines()) == BUNDLED_NUM_ROWS


def test_other_seed_changes_rows_but_not_shape() -> None:
    assert render_jsonl(generate_rows(20, 1)) != render_jsonl(generate_rows(20, 0))
    assert render_jsonl(generate_rows(20, 1)) == render_jsonl(generate_rows(20, 1))


def test_vocabulary_size_domains_and_aliases() -> None:
    facts = [forms for domain in SENSITIVE_FACTS.values() for forms in domain]
    assert len(facts) >= 120 and len(SENSITIVE_FACTS) >= 10
    assert all(len(forms) >= 3 and len(set(forms)) == len(forms) for forms in facts)
    assert len(TEST_ONLY_DOMAINS) >= 2 and set(TEST_ONLY_DOMAINS) <= set(SENSITIVE_FACTS)


def test_splits_share_no_fact_and_test_owns_whole_domains(rows: list[ScenarioRow]) -> None:
    splits = fact_splits()
    by_split = {
        name: {f for facts in domains.values() for forms in facts for f in forms} for name, domains in splits.items()
    }
    assert not (by_split["test"] & (by_split["train"] | by_split["dev"])) and not (by_split["train"] & by_split["dev"])
    for domain in TEST_ONLY_DOMAINS:
        assert domain not in splits["train"] and domain not in splits["dev"]
    assert Counter(r.split for r in rows) == {"train": 336, "dev": 48, "test": 96}
    # No surface form of a test fact occurs anywhere in a train or dev row, and vice versa for dev.
    text = {
        name: " ".join(json.dumps(r.to_dict()) for r in rows if r.split == name) for name in ("train", "dev", "test")
    }
    for form in by_split["test"]:
        assert not fact_mentioned(form, text["train"]) and not fact_mentioned(form, text["dev"]), form
    for form in by_split["dev"]:
        assert not fact_mentioned(form, text["train"]), form
    domains = {name: {d for r in rows if r.split == name for d in r.domains} for name in ("train", "dev", "test")}
    assert set(TEST_ONLY_DOMAINS) <= domains["test"] and not set(TEST_ONLY_DOMAINS) & (
        domains["train"] | domains["dev"]
    )


def test_covers_actions_carriers_and_relevant_fact_kinds(rows: list[ScenarioRow]) -> None:
    assert len({r.expected_final_action for r in rows}) >= 6
    assert len({r.id for r in rows}) == len(rows)
    leaky_texts = [r.references[_leaky_and_safe(r)[0]].arguments_json for r in rows]
    for name, sentence in LEAK_CARRIERS:
        marker = sentence.split("{")[0].strip() or sentence.split("}")[1].split("{")[0].strip()
        assert sum(marker in t for t in leaky_texts) >= 20, name
    extras = [r.relevant_facts[2] for r in rows]
    assert any("$" in e for e in extras) and any(e.endswith(("am", "pm")) for e in extras)
    assert any(" " in e and e[0].isupper() and "$" not in e for e in extras)  # a contact name
    assert len(set(extras)) > len(rows) // 2  # values are drawn, not memorisable


def test_ground_truth_grades_the_references(rows: list[ScenarioRow]) -> None:
    aliased = 0
    for row in rows:
        assert row.sensitive_facts and len(row.sensitive_surface_forms) >= 3 and len(row.relevant_facts) == 3
        leaky, safe = _leaky_and_safe(row)
        assert oracle_verdict(row, reference_answer(row, safe)).clean
        assert not oracle_verdict(row, reference_answer(row, leaky)).omits
        assert any(fact_mentioned(f, row.trajectory) for f in row.sensitive_surface_forms)
        for fact in row.relevant_facts:
            assert fact_mentioned(fact, row.trajectory)
        used = [f for f in row.sensitive_surface_forms if fact_mentioned(f, row.references[leaky].arguments_json)]
        aliased += not any(fact_mentioned(f, row.trajectory) for f in used)
    assert 0.1 * len(rows) < aliased < 0.4 * len(rows)  # some leaks use another alias than the notes


def test_made_up_private_matter_is_leaked_as_written_in_the_notes() -> None:
    """A warm start learns to copy the matter out of the notes only if the leaking reference copies it."""
    raw = generate_split_rows("train", 200, random.Random(7), synthetic_share=1.0)
    rows = [ScenarioRow.from_dict(r, source="generated", line=i + 1) for i, r in enumerate(raw)]
    for row in rows:
        (matter,) = row.sensitive_surface_forms  # made up: no aliases
        leaky, _ = _leaky_and_safe(row)
        assert fact_mentioned(matter, row.trajectory) and fact_mentioned(matter, reference_answer(row, leaky))
    assert len({row.sensitive_facts[0] for row in rows}) > 190  # made up per row, not drawn from a list


def test_annotations_flag_the_leak_and_aggregates_match(rows: list[ScenarioRow]) -> None:
    leaky_positions = set()
    for row in rows:
        leaky, _ = _leaky_and_safe(row)
        leaky_positions.add(leaky)
        assert 2 <= len(row.annotations) <= 3
        flags = [(ann.response_a_labels, ann.response_b_labels)[leaky] for ann in row.annotations]
        assert any(f.leaks for f in flags)
        for ann, flag in zip(row.annotations, flags, strict=True):
            safe_labels = (ann.response_a_labels, ann.response_b_labels)[1 - leaky]
            assert not safe_labels.leaks and not safe_labels.omits
            if flag.leaks:
                assert any(fact_mentioned(f, flag.leaks_details) for f in row.sensitive_surface_forms)
                assert (ann.preference_value or 0) * (1 if leaky == 0 else -1) > 0  # prefers the safe side
        counts, bucket = preference_aggregates([{"preference": a.preference} for a in row.annotations])
        assert row.preference_counts == counts and row.majority_bucket == bucket
    assert leaky_positions == {0, 1}  # A/B order varies


def test_judge_view_hides_ground_truth(rows: list[ScenarioRow]) -> None:
    view = rows[0].judge_view()
    assert view.sensitive_facts == view.sensitive_surface_forms == view.relevant_facts == () and view.split == ""
    assert not view.has_ground_truth and rows[0].has_ground_truth and oracle_verdict(view, "x") is None


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
