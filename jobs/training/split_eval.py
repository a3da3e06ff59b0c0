"""Held-out evaluation during training: unusable, judge and oracle rates on one split (dev or test).

Runs as a zero-CPU Ray task next to the judge pool so samples never reach the driver; the driver gets
back a dict of numbers (:func:`jobs.evaluation.metrics.split_rates` under a prefix). The judge grades
each usable answer from the row's judge view; the oracle grades it against the row's ground truth; an
answer that is not a valid call of the expected tool, or a sample the engine never produced (a prompt
longer than the model window is skipped), is unusable and counted on its own (docs/architecture.md §3).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import ray

from jobs.evaluation.metrics import GradedAnswer, LeakOmit, judge_leak_omit, split_rates
from judge.backends.base import JudgeRequest
from judge.config import JudgeConfig
from judge.parsing import failed_verdict, parse_pointwise
from judge.pool import JudgePool
from judge.prompts import pointwise_messages
from judge.reward import candidate_text
from records.trajectory_batch import TrajectoryBatch
from rollout.answers import parse_answer
from scenarios.oracle import oracle_verdict
from scenarios.schema import ScenarioRow


def judge_requests(
    prefix: str,
    judge_cfg: JudgeConfig,
    rows: Mapping[str, ScenarioRow],
    scenario_ids: Sequence[str],
    texts: Sequence[str],
) -> dict[int, JudgeRequest]:
    """One pointwise request per usable answer, keyed by sample index, built from the row's judge view
    (a judge never sees ground truth). Unusable answers are not judged."""
    requests = {}
    for i, (scenario_id, text) in enumerate(zip(scenario_ids, texts, strict=True)):
        row = rows[scenario_id]
        if not parse_answer(text, row.expected_final_action).ok:
            continue
        view = row.judge_view()
        candidate = candidate_text(text, judge_cfg.max_candidate_words)
        messages = pointwise_messages(
            view, candidate, use_annotations=judge_cfg.enable_annotations, style=judge_cfg.prompt_style
        )
        requests[i] = JudgeRequest(
            f"{prefix}-{i}", "pointwise", messages, view, (candidate,), judge_cfg.enable_annotations, judge_cfg.seed
        )
    return requests


def graded_answers(
    rows: Mapping[str, ScenarioRow],
    scenario_ids: Sequence[str],
    texts: Sequence[str],
    judged: Mapping[int, LeakOmit | None],
    expected_ids: Sequence[str],
    samples_per_prompt: int,
) -> list[GradedAnswer]:
    """Every expected sample as a :class:`GradedAnswer`.

    Args:
        judged: one entry per usable sample index: the judge's verdict, None when the judgement failed.
        expected_ids: the prompts asked for; each should have `samples_per_prompt` samples, and each
            missing one (a prompt the engine skipped) counts as an unusable answer.
    """
    out = []
    for i, (scenario_id, text) in enumerate(zip(scenario_ids, texts, strict=True)):
        row = rows[scenario_id]
        usable = i in judged
        oracle = oracle_verdict(row, text) if usable else None
        out.append(
            GradedAnswer(
                usable=usable,
                judge=judged.get(i),
                has_ground_truth=row.has_ground_truth,
                oracle=None if oracle is None else LeakOmit(oracle.leaks, oracle.omits),
            )
        )
    produced = Counter(scenario_ids)
    for scenario_id in expected_ids:
        missing = max(0, samples_per_prompt - produced[scenario_id])
        out += [GradedAnswer(usable=False, has_ground_truth=rows[scenario_id].has_ground_truth)] * missing
    return out


@ray.remote(num_cpus=0)
def evaluate_split_batch(
    pool: JudgePool,
    rows: dict[str, ScenarioRow],
    prefix: str,
    expected_ids: list[str],
    samples_per_prompt: int,
    *batches: TrajectoryBatch,
) -> dict[str, float | None]:
    """Judge the usable samples through `pool` (`JudgePool.judge`, within its deadline), grade them with
    the oracle, and return `split_rates` with keys `<prefix>/unusable_rate`, `<prefix>/judge/leak_among_usable`, ...

    `rows` are the full rows (the oracle needs ground truth); the requests carry judge views only and are
    rendered with the pool's judge settings (those of the job, checked when a shared pool is attached).
    """
    batch = TrajectoryBatch.concat(batches)
    requests = judge_requests(prefix, pool.judge_cfg, rows, batch.scenario_ids, batch.completion_texts)
    results = pool.judge(list(requests.values()), f"{len(requests)} {prefix} answers")
    judged = {}
    for i, result in zip(requests, results, strict=True):
        verdict = failed_verdict("pointwise", result.error) if result.error else parse_pointwise(result.text)
        judged[i] = judge_leak_omit(verdict.leaks, verdict.omits, verdict.status)
    graded = graded_answers(rows, batch.scenario_ids, batch.completion_texts, judged, expected_ids, samples_per_prompt)
    return {f"{prefix}/{key}": value for key, value in split_rates(graded).items()}
