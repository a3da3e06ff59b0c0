"""The judge's HTTP request body → a TrajectoryBatch, with size caps (pure: no Ray, no Serve).

HTTP callers are untrusted: the body, the number of items, the candidates per item and each
candidate's length are capped (`JudgePoolConfig.http_max_*`) before anything is parsed or judged, and
an error answers with a short message of its own, never an exception's text or a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from judge.serve_config import JudgePoolConfig
from records.trajectory_batch import TrajectoryBatch
from scenarios.schema import ScenarioRow

USAGE = '{"items": [{"scenario_id": "<id>" or "row": {...}, "candidates": ["<answer>", ...]}, ...]}'


@dataclass(frozen=True)
class HttpLimits:
    """Caps on one HTTP judge request (see JudgePoolConfig for what each means)."""

    max_body_bytes: int
    max_items: int
    max_candidates: int
    max_text_chars: int

    @classmethod
    def from_pool(cls, cfg: JudgePoolConfig) -> HttpLimits:
        return cls(cfg.http_max_body_bytes, cfg.http_max_items, cfg.http_max_candidates, cfg.http_max_text_chars)


class BadJudgeRequest(ValueError):
    """A request the route refuses: `status` (400 malformed, 413 over a cap) and a short, safe message."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def parse_judge_request(
    body: bytes, known_rows: Mapping[str, ScenarioRow], limits: HttpLimits
) -> tuple[TrajectoryBatch, dict[str, ScenarioRow]]:
    """Validate an HTTP body and build one group per item (candidates carry text only, no tokens).

    Args:
        body: the raw request body.
        known_rows: scenarios the pool was started with, addressable by `scenario_id`.
        limits: the caps.

    Returns:
        The batch to score and the rows it refers to (`known_rows` plus rows sent inline).

    Raises:
        BadJudgeRequest: over a cap (413) or malformed (400).
    """
    if len(body) > limits.max_body_bytes:
        raise BadJudgeRequest(413, f"body larger than {limits.max_body_bytes} bytes")
    try:
        payload: Any = json.loads(body)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested deeper than the parser goes
        raise BadJudgeRequest(400, f"body is not JSON; expected {USAGE}") from None
    items = payload.get("items") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        raise BadJudgeRequest(400, f"body must be {USAGE}")
    if len(items) > limits.max_items:
        raise BadJudgeRequest(413, f"more than {limits.max_items} items in one request")
    rows = dict(known_rows)
    scenario_ids: list[str] = []
    group_ids: list[int] = []
    texts: list[str] = []
    for gid, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadJudgeRequest(400, f"items[{gid}] must be an object")
        if "row" in item:
            try:
                row = ScenarioRow.from_dict(item["row"], source=f"items[{gid}].row")
            except (ValueError, TypeError) as exc:  # RowValidationError names the field
                field = getattr(exc, "field", "") or "<row>"
                raise BadJudgeRequest(400, f"items[{gid}].row: invalid field '{field}'") from None
            rows[row.id] = row
            sid = row.id
        else:
            sid = item.get("scenario_id")
            if not isinstance(sid, str) or sid not in rows:
                raise BadJudgeRequest(400, f'items[{gid}]: unknown scenario_id; send the scenario as "row"')
        candidates = item.get("candidates")
        if not isinstance(candidates, list) or not candidates or not all(isinstance(c, str) for c in candidates):
            raise BadJudgeRequest(400, f"items[{gid}].candidates must be a non-empty list of strings")
        if len(candidates) > limits.max_candidates:
            raise BadJudgeRequest(413, f"items[{gid}]: more than {limits.max_candidates} candidates")
        for k, text in enumerate(candidates):
            if len(text) > limits.max_text_chars:
                raise BadJudgeRequest(
                    413, f"items[{gid}].candidates[{k}] longer than {limits.max_text_chars} characters"
                )
        scenario_ids += [sid] * len(candidates)
        group_ids += [gid] * len(candidates)
        texts += candidates
    n = len(texts)
    batch = TrajectoryBatch(
        scenario_ids=scenario_ids,
        group_ids=group_ids,
        prompt_ids=[[] for _ in range(n)],
        completion_ids=[[] for _ in range(n)],
        completion_logprobs=[[] for _ in range(n)],
        completion_texts=texts,
        finish_reasons=["stop"] * n,
    )
    return batch, rows
