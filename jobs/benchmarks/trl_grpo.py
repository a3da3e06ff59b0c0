"""TRL GRPOTrainer on the W1 workload: the e2e section's baseline, run *inside TRL's own venv*.

Run as a script by jobs/benchmarks/e2e.py with the TRL venv's python and PYTHONPATH=<repo root>, so
it imports only our pure modules (scenarios, prompts, the prompt schedule, the judge's reward stage
with the offline backend) and never vLLM, Ray or DeepSpeed. Same model directory, same scenario ids
per step (our PromptSchedule), same G, new-token count, sampling and reward computation as our train.

    python -m jobs.benchmarks.trl_grpo --model DIR --out result.json [--steps 4 ...]

Writes {"step_seconds": [...], "samples_per_step": n, "samples_per_s": x, ...} to --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("trl_grpo")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="HF model directory (the W1 checkpoint)")
    parser.add_argument("--out", required=True, help="JSON file the timings are written to")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps; the first is warm-up, not timed")
    parser.add_argument("--prompts-per-step", type=int, default=8, help="scenarios per step")
    parser.add_argument("--samples-per-prompt", type=int, default=4, help="G, samples per scenario")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="completion tokens per sample")
    parser.add_argument("--ignore-eos", action="store_true", help="force exactly max-new-tokens per sample")
    parser.add_argument("--prompt-style", default="privacy_enhanced", help="rollout.prompts style")
    parser.add_argument("--reward-mode", default="pointwise", help="judge.reward_mode used for the reward")
    parser.add_argument("--lr", type=float, default=1e-6, help="learning rate (ours: learner.lr)")
    parser.add_argument("--beta", type=float, default=0.002, help="KL coefficient (ours: learner.kl_coef)")
    parser.add_argument("--seed", type=int, default=0, help="data order and sampling seed (ours: trainer.seed)")
    parser.add_argument("--work-dir", default=".cache/bench/trl-out", help="TRL output_dir (nothing is saved)")
    return parser.parse_args(argv)


def make_reward_fn(rows: dict[str, Any], reward_mode: str):
    """A TRL reward function computing our judge's reward (offline backend) over TRL's completions.

    TRL hands the whole generation batch, G consecutive samples per prompt, with the dataset's extra
    columns as keyword lists; we rebuild our TrajectoryBatch (token fields are not read by the judge)
    and run the same reward stage the judge pool runs.
    """
    from judge.backends import make_backend
    from judge.config import JudgeConfig
    from judge.reward import score_batch
    from records.trajectory_batch import TrajectoryBatch

    judge_cfg = JudgeConfig(backend="offline", reward_mode=reward_mode)
    backend = make_backend("offline", judge_cfg)

    def reward_fn(prompts: list[str], completions: list[str], scenario_id: list[str], group_id: list[int], **_):
        n = len(completions)
        batch = TrajectoryBatch(
            scenario_ids=list(scenario_id),
            group_ids=[int(g) for g in group_id],
            prompt_ids=[[] for _ in range(n)],
            completion_ids=[[] for _ in range(n)],
            completion_logprobs=[[] for _ in range(n)],
            completion_texts=list(completions),
            finish_reasons=["length"] * n,
        )
        scored = score_batch(batch, rows, judge_cfg, backend)
        return [float(r) for r in scored.rewards]

    reward_fn.__name__ = f"privacyalign_{reward_mode}"
    return reward_fn


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from jobs.training.prompt_schedule import PromptSchedule
    from rollout.prompts import render_messages
    from scenarios.config import bundled_scenarios_path
    from scenarios.loading import load_rows

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    rows = {row.id: row for row in load_rows(bundled_scenarios_path(), split="train").rows}
    schedule = PromptSchedule(list(rows), args.prompts_per_step, args.seed)
    records = []
    for step in range(args.steps):
        for group, sid in enumerate(schedule.ids_for_step(step)):
            prompt = tokenizer.apply_chat_template(
                render_messages(rows[sid], args.prompt_style), tokenize=False, add_generation_prompt=True
            )
            records.append({"prompt": prompt, "scenario_id": sid, "group_id": step * args.prompts_per_step + group})
    samples_per_step = args.prompts_per_step * args.samples_per_prompt
    generation_kwargs = {"min_new_tokens": args.max_new_tokens} if args.ignore_eos else None
    config = GRPOConfig(
        output_dir=args.work_dir,
        max_steps=args.steps,
        per_device_train_batch_size=samples_per_step,
        gradient_accumulation_steps=1,
        num_generations=args.samples_per_prompt,
        generation_batch_size=samples_per_step,
        max_completion_length=args.max_new_tokens,
        generation_kwargs=generation_kwargs,
        shuffle_dataset=False,
        temperature=1.0,
        top_p=1.0,
        learning_rate=args.lr,
        weight_decay=0.01,
        max_grad_norm=1.0,
        beta=args.beta,
        loss_type="sapo",
        scale_rewards="none",
        use_cpu=True,
        bf16=False,
        # Our learner does not recompute activations either (TRL turns checkpointing on by default).
        gradient_checkpointing=False,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        dataloader_num_workers=0,
    )
    step_seconds: list[float] = []

    class StepTimer(TrainerCallback):
        # Generation, reward and the optimizer step all happen between these two hooks.
        def on_step_begin(self, *_, **__):
            self.t0 = time.perf_counter()

        def on_step_end(self, *_, **__):
            step_seconds.append(time.perf_counter() - self.t0)

    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype="float32")
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=make_reward_fn(rows, args.reward_mode),
        args=config,
        train_dataset=Dataset.from_list(records),
        processing_class=tokenizer,
        callbacks=[StepTimer()],
    )
    setup_s = time.perf_counter() - started
    trainer.train()
    timed = step_seconds[1:]
    result = {
        "step_seconds": step_seconds,
        "samples_per_step": samples_per_step,
        "timed_steps": len(timed),
        "samples_per_s": samples_per_step * len(timed) / sum(timed) if timed else float("nan"),
        "setup_s": setup_s,
        "rewards": [h.get("reward") for h in trainer.state.log_history if "reward" in h],
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    logger.info("TRL GRPO: %.2f samples/s over %d timed steps", result["samples_per_s"], len(timed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
