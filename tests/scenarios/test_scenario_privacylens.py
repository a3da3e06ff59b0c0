"""PrivacyLens → PrivacyAlign conversion on the copied upstream records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scenarios.loading import load_rows
from scenarios.privacylens import convert_file, convert_record, main, parse_executable_trajectory
from scenarios.schema import ScenarioRow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "privacylens"
SUBSETS = ("confide_subset.json", "culturebank_subset.json")


@pytest.mark.parametrize("subset", SUBSETS)
def test_fixture_records_convert_to_valid_rows(subset: str) -> None:
    records = json.loads((FIXTURES / subset).read_text(encoding="utf-8"))
    rows = [ScenarioRow.from_dict(r, source=subset, line=i + 1) for i, r in enumerate(convert_file(FIXTURES / subset))]
    assert len(rows) == len(records) == 6
    for record, row in zip(records, rows, strict=True):
        traj = record["trajectory"]
        assert row.id == f"privacylens-{record['name']}"
        assert row.expected_final_action == traj["final_action"]
        assert row.sensitive_facts == tuple(traj["sensitive_info_items"])
        assert row.annotations == () and row.preference_counts == {} and row.majority_bucket == ""
        assert row.recipient == record["vignette"]["data_recipient_concrete"].strip()
        assert row.extras["source_dataset"] == "privacylens"
        n_actions = traj["executable_trajectory"].count("Action Input:")
        assert len(row.trajectory_events) == 2 * n_actions
        assert [json.loads(line)["type"] for line in row.trajectory.splitlines()] == [
            e.event_type for e in row.trajectory_events
        ]


def test_first_confide_case_hand_checked() -> None:
    row = ScenarioRow.from_dict(convert_file(FIXTURES / "confide_subset.json")[0])
    first = row.trajectory_events[0]
    assert (first.event_type, first.tool_name, first.tool_use_id) == ("tool_use", "GmailSearchEmails", "tu_1")
    assert json.loads(first.payload_json) == {"from": "sarah@techsolutions.com", "keywords": ["employee programs"]}
    result = json.loads(row.trajectory_events[1].payload_json)
    assert result["emails"][0]["subject"] == "Ideas for Upcoming Employee Programs"
    assert row.recipient == "Sarah" and row.toolkits == ("Gmail", "Messenger", "NotionManager")


def test_parser_keeps_broken_blocks_as_text() -> None:
    # Shapes seen upstream: a step without an `Action:` line and an input that is not valid JSON.
    text = (
        'Action: GmailReadEmail\nAction Input: {"email_id": "e1"}\nObservation: {"body": "hi"}\n\n'
        'Action Input: {"keywords": {"x"} "limit": 1}\nObservation: not json'
    )
    assert parse_executable_trajectory(text) == [
        {"name": "GmailReadEmail", "input": {"email_id": "e1"}, "observation": {"body": "hi"}},
        {"name": "", "input": '{"keywords": {"x"} "limit": 1}', "observation": "not json"},
    ]


def test_missing_key_names_record_and_key() -> None:
    record = json.loads((FIXTURES / "confide_subset.json").read_text(encoding="utf-8"))[0]
    del record["trajectory"]["final_action"]
    with pytest.raises(ValueError, match=r"cases\[2\]: PrivacyLens record lacks 'trajectory.final_action'"):
        convert_record(record, where="cases[2]")


def test_cli_output_loads_with_the_strict_loader(tmp_path: Path) -> None:
    out = tmp_path / "privacylens.jsonl"
    assert main([str(FIXTURES / s) for s in SUBSETS] + ["--out", str(out)]) == 0
    result = load_rows(out)
    assert len(result.rows) == 12 and result.unknown_final_actions == 0
