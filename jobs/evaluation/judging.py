"""The evaluation jobs' judge: requests rendered and parsed by the judge package, answered by a backend
in this process or by the Ray Serve judge pool.

PrivacyLens questions (per-secret leak, helpfulness) are free-form prompts sent as pointwise requests
whose structured fields (row, candidate) let the offline backend answer too (see
jobs/evaluation/privacylens.py `lens_fallback`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from jobs.config import with_judge_model
from jobs.evaluation.scoring import PointwiseResult
from judge.backends import make_backend
from judge.backends.base import JudgeRequest
from judge.parsing import failed_verdict, parse_pairwise, parse_pointwise
from judge.prompts import pairwise_messages, pointwise_messages, truncate_words
from scenarios.schema import ScenarioRow

logger = logging.getLogger(__name__)


class EvalJudge:
    """Pointwise, pairwise and free-form judging for `evaluate` and `judge-eval`.

    Pointwise and pairwise requests carry `row.judge_view()`, and so do the pool's rows: a judge never
    sees a generated row's ground truth, which is the oracle's (docs/architecture.md §3, rule 1).
    PrivacyLens questions (`ask`) carry the one secret asked about: upstream's judge prompt names it.

    Args:
        cfg: the job config (an EvalJobConfig: its `judge` and `pool` sections, `uses_judge_pool`).
        rows: scenario rows the pool may look up by id (only used when the pool starts).
        job: the job's name, part of its own pool's Serve app name.
    """

    def __init__(self, cfg: Any, rows: Sequence[ScenarioRow] = (), job: str = "evaluate"):
        self.judge_cfg = cfg.judge
        self._pool = None
        self._backend = None
        pool_cfg = with_judge_model(cfg.judge_pool) if cfg.judge.backend == "vllm" else cfg.judge_pool
        if cfg.uses_judge_pool:
            from judge.pool import open_job_pool

            # Requests carry their rows, so an attached pool needs none of the job's by id.
            self._pool = open_job_pool(job, cfg.judge, pool_cfg, {row.id: row.judge_view() for row in rows})
        else:
            backend_cfg = {"vllm": pool_cfg.vllm, "openai": pool_cfg.openai}.get(cfg.judge.backend, cfg.judge)
            self._backend = make_backend(cfg.judge.backend, backend_cfg)
        self._counter = 0

    def _request(self, kind: str, messages: tuple, row: ScenarioRow, candidates: tuple[str, ...], annotated: bool):
        self._counter += 1
        return JudgeRequest(f"eval-{self._counter}", kind, messages, row, candidates, annotated, self.judge_cfg.seed)

    def _complete(self, requests: list[JudgeRequest]) -> list[tuple[str, str]]:
        """(text, error) per request; a failed call has empty text and a non-empty error."""
        if not requests:
            return []
        if self._pool is not None:
            verdicts = self._pool.judge(requests, f"{len(requests)} evaluation requests")
            return [(v.text, v.error) for v in verdicts]
        try:
            outputs = self._backend.complete(requests)
        except Exception as exc:  # process boundary: a dead backend becomes per-request judge errors
            logger.exception("judge backend failed on %d requests", len(requests))
            outputs = [exc] * len(requests)
        return [("", f"{type(o).__name__}: {o}") if isinstance(o, Exception) else (o, "") for o in outputs]

    def pointwise(
        self, rows: Sequence[ScenarioRow], candidates: Sequence[str], *, use_annotations: bool | None = None
    ) -> list[PointwiseResult]:
        """Leak/omit verdicts; annotations shown per `use_annotations` (default `judge.enable_annotations`)."""
        annotated = self.judge_cfg.enable_annotations if use_annotations is None else use_annotations
        requests = []
        for row, candidate in zip((r.judge_view() for r in rows), candidates, strict=True):
            text = truncate_words(candidate, self.judge_cfg.max_candidate_words)
            messages = pointwise_messages(row, text, use_annotations=annotated, style=self.judge_cfg.prompt_style)
            requests.append(self._request("pointwise", messages, row, (text,), annotated))
        out = []
        for text, error in self._complete(requests):
            verdict = failed_verdict("pointwise", error) if error else parse_pointwise(text)
            out.append(PointwiseResult(verdict.leaks, verdict.omits, verdict.status, text))
        return out

    def pairwise(
        self,
        rows: Sequence[ScenarioRow],
        first: Sequence[str],
        second: Sequence[str],
        *,
        use_annotations: bool | None = None,
    ) -> list[tuple[int | None, str]]:
        """(score −2…2 or None, status) per pair, in the given order (the caller swaps for dual order)."""
        annotated = self.judge_cfg.enable_annotations if use_annotations is None else use_annotations
        requests = []
        for row, a, b in zip((r.judge_view() for r in rows), first, second, strict=True):
            a, b = (truncate_words(t, self.judge_cfg.max_candidate_words) for t in (a, b))
            messages = pairwise_messages(row, a, b, use_annotations=annotated, style=self.judge_cfg.prompt_style)
            requests.append(self._request("pairwise", messages, row, (a, b), annotated))
        out = []
        for text, error in self._complete(requests):
            verdict = failed_verdict("pairwise", error) if error else parse_pairwise(text)
            out.append((verdict.score, verdict.status))
        return out

    def ask(self, questions: Sequence[tuple[str, ScenarioRow, str]]) -> list[tuple[str, str]]:
        """Free-form (prompt, row, candidate) questions → (text, status `ok` / `judge_error`)."""
        requests = [
            self._request("pointwise", ({"role": "user", "content": prompt},), row, (candidate,), False)
            for prompt, row, candidate in questions
        ]
        return [(text, "judge_error" if error else "ok") for text, error in self._complete(requests)]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        elif self._backend is not None:
            self._backend.close()


def make_judge(cfg: Any, rows: Sequence[ScenarioRow] = (), job: str = "evaluate") -> EvalJudge:
    return EvalJudge(cfg, rows, job)
