"""Parse raw judge text into verdicts with a status (docs/architecture.md §1.2); never raises on judge output.

Statuses (records.trajectory_batch.JUDGE_STATUSES): `ok`; `empty_response` (blank text); `parse_error` (text but
no usable verdict, including output that is all thinking because the judge ran out of tokens);
`judge_error` (no text at all: the call failed; made by :func:`failed_verdict`, never by parsing).

Only the last `MAX_PARSED_CHARS` characters are read. Thinking (``<think>…</think>``, also unclosed) is
stripped first. Then:

* pointwise: the last non-empty line as a JSON object → the *last* balanced ``{…}`` anywhere that
  parses and carries `leaks` and `omits` (judges reason first and put the final verdict last; earlier
  objects are drafts or quoted examples) → ``key: value`` lines (last occurrence of a key wins).
  Booleans may be JSON booleans, 0/1 or the strings true/false/yes/no (any case).
* pairwise: the last ``Score: n`` line (markdown emphasis and a unicode minus tolerated) → the last
  balanced JSON object with a `score` key. n must be an integer in −2…2; a last `Score:` that is out of
  range or fractional is a parse_error, not a reason to fall back to an earlier, superseded score.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from rollout.answers import strip_thinking

SCORE_RANGE = (-2, 2)
# Judge text past this many characters is cut from the front before any regex or JSON scan runs:
# the verdict is at the end, and a runaway or hostile output must not cost the parser unbounded time.
MAX_PARSED_CHARS = 65_536

_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}
_SCORE_LINE = re.compile(r"\bscore\b\W{0,3}\s*[:=]\s*[*_`]*\s*([-+\u2212\u2013]?\s*\d+(?:\.\d+)?)", re.IGNORECASE)
_KEY_VALUE = re.compile(
    r"^[\s*_`\-\"']*(leaks|omits|leaks_explanation|omits_explanation)[*_`\"']*\s*[:=]\s*(.*)$", re.IGNORECASE
)


@dataclass(frozen=True)
class PointwiseVerdict:
    """A leak/omit verdict on one candidate; `leaks`/`omits` are None unless status is `ok`."""

    status: str
    leaks: bool | None = None
    omits: bool | None = None
    leaks_explanation: str = ""
    omits_explanation: str = ""
    error: str = ""


@dataclass(frozen=True)
class PairwiseVerdict:
    """A pairwise score in −2…2 (negative = response 1 better); `score` is None unless status is `ok`."""

    status: str
    score: int | None = None
    error: str = ""


Verdict = PointwiseVerdict | PairwiseVerdict


def failed_verdict(kind: str, error: str) -> Verdict:
    """The verdict for a call that produced no text (backend exception, lost replica): `judge_error`."""
    cls = PointwiseVerdict if kind == "pointwise" else PairwiseVerdict
    return cls(status="judge_error", error=error)


def balanced_objects(text: str) -> list[str]:
    """Every top-level balanced ``{…}`` span of `text`, in order; braces inside JSON strings are skipped."""
    spans: list[str] = []
    depth, start, in_string, escaped = 0, -1, False, False
    for i, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"' and depth > 0:
            in_string = True
        elif char == "{":
            if depth == 0:
                start = i
            depth += 1
        elif char == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


def _json_objects(text: str) -> list[dict[str, Any]]:
    """The balanced spans of `text` that decode to JSON objects, in order."""
    out = []
    for span in balanced_objects(text):
        try:
            value = json.loads(span)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def _as_bool(value: Any) -> bool | None:
    """JSON bool, 0/1, or a true/false/yes/no string (quotes, case, trailing punctuation ignored); else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().strip("\"'`*.,;").strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    return None


