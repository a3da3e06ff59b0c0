"""The judge pool's HTTP face: bearer-token check, bounded body reads, OpenAI-style responses and errors.

The ingress (judge/serve_app.py) hands each HTTP request here with the function that scores a batch;
request parsing and its caps live in judge/http_request.py. Nothing here judges, caches or retries, so
the auth and wire format can be read (and changed) without the fan-out machinery in view.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from judge.http_request import BadJudgeRequest, HttpLimits, parse_judge_request
from judge.verdicts import JudgeOutput
from records.trajectory_batch import TrajectoryBatch
from scenarios.schema import ScenarioRow

logger = logging.getLogger(__name__)

# Scores a parsed batch against its rows: the scored batch and the verdicts behind it.
ScoreFn = Callable[[TrajectoryBatch, dict[str, ScenarioRow]], Awaitable[tuple[TrajectoryBatch, list[JudgeOutput]]]]


async def handle_http(
    request: Request, *, token_sha256: str, limits: HttpLimits, rows: dict[str, ScenarioRow], score: ScoreFn
) -> JSONResponse:
    """POST {"items": [{"scenario_id" | "row", "candidates": [str, ...]}, ...]} → OpenAI-style verdicts.

    Args:
        token_sha256: sha256 of the bearer token callers must send; "" = none required (loopback only).
        limits: caps on the body, items, candidates and text length.
        rows: the pool's scenario rows, which items may name by id.
        score: the ingress's scoring of a batch.
    """
    if token_sha256 and not _authorized(request, token_sha256):
        return _error(401, "missing or wrong bearer token", "authentication_error")
    if request.method != "POST":
        return _error(405, 'POST a JSON body: {"items": [{"scenario_id": ..., "candidates": [...]}]}')
    body = await _read_body(request, limits.max_body_bytes)
    try:
        if body is None:
            raise BadJudgeRequest(413, f"body larger than {limits.max_body_bytes} bytes")
        batch, request_rows = parse_judge_request(body, rows, limits)
    except BadJudgeRequest as exc:
        return _error(exc.status, str(exc))
    try:
        scored, verdicts = await score(batch, request_rows)
    except Exception:  # process boundary: log the traceback here, tell the caller nothing internal
        logger.exception("judging an HTTP request of %d candidates failed", len(batch))
        return _error(500, "judging failed; see the judge pool's logs", "server_error")
    return JSONResponse(_response_json(scored, verdicts))


def _authorized(request: Request, token_sha256: str) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(hashlib.sha256(token.encode()).hexdigest(), token_sha256)


def _response_json(scored: TrajectoryBatch, verdicts: list[JudgeOutput]) -> dict[str, Any]:
    assert scored.rewards is not None and scored.advantages is not None
    assert scored.valid is not None and scored.judge_statuses is not None
    choices = [
        {
            "index": i,
            "scenario_id": scored.scenario_ids[i],
            "group": scored.group_ids[i],
            "reward": scored.rewards[i],
            "advantage": scored.advantages[i],
            "valid": scored.valid[i],
            "judge_status": scored.judge_statuses[i],
        }
        for i in range(len(scored))
    ]
    return {
        "id": f"judge-{uuid.uuid4().hex}",
        "object": "judge.verdicts",
        "created": int(time.time()),
        "model": verdicts[0].judge_model if verdicts else "",
        "choices": choices,
        "verdicts": [
            {
                "content": v.text,
                # Whether the call failed, not why: exception text stays in the pool's logs.
                "error": "judge call failed" if v.error else "",
                "judge_model": v.judge_model,
                "prompt_hash": v.prompt_hash,
                "seed": v.seed,
                "cached": v.cached,
            }
            for v in verdicts
        ],
        "usage": {"judge_requests": len(verdicts), "cache_hits": sum(v.cached for v in verdicts)},
    }


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it exceeds `limit` bytes (stops reading there: no unbounded buffer)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    """OpenAI-style error body."""
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)
