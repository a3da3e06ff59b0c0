"""Agent prompt rendering on the hand-written PrivacyAlign rows and the bundled scenarios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollout.answers import parse_answer
from rollout.prompts import SYSTEM_PROMPTS, argument_schema, reference_answer, render_messages
from scenarios.config import bundled_scenarios_path
from scenarios.loading import load_rows

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "privacyalign" / "example_rows.jsonl"


@pytest.fixture(scope="module")
def rows():
    return load_rows(FIXTURE).rows


def test_styles_are_registered_by_exact_name(rows) -> None:
    assert sorted(SYSTEM_PROMPTS) == ["compact", "naive", "privacy_enhanced"]
    with pytest.raises(ValueError, match="compact.*naive.*privacy_enhanced"):
        render_messages(rows[0], "Naive")


def test_messages_carry_the_scenario(rows) -> None:
    row = rows[0]
    messages = render_messages(row, "naive")
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    for text in (row.user_name, row.user_instruction, *row.memories, row.expected_final_action):
        assert text in user
    for event in row.trajectory_events:
        assert event.tool_name in user
        # payloads appear compactly re-serialised but complete
        assert json.dumps(json.loads(event.payload_json), separators=(",", ":"), ensure_ascii=False) in user
    assert f'"name": "{row.expected_final_action}"' in user
    seen = dict.fromkeys(ev.tool_name for ev in row.trajectory_events)
    assert f"Actions used: {', '.join(seen)}" in user


def test_privacy_enhanced_only_adds_guidance(rows) -> None:
    naive, enhanced = (render_messages(rows[0], style) for style in ("naive", "privacy_enhanced"))
    assert naive[1] == enhanced[1]
    assert enhanced[0]["content"].startswith(naive[0]["content"])
    assert "contextual integrity" in enhanced[0]["content"]
    assert "contextual integrity" not in naive[0]["content"]


def test_argument_schema_is_the_union_of_both_references(rows) -> None:
    row = rows[0]
    keys = list(dict.fromkeys([*row.response_a.arguments, *row.response_b.arguments]))
    schema = argument_schema(row)
    assert list(schema) == keys
    for key in keys:
        values = [ref.arguments[key] for ref in row.references if key in ref.arguments]
        if all(isinstance(v, str) for v in values):
            assert schema[key] == "str"
    assert f"Final tool: {row.expected_final_action}(" in render_messages(row, "naive")[1]["content"]


def test_schema_types_hand_written() -> None:
    raw = json.loads(FIXTURE.read_text(encoding="utf-8").splitlines()[0])
    raw["response_a"]["arguments_json"] = json.dumps({"to": "a", "n": 2, "tags": ["x"], "meta": {}, "flag": True})
    raw["response_b"]["arguments_json"] = json.dumps({"to": "b", "n": "two", "extra": None})
    row = type(load_rows(FIXTURE).rows[0]).from_dict(raw)
    assert argument_schema(row) == {
        "to": "str",
        "n": "number|str",
        "tags": "list[str]",
        "meta": "object",
        "flag": "bool",
        "extra": "null",
    }


def test_reference_answers_are_valid_calls(rows) -> None:
    for row in rows:
        for which in (0, 1):
            parsed = parse_answer(reference_answer(row, which), row.expected_final_action)
            assert parsed.ok and parsed.arguments == row.references[which].arguments


def test_bundled_prompts_stay_compact() -> None:
    # The tiny model's window is 1,024 tokens; characters bound tokens from above for byte-level BPE.
    bundled = load_rows(bundled_scenarios_path()).rows
    longest = max(sum(len(m["content"]) for m in render_messages(r, "privacy_enhanced")) for r in bundled)
    assert longest < 2000
    # The compact style keeps the contract and the privacy guidance in a fraction of the system prompt.
    compact, enhanced = SYSTEM_PROMPTS["compact"], SYSTEM_PROMPTS["privacy_enhanced"]
    assert "JSON" in compact and "private" in compact and len(compact) < len(enhanced) / 3
