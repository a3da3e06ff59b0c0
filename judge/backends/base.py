"""The judge backend interface (docs/architecture.md §1.2): one request type, one protocol, one prompt hash.

Every backend (offline, vllm, openai) turns :class:`JudgeRequest` objects into raw judge *text*; the
same parser (judge/parsing.py) reads that text for every backend, so a backend cannot bypass the
status accounting (`ok` / `parse_error` / `empty_response` / `judge_error`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from scenarios.schema import ScenarioRow

# Judge forms (docs/architecture.md §1.2): pointwise = leak/omit JSON verdict, pairwise = `Score: n`.
REQUEST_KINDS = ("pointwise", "pairwise")


@dataclass(frozen=True)
class JudgeRequest:
    """One judge call: the rendered chat messages plus the structured context they were rendered from.

    Attributes:
        request_id: unique within one `complete` call; echoed in results so callers can re-associate.
        kind: "pointwise" (one candidate) or "pairwise" (two candidates).
        messages: rendered chat messages, what LLM backends send to the model.
        row: the scenario; the offline backend decides from its facts and annotations.
        candidates: 1 (pointwise) or 2 (pairwise) candidate answers, already truncated.
        use_annotations: whether the annotator block was rendered (and may be used by the offline judge).
        seed: sampling seed, recorded in provenance.
    """

    request_id: str
    kind: str
    messages: tuple[dict[str, str], ...]
    row: ScenarioRow
    candidates: tuple[str, ...]
    use_annotations: bool
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in REQUEST_KINDS:
            raise ValueError(f"JudgeRequest.kind must be one of {list(REQUEST_KINDS)}, got {self.kind!r}")
        expected = 1 if self.kind == "pointwise" else 2
        if len(self.candidates) != expected:
            raise ValueError(
                f"JudgeRequest {self.request_id}: a {self.kind} request needs {expected} candidate(s), "
                f"got {len(self.candidates)}"
            )


class JudgeBackend(Protocol):
    """What the reward stage and the Serve replicas call; implementations live in judge/backends/."""

    name: str  # registry name ("offline", "vllm", "openai")
    model: str  # judge model id, recorded in every verdict's provenance

    def complete(self, requests: Sequence[JudgeRequest]) -> list[str]:
        """Raw judge text, one per request, in request order."""
        ...

    def check_health(self) -> None:
        """Raise if the backend can no longer judge (a dead engine); cheap, no judge call. Serve probes it."""
        ...

    def close(self) -> None:
        """Release engines, HTTP clients, threads."""
        ...


def prompt_hash(messages: Sequence[dict[str, str]]) -> str:
    """Stable sha256 of rendered chat messages (verdict cache key and provenance).

    Canonical JSON (sorted keys, no whitespace variation) so dict ordering cannot change the hash.
    """
    canonical = json.dumps([dict(m) for m in messages], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
