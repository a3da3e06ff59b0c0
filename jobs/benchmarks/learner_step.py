"""Section `learner`: samples/s of LearnerActor groups (1 and 2 ranks, ZeRO-2 and ZeRO-3) vs plain PyTorch,
with one sample per row and with each group's prompt shared (learner.shared_prefix), and where a step's time goes.

Every configuration gets the same 2-core budget (1 rank × 2 CPUs or 2 ranks × 1 CPU) and the same
scored W1 batch; the baseline is one in-process optimizer step in plain PyTorch (AdamW, same loss,
same full-vocabulary KL to a frozen reference, same token-budget micro-batches and layout), without
DeepSpeed or Ray, timed phase by phase. Effective tokens = prompt + completion tokens of every sample,
whether or not the layout computes a shared prompt once.
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
from records.trajectory_batch import TrajectoryBatch

logger = logging.getLogger(__name__)

COLUMNS = ["config", "layout", "ranks", "zero", "step s", "samples/s", "effective tokens/s", "vs plain torch"]
# learner.shared_prefix setting of each layout measured (`on`: fail rather than silently measure the fallback).
LAYOUTS = {"per-sample": "off", "shared": "on"}
# Phases of the plain-PyTorch step (layout = micro-batch padding); backward runs through the loss and the KL.
PHASES = ("layout", "policy forward", "reference forward", "KL", "loss", "backward", "optimizer")
# The bench's batches stand for samples drawn at temperature 1, as the plain-PyTorch step assumes too.
SAMPLING_TEMPERATURE = 1.0


class _PhaseClock:
    """Adds the seconds since the previous lap to the named phase; the phases together are the whole step."""

    def __init__(self) -> None:
        self.spent = dict.fromkeys(PHASES, 0.0)
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.spent[phase] += now - self._last
        self._last = now


def _plain_torch_phases(cfg: LearnerConfig, batch: TrajectoryBatch, repeats: int) -> dict[str, float]:
    """Median seconds of each phase (and `total`) of one plain-PyTorch optimizer step on `batch`, after one
    warm-up step, laid out as `cfg.shared_prefix` says."""
    from transformers import AutoModelForCausalLM

    from learner.kl import full_reverse_kl
    from learner.losses import LossParams, policy_loss
    from learner.micro_batch import pad_micro_batch, split_by_token_budget, token_logprobs
    from learner.model_forward import completion_logits

    share = cfg.shared_prefix != "off"
    model = AutoModelForCausalLM.from_pretrained(cfg.model_path, dtype=torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(cfg.model_path, dtype=torch.float32).requires_grad_(False).eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    params = LossParams(cfg.clip_eps_low, cfg.clip_eps_high)
    tokens = batch.num_action_tokens
    samples: dict[str, list[float]] = {phase: [] for phase in (*PHASES, "total")}

    for _ in range(repeats + 1):
        clock = _PhaseClock()
        for part in split_by_token_budget(batch, cfg.micro_batch_tokens, share):
            mb = pad_micro_batch(part, share_prefix=share)
            clock.lap("layout")
            logits = completion_logits(model, mb)
            clock.lap("policy forward")
            with torch.no_grad():
                ref_logits = completion_logits(ref, mb)
            clock.lap("reference forward")
            kl = (full_reverse_kl(logits, ref_logits, cfg.kl_position_chunk, cfg.kl_vocab_chunk) * mb.mask).sum()
            clock.lap("KL")
            logprobs = token_logprobs(logits, mb.targets)
            loss = policy_loss(cfg.loss, logprobs, mb.old_logprobs, mb.advantages, mb.mask, params).loss_sum
            clock.lap("loss")
            ((loss + cfg.kl_coef * kl) / tokens).backward()
            clock.lap("backward")
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        clock.lap("optimizer")
        for phase, seconds in (*clock.spent.items(), ("total", sum(clock.spent.values()))):
            samples[phase].append(seconds)
    return {phase: median(values[1:]) for phase, values in samples.items()}


def _group_step_seconds(cfg: LearnerConfig, batch: TrajectoryBatch, repeats: int) -> float:
    """Median wall seconds of `train_step` on a LearnerActor group, driver-side (includes the Ray hop)."""
    from actors.group import ActorGroup
    from actors.learner_actor import LearnerActor, learner_group_config

    cpus = max(1.0, (os.cpu_count() or 2) / cfg.num_ranks)
    group_cfg = learner_group_config(cfg, num_cpus_per_rank=cpus)
    group = ActorGroup(LearnerActor, group_cfg, cfg, SAMPLING_TEMPERATURE, name="bench-learner")
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
    """Measure the learner configurations of `workload` in both layouts (needs a connected Ray cluster)."""
    title = f"Learner samples/s ({workload.name}, {workload.samples_per_step} samples/step, {{}} effective tokens)"
    result = SectionResult("learner", title)
    result.columns = COLUMNS
    model_dir = ensure_bench_model(workload.model)
    ids, prompts = step_prompts(workload, model_dir, step=0)
    from transformers import AutoConfig

    batch = synthetic_scored_batch(workload, ids, prompts, AutoConfig.from_pretrained(model_dir).vocab_size)
    tokens, n = batch_tokens(batch), len(batch)
    result.title = title.format(tokens)

    def row(config: str, layout: str, ranks: int, zero: int | str, seconds: float, plain_s: float) -> dict:
        return {"config": config, "layout": layout, "ranks": ranks, "zero": zero, "step s": seconds,
                "samples/s": n / seconds, "effective tokens/s": tokens / seconds, "vs plain torch": plain_s / seconds}  # fmt: skip

    phases = {}
    for layout, setting in LAYOUTS.items():
        cfg = LearnerConfig(model_path=str(model_dir), lr=1e-6, kl_coef=0.002, shared_prefix=setting)
        phases[layout] = _plain_torch_phases(cfg, batch, workload.repeats)
    plain_s = phases["per-sample"]["total"]
    suffix = {"per-sample": "", "shared": "_shared"}
    for layout in LAYOUTS:
        result.rows.append(row("plain torch (in-process)", layout, 1, "-", phases[layout]["total"], plain_s))
        result.metrics[f"plain_tokens_per_s{suffix[layout]}"] = tokens / phases[layout]["total"]
    for ranks in workload.learner_ranks:
        for zero in workload.zero_stages:
            for layout, setting in LAYOUTS.items():
                cfg = LearnerConfig(model_path=str(model_dir), num_ranks=ranks, zero_stage=zero, lr=1e-6,
                                    kl_coef=0.002, shared_prefix=setting)  # fmt: skip
                seconds = _group_step_seconds(cfg, batch, workload.repeats)
                name = f"LearnerActor x{ranks} ZeRO-{zero}"
                result.rows.append(row(name, layout, ranks, zero, seconds, plain_s))
                result.metrics[f"tokens_per_s_r{ranks}_z{zero}{suffix[layout]}"] = tokens / seconds
                if ranks == 1:
                    phases[layout].setdefault(f"DeepSpeed + Ray (x1 ZeRO-{zero})", seconds - phases[layout]["total"])
                logger.info("%s %s: %.2f s/step", name, layout, seconds)
    for layout, spent in phases.items():
        result.notes.append(f"{layout} step phases, s: " + ", ".join(f"{k} {v:.2f}" for k, v in spent.items()))
        for phase, seconds in spent.items():
            result.metrics[f"phase_s_{layout}_{phase}".replace(" ", "_")] = seconds
    result.notes.append(
        f"median of {workload.repeats} steps after 1 warm-up; 2 CPU cores per configuration (plain torch ran "
        f"with {torch.get_num_threads()} threads); "
        "DeepSpeed rows include the driver→actor Ray hop and (2 ranks) gloo all-reduces; phases are of the plain "
        "torch step, and DeepSpeed + Ray is a 1-rank group's step minus it; vs plain torch is against per-sample"
    )
    return result
