"""Parse and validate the agent's answer: one JSON tool call for the expected final action (docs/architecture.md §1.1).

The same check decides the reward's format penalty (docs/architecture.md §1.3): thinking stripped, one optional
```json fence removed, then the rest must be a JSON object with ``type == "tool_use"``,
``name == expected_final_action`` and dict ``arguments``. Nothing is repaired: a tolerant parser
would reward malformed answers the environment could not execute.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# Why an answer was rejected, in the order the checks run; `ok` means it is a valid tool call.
ANSWER_STATUSES = ("ok", "empty", "not_json", "not_object", "wrong_type", "wrong_name", "bad_arguments")
# Argument keys that address or label a message rather than carry its content (docs/architecture.md §1.3).
ADDRESS_KEYS = frozenset(
    {"to", "cc", "bcc", "subject", "recipient", "recipients", "channel", "title", "name", "id", "url", "type"}
)

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
_FENCE = re.compile(r"^```(?:json)?[ \t]*\n?(.*?)\n?```$", re.DOTALL)


@dataclass(frozen=True)
class ParsedAnswer:
    """The outcome of checking one answer.

    Attributes:
        ok: True when the answer is a valid call of the expected tool.
        status: One of :data:`ANSWER_STATUSES`.
        name: The called tool's name when the JSON had one (also for `wrong_name`).
        arguments: The call's arguments when they were a dict, else None.
    """

    ok: bool
    status: str
    name: str | None = None
    arguments: dict[str, Any] | None = None


def strip_thinking(text: str) -> str:
    """Remove ``<think>…</think>`` blocks; an unclosed ``<think>`` drops everything after it.

    An unclosed block means the model ran out of tokens while reasoning, so there is no answer.
    A stray ``</think>`` without an opening tag (templates that pre-fill ``<think>``) ends the reasoning.
    """
    text = _THINK_BLOCK.sub("", text)
    if "<think>" in text:
        text = text[: text.index("<think>")]
    if "</think>" in text:
        text = text[text.rindex("</think>") + len("</think>") :]
    return text.strip()


def strip_fence(text: str) -> str:
    """Remove one surrounding ```json … ``` (or bare ```) fence, if the whole text is fenced."""
    match = _FENCE.match(text.strip())
    return match.group(1).strip() if match else text.strip()


def parse_answer(text: str, expected_action: str) -> ParsedAnswer:
    """Check that `text` is exactly one JSON call of `expected_action` (after thinking and fence removal).

    Args:
        text: The raw completion.
        expected_action: The row's `expected_final_action`.

    Returns:
        A :class:`ParsedAnswer`; never raises on malformed input.
    """
    body = strip_fence(strip_thinking(text))
    if not body:
        return ParsedAnswer(ok=False, status="empty")
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return ParsedAnswer(ok=False, status="not_json")
    if not isinstance(value, dict):
        return ParsedAnswer(ok=False, status="not_object")
    name = value.get("name") if isinstance(value.get("name"), str) else None
    arguments = value.get("arguments") if isinstance(value.get("arguments"), dict) else None
    if value.get("type") != "tool_use":
        status = "wrong_type"
    elif name != expected_action:
        status = "wrong_name"
    elif arguments is None:
        status = "bad_arguments"
    else:
        status = "ok"
    return ParsedAnswer(ok=status == "ok", status=status, name=name, arguments=arguments)


def payload_words(arguments: dict[str, Any]) -> int:
    """Words of message content in a call's arguments, for the short-answer penalty (docs/architecture.md §1.3).

    Counts whitespace-separated words in every string value, recursing into lists and dicts, but
    skips values under :data:`ADDRESS_KEYS` (case-insensitive) at any depth: a recipient, subject or
    title is not content, and counting it would let an empty message with a long subject look useful.
    """

    def count(value: Any) -> int:
        if isinstance(value, str):
            return len(value.split())
        if isinstance(value, list):
            return sum(count(item) for item in value)
        if isinstance(value, dict):
            return sum(count(item) for key, item in value.items() if str(key).lower() not in ADDRESS_KEYS)
        return 0

    return count(arguments)


def argument_strings(value: Any) -> list[str]:
    """Every string inside a call's arguments (lists and dicts recursed), address keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in argument_strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in argument_strings(item)]
    return []


def payload_of(candidate: str) -> tuple[str, int]:
    """(text to search, payload words) of a candidate: the call's argument strings when it parses as a call.

    A candidate that is not a JSON call (malformed, truncated) is searched as raw text, so a leak in a
    broken answer is still seen.
    """
    try:
        value = json.loads(strip_fence(strip_thinking(candidate)))
    except json.JSONDecodeError:
        value = None
    if isinstance(value, dict) and isinstance(value.get("arguments"), dict):
        arguments = value["arguments"]
        return "\n".join(argument_strings(arguments)), payload_words(arguments)
    return candidate, len(candidate.split())