def _pointwise_from(fields: dict[str, Any]) -> PointwiseVerdict | None:
    leaks, omits = _as_bool(fields.get("leaks")), _as_bool(fields.get("omits"))
    if leaks is None or omits is None:
        return None
    return PointwiseVerdict(
        status="ok",
        leaks=leaks,
        omits=omits,
        leaks_explanation=str(fields.get("leaks_explanation", "") or ""),
        omits_explanation=str(fields.get("omits_explanation", "") or ""),
    )


def _key_value_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        match = _KEY_VALUE.match(line)
        if match:
            fields[match.group(1).lower()] = match.group(2).strip().rstrip(",").strip()
    return fields


def _body(text: str) -> tuple[str | None, str]:
    """(thinking-stripped body, "") or (None, status) when there is nothing to parse."""
    if not text or not text.strip():
        return None, "empty_response"
    body = strip_thinking(text[-MAX_PARSED_CHARS:])
    return (body, "") if body else (None, "parse_error")


def parse_pointwise(text: str) -> PointwiseVerdict:
    """Read a leak/omit verdict from raw judge text (see the module docstring for the fallback order)."""
    body, status = _body(text)
    if body is None:
        return PointwiseVerdict(status=status, error="no text" if status == "empty_response" else "only thinking")
    last_line = body.splitlines()[-1].strip()
    try:
        value = json.loads(last_line)
    except json.JSONDecodeError:
        value = None
    if isinstance(value, dict) and (verdict := _pointwise_from(value)) is not None:
        return verdict
    for obj in reversed(_json_objects(body)):
        if "leaks" in obj and "omits" in obj:
            verdict = _pointwise_from(obj)
            if verdict is not None:
                return verdict
            break  # the last verdict-shaped object is the judge's answer; its values are unusable
    verdict = _pointwise_from(_key_value_fields(body))
    return verdict or PointwiseVerdict(status="parse_error", error="no leaks/omits verdict found")


def _check_score(raw: Any) -> PairwiseVerdict:
    if isinstance(raw, bool):
        return PairwiseVerdict(status="parse_error", error=f"score is a boolean ({raw})")
    if isinstance(raw, str):
        raw = raw.replace("\u2212", "-").replace("\u2013", "-").replace(" ", "")
        try:
            raw = float(raw)
        except ValueError:
            return PairwiseVerdict(status="parse_error", error=f"score {raw!r} is not a number")
    if not isinstance(raw, int | float) or raw != int(raw):
        return PairwiseVerdict(status="parse_error", error=f"score {raw!r} is not an integer")
    score = int(raw)
    if not SCORE_RANGE[0] <= score <= SCORE_RANGE[1]:
        return PairwiseVerdict(status="parse_error", error=f"score {score} outside {SCORE_RANGE[0]}..{SCORE_RANGE[1]}")
    return PairwiseVerdict(status="ok", score=score)


def parse_pairwise(text: str) -> PairwiseVerdict:
    """Read a −2…2 score from raw judge text (see the module docstring for the fallback order)."""
    body, status = _body(text)
    if body is None:
        return PairwiseVerdict(status=status, error="no text" if status == "empty_response" else "only thinking")
    matches = _SCORE_LINE.findall(body)
    if matches:
        return _check_score(matches[-1])
    for obj in reversed(_json_objects(body)):
        if "score" in obj:
            return _check_score(obj["score"])
    return PairwiseVerdict(status="parse_error", error="no Score line or JSON score found")


def parse_verdict(kind: str, text: str) -> Verdict:
    """Dispatch on the request kind ("pointwise" or "pairwise")."""
    if kind == "pointwise":
        return parse_pointwise(text)
    if kind == "pairwise":
        return parse_pairwise(text)
    raise ValueError(f"unknown judge request kind {kind!r}; valid: ['pairwise', 'pointwise']")


def verdict_of(kind: str, output: str | BaseException) -> Verdict:
    """The verdict of one backend output: parsed text, or `judge_error` for an exception in its place (a failed call)."""
    if isinstance(output, BaseException):
        return failed_verdict(kind, f"{type(output).__name__}: {output}")
    return parse_verdict(kind, output)
