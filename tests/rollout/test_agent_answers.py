"""Agent answer parsing: thinking, fences, JSON tool-call validation, and the payload word count."""

from __future__ import annotations

import json

import pytest

from rollout.answers import ANSWER_STATUSES, parse_answer, payload_words, strip_fence, strip_thinking

ACTION = "GmailSendEmail"
CALL = {"type": "tool_use", "name": ACTION, "arguments": {"to": "leo@x.io", "body": "Offsite on March 14."}}
GOOD = json.dumps(CALL)


@pytest.mark.parametrize(
    "text",
    [
        GOOD,
        f"  {GOOD}\n",
        f"<think>Leo needs the date only.</think>\n{GOOD}",
        f"<think>a</think><think>b</think>{GOOD}",
        f"```json\n{GOOD}\n```",
        f"```\n{GOOD}\n```",
        f"<think>plan</think>\n```json\n{GOOD}\n```",
        f"reasoning pre-filled by the template</think>{GOOD}",
    ],
)
def test_well_formed_answers_parse(text: str) -> None:
    parsed = parse_answer(text, ACTION)
    assert parsed.ok and parsed.status == "ok"
    assert parsed.name == ACTION
    assert parsed.arguments == CALL["arguments"]


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("<think>still thinking about what to send", "empty"),
        (f"<think>unclosed {GOOD}", "empty"),
        ("```json\n```", "empty"),
        ('{"type": "tool_use", "name": "GmailSendEmail", "arguments": {"body": "hi"}', "not_json"),
        (f"Sure! Here is the call: {GOOD}", "not_json"),
        (f"{GOOD}\n{GOOD}", "not_json"),
        (f"```json\n{GOOD}\n```\n```json\n{GOOD}\n```", "not_json"),
        (f"[{GOOD}]", "not_object"),
        ('"just a string"', "not_object"),
        (json.dumps({**CALL, "type": "function"}), "wrong_type"),
        (json.dumps({k: v for k, v in CALL.items() if k != "type"}), "wrong_type"),
        (json.dumps({**CALL, "name": "SlackSendMessage"}), "wrong_name"),
        (json.dumps({**CALL, "name": "gmailsendemail"}), "wrong_name"),
        (json.dumps({k: v for k, v in CALL.items() if k != "name"}), "wrong_name"),
        (json.dumps({**CALL, "arguments": '{"body": "hi"}'}), "bad_arguments"),
        (json.dumps({**CALL, "arguments": ["hi"]}), "bad_arguments"),
        (json.dumps({k: v for k, v in CALL.items() if k != "arguments"}), "bad_arguments"),
    ],
)
def test_broken_answers_are_rejected_with_reason(text: str, status: str) -> None:
    parsed = parse_answer(text, ACTION)
    assert not parsed.ok
    assert parsed.status == status
    assert status in ANSWER_STATUSES


def test_wrong_name_keeps_the_called_name_and_arguments() -> None:
    parsed = parse_answer(json.dumps({**CALL, "name": "SlackSendMessage"}), ACTION)
    assert (parsed.name, parsed.arguments) == ("SlackSendMessage", CALL["arguments"])


def test_strip_helpers() -> None:
    assert strip_thinking("<think>x</think> a <think>y</think> b") == "a  b"
    assert strip_thinking("answer <think>cut off") == "answer"
    assert strip_fence("```json\n{}\n```") == "{}"
    # Only a fence around the whole text is removed; inline backticks stay.
    assert strip_fence("see ```json {}```  tail") == "see ```json {}```  tail"


def test_payload_words_hand_counted() -> None:
    arguments = {
        "to": "leo@x.io maya@x.io",  # address: skipped
        "Subject": "Offsite details for you",  # address key, case-insensitive: skipped
        "body": "Hi Leo, the offsite is on March 14.",  # 8 words
        "attachments": ["agenda draft", {"title": "skipped title", "note": "bring laptops"}],  # 2 + 2
        "recipients": ["a", "b"],  # skipped
        "priority": 3,  # not a string: 0
    }
    assert payload_words(arguments) == 12
    assert payload_words({}) == 0
    assert payload_words({"message": "   "}) == 0
