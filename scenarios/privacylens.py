"""Convert PrivacyLens records (SALT-NLP/PrivacyLens, MIT) into PrivacyAlign row dicts.

A PrivacyLens case gives the user's instruction, a past ``executable_trajectory`` of
``Action:`` / ``Action Input:`` / ``Observation:`` blocks, the ``final_action`` the agent must take, and
the secrets (``sensitive_info_items``) that action must not reveal. Mapping:

- ``sensitive_info_items`` → ``sensitive_facts``: the leak details a judge checks one by one
  (docs/architecture.md §1.5). They are sentences, not verbatim spans of the trajectory, so they need an LLM
  judge rather than :func:`scenarios.facts.fact_mentioned`.
- ``executable_trajectory`` → ``trajectory`` (JSON lines) and ``trajectory_events``.
- ``final_action`` → ``expected_final_action``; ``vignette.data_recipient_concrete`` → ``recipient``.
- No human preference exists: ``annotations`` is an empty list, ``preference_counts`` / ``majority_bucket``
  are empty, and ``response_a`` / ``response_b`` are placeholders (``model`` = ``"none"``, empty
  arguments) because the schema requires both keys. Consumers must not treat them as references.

Real records are not always well formed (one culturebank case lacks an ``Action:`` line, and some
inputs are not valid JSON): unparsable inputs/observations are kept as text, a missing action name
stays empty, and nothing is dropped.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path
from typing import Any

from scenarios.schema import ScenarioRow

logger = logging.getLogger(__name__)

_MARKER = re.compile(r"^(Action|Action Input|Observation):[ \t]*", re.MULTILINE)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_executable_trajectory(text: str) -> list[dict[str, Any]]:
    """Split ``Action / Action Input / Observation`` blocks into steps ``{name, input, observation}``.

    Each ``Action Input`` starts a step named by the most recent unused ``Action`` line ("" if none);
    an ``Observation`` attaches to the current step. Values that are not JSON stay strings.
    """
    markers = list(_MARKER.finditer(text))
    steps: list[dict[str, Any]] = []
    pending_name = ""
    for i, match in enumerate(markers):
        end = markers[i + 1].start() if i + 1 < len(markers) else len(text)
        value = text[match.end() : end].strip()
        kind = match.group(1)
        if kind == "Action":
            pending_name = value
        elif kind == "Action Input":
            steps.append({"name": pending_name, "input": _json_or_text(value), "observation": None})
            pending_name = ""
        elif steps:
            steps[-1]["observation"] = _json_or_text(value)
    return steps


def _events(steps: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    lines: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for number, step in enumerate(steps, start=1):
        use_id = f"tu_{number}"
        pairs = [("tool_use", step["input"])]
        lines.append({"type": "tool_use", "id": use_id, "name": step["name"], "input": step["input"]})
        if step["observation"] is not None:
            pairs.append(("tool_result", step["observation"]))
            lines.append({"type": "tool_result", "tool_use_id": use_id, "content": step["observation"]})
        for event_type, payload in pairs:
            index = len(events)
            events.append(
                {
                    "event_type": event_type,
                    "tool_name": step["name"],
                    "payload_json": json.dumps(payload, ensure_ascii=False),
                    "id": f"ev{index}",
                    "index": index,
                    "tool_use_id": use_id,
                }
            )
    return "\n".join(json.dumps(line, ensure_ascii=False) for line in lines), events


def _placeholder_response(action: str, label: str) -> dict[str, Any]:
    return {
        "action_raw": "",
        "action_type": "tool_use",
        "arguments_json": "{}",
        "tool_name": action,
        "model": "none",
        "model_label": label,
    }


def _require(record: dict[str, Any], path: str, where: str) -> Any:
    value: Any = record
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise ValueError(f"{where}: PrivacyLens record lacks '{path}'")
        value = value[key]
    return value


def convert_record(record: dict[str, Any], *, where: str = "<record>") -> dict[str, Any]:
    """One PrivacyLens case → one PrivacyAlign row dict (validates as ScenarioRow).

    Args:
        record: A PrivacyLens case with ``name``, ``seed``, ``vignette`` and ``trajectory``.
        where: Location for error messages, e.g. "confide_subset.json[3]".

    Raises:
        ValueError: A required PrivacyLens key is missing (names `where` and the key).
    """
    name = _require(record, "name", where)
    action = _require(record, "trajectory.final_action", where)
    trajectory, events = _events(
        parse_executable_trajectory(_require(record, "trajectory.executable_trajectory", where))
    )
    user_email = record["trajectory"].get("user_email", "")
    return {
        "id": f"privacylens-{name}",
        "user_name": _require(record, "trajectory.user_name", where),
        "user_instruction": _require(record, "trajectory.user_instruction", where),
        "memories": [f"The user's email address is {user_email}."] if user_email else [],
        "domains": ["privacylens", str(record.get("seed", {}).get("source", "")).lower() or "unknown"],
        "toolkits": list(_require(record, "trajectory.toolkits", where)),
        "trajectory": trajectory,
        "trajectory_events": events,
        "expected_final_action": action,
        "response_a": _placeholder_response(action, "agent_a"),
        "response_b": _placeholder_response(action, "agent_b"),
        "annotations": [],
        "preference_counts": {},
        "majority_bucket": "",
        "sensitive_facts": list(_require(record, "trajectory.sensitive_info_items", where)),
        "relevant_facts": [],
        "recipient": str(record.get("vignette", {}).get("data_recipient_concrete", "")).strip(),
        "source_dataset": "privacylens",
        "source_name": name,
    }


def convert_file(path: str | Path) -> list[dict[str, Any]]:
    """Every case of one PrivacyLens JSON file (a list of records), each checked against ScenarioRow."""
    path = Path(path)
    records = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of PrivacyLens records, got {type(records).__name__}")
    rows = []
    for i, record in enumerate(records):
        row = convert_record(record, where=f"{path}[{i}]")
        ScenarioRow.from_dict(row, source=str(path), line=i + 1)
        rows.append(row)
    logger.info("%s: converted %d PrivacyLens cases", path, len(rows))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert PrivacyLens JSON files into PrivacyAlign-format JSONL.")
    parser.add_argument("inputs", nargs="+", type=Path, help="PrivacyLens JSON files (lists of cases)")
    parser.add_argument("--out", type=Path, required=True, help="output JSONL path (parent folders are created)")
    args = parser.parse_args(argv)
    rows = [row for path in args.inputs for row in convert_file(path)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    logger.info("wrote %d rows to %s", len(rows), args.out)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(main())
