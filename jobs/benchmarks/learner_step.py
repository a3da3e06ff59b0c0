"""Section `learner`: tokens/s of LearnerActor groups (1 and 2 ranks, ZeRO-2 and ZeRO-3) vs plain PyTorch.

Every configuration gets the same 2-core budget (1 rank × 2 CPUs or 2 ranks × 1 CPU) and the same
scored W1 batch; the baseline is one in-process optimizer step in plain PyTorch (AdamW, same loss,
same full-vocabulary KL to a frozen reference, same token-budget micro-batches), without DeepSpeed
or Ray. Tokens = prompt + completion tokens of every sample.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import ray
import torch

from jobs.benchmarks.data import batch_tokens, step_prompts, synthetic_scored_batch
from jobs.benchmarks.models import ensure_bench_model
from jobs.benchmarks.report import SectionResult, median
from jobs.benchmarks.workloads import Workload
from learner.config import LearnerConfig
from rollout.batch import TrajectoryBatch

logger = logging.getLogger(__name__)

COLUMNS = ["config", "ranks", "zero", "tokens/step", "step s", "tokens/s", "vs plain torch"]


def _plain_torch_step_seconds(cfg: LearnerConfig, batch: TrajectoryBatch, repeats: int) -> float:
    """Median seconds of one plain-PyTorch optimizer step on `batch` (after one warm-up step)."""
    from transformers import AutoModelForCausalLM

    from learner.kl import full_reverse_kl
    from learner.losses import LossParams, policy_loss
    from learner.micro_batch import pad_micro_batch, split_by_token_budget, token_logprobs
    from learner.model_forward import completion_logits

    model = AutoModelForCausalLM.from_pretrained(cfg.model_path, dtype=torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(cfg.model_path, dtype=torch.float32).requires_grad_(False).eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    params = LossParams(cfg.clip_eps_low, cfg.clip_eps_high)
    tokens = batch.num_action_tokens

    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        for part in split_by_token_budget(batch, cfg.micro_batch_tokens):
            mb = pad_micro_batch(part)
            out_logits = completion_logits(model, mb)
            loss = policy_loss(cfg.loss, token_logprobs(out_logits, mb.targets), mb.old_logprobs, mb.advantages,
                               mb.mask, params).loss_sum  # fmt: skip
            with torch.no_grad():
                ref_logits = completion_logits(ref, mb)
            kl = full_reverse_kl(out_logits, ref_logits, cfg.kl_position_chunk, cfg.kl_vocab_chunk)
            ((loss + cfg.kl_coef * (kl * mb.mask).sum()) / tokens).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return median(times[1:])


def _group_step_seconds(cfg: LearnerConfig, batch: TrajectoryBatch, repeats: int) -> float:
    """Median wall seconds of `train_step` on a LearnerActor group, driver-side (includes the Ray hop)."""
    from actors.group import ActorGroup
    from actors.learner_actor import LearnerActor, learner_group_config

    cpus = max(1.0, (os.cpu_count() or 2) / cfg.num_ranks)
    group = ActorGroup(LearnerActor, learner_group_config(cfg, num_cpus_per_rank=cpus), cfg, name="bench-learner")
    try:
        shards = [ray.put(s) for s in batch.shard_by_group(cfg.num_ranks)]
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            ray.get(group.scatter("train_step", shards))
            times.append(time.perf_counter() - start)
    finally:
        group.shutdown()
    return median(times[1:])


def run(workload: Workload, out_dir: Path) -> SectionResult:
    """Measure the learner configurations of `workload` (needs a connected Ray cluster)."""
    result = SectionResult("learner", f"Learner tokens/s ({workload.name}, {workload.samples_per_step} samples/step)")
    result.columns = COLUMNS
    model_dir = ensure_bench_model(workload.model)
    ids, prompts = step_prompts(workload, model_dir, step=0)
    from transformers import AutoConfig

    batch = synthetic_scored_batch(workload, ids, prompts, AutoConfig.from_pretrained(model_dir).vocab_size)
    tokens = batch_tokens(batch)
    base_cfg = LearnerConfig(model_path=str(model_dir), lr=1e-6, kl_coef=0.002)
    plain_s = _plain_torch_step_seconds(base_cfg, batch, workload.repeats)
    result.rows.append({"config": "plain torch (in-process)", "ranks": 1, "zero": "-", "tokens/step": tokens,
                        "step s": plain_s, "tokens/s": tokens / plain_s, "vs plain torch": 1.0})  # fmt: skip
    result.metrics["plain_tokens_per_s"] = tokens / plain_s
    for ranks in workload.learner_ranks:
        for zero in workload.zero_stages:
            cfg = LearnerConfig(model_path=str(model_dir), num_ranks=ranks, zero_stage=zero, lr=1e-6, kl_coef=0.002)
            seconds = _group_step_seconds(cfg, batch, workload.repeats)
            name = f"LearnerActor x{ranks} ZeRO-{zero}"
            result.rows.append({"config": name, "ranks": ranks, "zero": zero, "tokens/step": tokens,
                                "step s": seconds, "tokens/s": tokens / seconds, "vs plain torch": plain_s / seconds})  # fmt: skip
            result.metrics[f"tokens_per_s_r{ranks}_z{zero}"] = tokens / seconds
            logger.info("%s: %.2f s/step", name, seconds)
    result.notes.append(
        f"median of {workload.repeats} steps after 1 warm-up; 2 CPU cores per configuration (plain torch ran "
        f"with {torch.get_num_threads()} threads); "
        "DeepSpeed rows include the driver→actor Ray hop and (2 ranks) gloo all-reduces"
    )
    return result
