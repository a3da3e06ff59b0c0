"""The workload's inputs, built the way `train` builds them: same train-split scenarios, same schedule.

Step s uses `PromptSchedule(train ids, prompts_per_step, seed=0).ids_for_step(s)`, rendered in the
workload's prompt style with the model's chat template, exactly as the trainer and the TRL baseline do.
"""

from __future__ import annotations

import random
from pathlib import Path

from jobs.benchmarks.workloads import Workload
from jobs.training.prompt_schedule import PromptSchedule
from records.trajectory_batch import TrajectoryBatch
from rollout.prompts import render_messages
from scenarios.config import bundled_scenarios_path
from scenarios.loading import load_rows
from scenarios.schema import ScenarioRow


def train_rows() -> dict[str, ScenarioRow]:
    """Bundled train-split scenarios by id (what `privacyalign train` samples from by default)."""
    return {row.id: row for row in load_rows(bundled_scenarios_path(), split="train").rows}


def step_prompts(
    workload: Workload, model_dir: Path, step: int, prompts_per_step: int | None = None
) -> tuple[list[str], list[list[int]]]:
    """(scenario ids, chat-templated prompt token ids) of one training step."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = train_rows()
    ids = PromptSchedule(list(rows), prompts_per_step or workload.prompts_per_step, seed=0).ids_for_step(step)
    prompts = []
    for sid in ids:
        text = tokenizer.apply_chat_template(
            render_messages(rows[sid], workload.prompt_style), add_generation_prompt=True, tokenize=False
        )
        prompts.append(tokenizer.encode(text, add_special_tokens=False))
    return ids, prompts


def synthetic_scored_batch(
    workload: Workload, scenario_ids: list[str], prompts: list[list[int]], vocab: int
) -> TrajectoryBatch:
    """A scored batch of the workload's size: real prompts, G random completions of max_new_tokens each.

    The learner's cost depends on token counts only, so random tokens, behaviour logprobs near a
    uniform policy's and random advantages measure it as well as real rollouts would.
    """
    rng = random.Random(0)
    g, n_new = workload.samples_per_prompt, workload.max_new_tokens
    n = len(prompts) * g
    completions = [[rng.randrange(vocab) for _ in range(n_new)] for _ in range(n)]
    batch = TrajectoryBatch(
        scenario_ids=[sid for sid in scenario_ids for _ in range(g)],
        group_ids=[i for i in range(len(prompts)) for _ in range(g)],
        prompt_ids=[list(p) for p in prompts for _ in range(g)],
        completion_ids=completions,
        completion_logprobs=[[-7.0 + rng.uniform(-0.1, 0.1) for _ in c] for c in completions],
        completion_texts=[""] * n,
        finish_reasons=["length"] * n,
    )
    advantages = [rng.uniform(-1.0, 1.0) for _ in range(n)]
    return batch.with_scores([0.0] * n, advantages, [True] * n, ["ok"] * n)


def batch_tokens(batch: TrajectoryBatch) -> int:
    """Prompt + completion tokens of every sample: what one learner step processes."""
    return sum(len(p) + len(c) for p, c in zip(batch.prompt_ids, batch.completion_ids, strict=True))
