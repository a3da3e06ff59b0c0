"""The judge's HTTP request validation, without Serve: caps answer 413, malformed bodies 400, no internals."""

from __future__ import annotations

import json

import pytest

from judge.http_request import BadJudgeRequest, HttpLimits, parse_judge_request
from judge.serve_config import JudgePoolConfig
from scenarios.config import bundled_scenarios_path
from scenarios.loading import load_rows

ROWS = {row.id: row for row in load_rows(bundled_scenarios_path(), max_rows=2).rows}
SID = next(iter(ROWS))
LIMITS = HttpLimits(max_body_bytes=4096, max_items=3, max_candidates=2, max_text_chars=50)


def _parse(payload: object, limits: HttpLimits = LIMITS):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse_judge_request(body, ROWS, limits)


def _refused(payload: object, limits: HttpLimits = LIMITS) -> tuple[int, str]:
    with pytest.raises(BadJudgeRequest) as info:
        _parse(payload, limits)
    return info.value.status, str(info.value)


def test_valid_request_becomes_one_group_per_item() -> None:
    big_row = next(iter(ROWS.values())).to_dict()
    payload = {"items": [{"scenario_id": SID, "candidates": ["a", "b"]}, {"row": big_row, "candidates": ["c"]}]}
    batch, rows = _parse(payload, HttpLimits(10**6, 3, 2, 50))
    assert batch.completion_texts == ["a", "b", "c"] and batch.group_ids == [0, 0, 1]
    assert set(rows) == set(ROWS)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"x" * 4097, "body larger than 4096 bytes"),
        ({"items": [{"scenario_id": SID, "candidates": ["a"]}] * 4}, "more than 3 items"),
        ({"items": [{"scenario_id": SID, "candidates": ["a", "b", "c"]}]}, "items[0]: more than 2 candidates"),
        ({"items": [{"scenario_id": SID, "candidates": ["a", "y" * 51]}]}, "items[0].candidates[1] longer than 50"),
    ],
    ids=["body", "items", "candidates", "text"],
)
def test_over_a_cap_is_413(payload: object, message: str) -> None:
    status, text = _refused(payload)
    assert status == 413 and text.startswith(message)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff\xfe{not json", "body is not JSON"),
        (b"[" * 2000 + b"]" * 2000, "body is not JSON"),
        ({"items": []}, "body must be"),
        ({"items": ["x"]}, "items[0] must be an object"),
        ({"items": [{"scenario_id": "nope", "candidates": ["a"]}]}, "items[0]: unknown scenario_id"),
        ({"items": [{"scenario_id": SID, "candidates": [1]}]}, "items[0].candidates must be a non-empty list"),
        ({"items": [{"row": {"id": "r"}, "candidates": ["a"]}]}, "items[0].row: invalid field"),
    ],
)
def test_malformed_is_400_with_a_short_message_of_our_own(payload: object, message: str) -> None:
    status, text = _refused(payload)
    assert status == 400 and text.startswith(message)
    assert "Traceback" not in text and "Error" not in text and "nope" not in text  # no exception text, no echo


def test_caps_come_from_the_pool_config_and_are_checked() -> None:
    cfg = JudgePoolConfig(http_max_items=7)
    assert HttpLimits.from_pool(cfg) == HttpLimits(8 * 1024**2, 7, 16, 32_768)
    with pytest.raises(ValueError, match="judge_pool.http_max_candidates must be >= 1"):
        JudgePoolConfig(http_max_candidates=0)
