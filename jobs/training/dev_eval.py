"""Held-out evaluation during training: dev-split leak / omit / clean rates from the pointwise judge.

Runs as a zero-CPU Ray task next to the judge pool so dev samples never reach the driver; the driver
gets back four numbers. Counting follows the evaluation job (docs/architecture.md §1.5): an unusable answer or a
failed judgement counts as both a leak and an omission.
"""

from __future__ import annotations

import ray
from ray import serve

from jobs.evaluation.metrics import effective_verdict, leak_omit_rates
from judge.backends.base import JudgeRequest
from judge.config import JudgeConfig
from judge.parsing import failed_verdict, parse_pointwise
from judge.prompts import pointwise_messages
from judge.reward import candidate_text
from rollout.answers import parse_answer
from rollout.batch import TrajectoryBatch
from scenarios.schema import ScenarioRow


@ray.remote(num_cpus=0)
def evaluate_dev_batch(
    app_name: str, judge_cfg: JudgeConfig, rows: dict[str, ScenarioRow], *batches: TrajectoryBatch
) -> dict[str, float]:
    """Pointwise-judge every dev sample through the judge pool and aggregate the rates."""
    batch = TrajectoryBatch.concat(batches)
    requests, usable = [], []
    for i, (scenario_id, text) in enumerate(zip(batch.scenario_ids, batch.completion_texts, strict=True)):
        row = rows[scenario_id]
        candidate = candidate_text(text, judge_cfg.max_candidate_words)
        messages = pointwise_messages(row, candidate, use_annotations=judge_cfg.enable_annotations)
        requests.append(
            JudgeRequest(
                f"dev-{i}", "pointwise", messages, row, (candidate,), judge_cfg.enable_annotations, judge_cfg.seed
            )
        )
        usable.append(parse_answer(text, row.expected_final_action).ok)
    verdicts = serve.get_app_handle(app_name).judge_many.remote(requests).result()
    effective = []
    for result, ok in zip(verdicts, usable, strict=True):
        verdict = failed_verdict("pointwise", result.error) if result.error else parse_pointwise(result.text)
        effective.append(effective_verdict(verdict.leaks, verdict.omits, status=verdict.status, usable=ok))
    rates = leak_omit_rates(effective)
    return {
        "eval/leak_rate": float(rates["leak_rate"] or 0.0),
        "eval/omit_rate": float(rates["omit_rate"] or 0.0),
        "eval/clean_rate": float(rates["clean_rate"] or 0.0),
        "eval/valid_answer_rate": sum(usable) / len(usable) if usable else 0.0,
        "eval/samples": float(len(effective)),
    }
