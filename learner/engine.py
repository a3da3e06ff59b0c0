"""One data-parallel learner rank: a DeepSpeed engine around an HF causal LM, plus the frozen reference.

`LearnerEngine.train_step` turns this rank's shard of a scored TrajectoryBatch into one optimizer
step (docs/architecture.md §1.4). Every rank calls it once per step, even with an empty shard, because ZeRO's
gradient reductions and the token-count all-reduce are collectives: ranks agree on the number of
micro-batches first and pad with zero-weight dummies.
"""

from __future__ import annotations

import logging
import os
import random
import resource
import time
from typing import Any

import deepspeed
import numpy as np
import torch
import torch.distributed as dist
from transformers import AutoModelForCausalLM

from learner.config import LearnerConfig
from learner.extension_lock import wait_for_extension_lock
from learner.kl import full_reverse_kl, k3_kl
from learner.losses import LossParams, policy_loss
from learner.micro_batch import MicroBatch, dummy_sample, pad_micro_batch, split_by_token_budget, token_logprobs
from learner.model_forward import completion_logits, resolve_shared_prefix
from learner.weight_export import iter_full_parameters
from records.trajectory_batch import TrajectoryBatch

logger = logging.getLogger(__name__)

# Per-step sums all-reduced across ranks, in this order; metrics are ratios of them. Each micro-batch
# returns the _MICRO_SUMS; the step adds its number of samples.
_MICRO_SUMS = ("policy_loss", "kl", "ratio", "clipped", "tokens")
_SUMS = (*_MICRO_SUMS, "samples")


def peak_resident_gib() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def deepspeed_config(cfg: LearnerConfig, *, with_optimizer: bool) -> dict[str, Any]:
    """The DeepSpeed config dict for the policy (`with_optimizer`) or the frozen reference model.

    Gradient accumulation is unmanaged: a step has as many micro-batches as its token budget
    needs, `backward` accumulates and `step` is the boundary, so the micro-batch count may change
    from step to step without rebuilding the engine.
    """
    zero: dict[str, Any] = {"stage": cfg.zero_stage}
    if cfg.zero_stage == 3:
        # Keep gathered parameters only for the module being run: bounded memory at any model size.
        zero.update({"stage3_param_persistence_threshold": 0, "stage3_max_live_parameters": 10**8})
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "zero_optimization": zero,
        "bf16": {"enabled": cfg.precision == "bf16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if not with_optimizer:
        return config
    config["managed_gradient_accumulation"] = False
    if cfg.enable_cpu_offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    config["optimizer"] = {
        "type": "AdamW",
        "params": {"lr": cfg.lr, "betas": list(cfg.betas), "eps": cfg.eps, "weight_decay": cfg.weight_decay},
    }
    if cfg.grad_clip > 0:
        config["gradient_clipping"] = cfg.grad_clip
    return config


class LearnerEngine:
    """The policy's DeepSpeed engine and the frozen reference model on one rank.

    The caller has set up nothing: the constructor joins the torch.distributed group through
    `deepspeed.init_distributed` (rank 0's address as the TCP rendezvous), loads the HF checkpoint
    in float32 on every rank, and lets DeepSpeed partition it.

    `sampling_temperature` is the rollout engines' (`rollout.temperature`, passed by the job rather than
    set twice): logits are divided by it so logπ matches vLLM's processed logprobs, the importance
    ratio's logπ_old.
    """

    def __init__(
        self,
        cfg: LearnerConfig,
        rank: int,
        world_size: int,
        master_addr: str,
        master_port: int,
        *,
        sampling_temperature: float,
    ):
        if world_size != cfg.num_ranks:
            raise ValueError(f"world_size={world_size} but learner.num_ranks={cfg.num_ranks}; they must match")
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        self.sampling_temperature = sampling_temperature
        backend = cfg.resolved_backend(torch.cuda.is_available())
        # DeepSpeed reads these for its own bookkeeping; each actor sees exactly its own device(s).
        os.environ.update(
            RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK="0", LOCAL_SIZE="1",
            MASTER_ADDR=master_addr, MASTER_PORT=str(master_port),
        )  # fmt: skip
        deepspeed.init_distributed(
            dist_backend=backend, init_method=f"tcp://{master_addr}:{master_port}", rank=rank, world_size=world_size
        )
        self._seed(cfg.seed)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.device = torch.device(deepspeed.get_accelerator().current_device_name())
        ds_config = deepspeed_config(cfg, with_optimizer=True)
        # Each rank loads the whole float32 model on the CPU and deepspeed.initialize partitions it. Loading
        # partitioned (transformers' zero.Init path, or zero.Init with rank 0 reading a tensor at a time) was
        # measured on 2 ranks with a ~100M model and did not lower the peak, which DeepSpeed's start-up sets
        # (0.54 GiB after a whole load, 1.8-1.9 GiB when ready); see the commit that added this comment.
        model = AutoModelForCausalLM.from_pretrained(cfg.model_path, dtype=torch.float32)
        wait_for_extension_lock("fused_adam")
        self.engine, *_ = deepspeed.initialize(
            model=model, config=ds_config, model_parameters=model.parameters(), lr_scheduler=self._warmup_schedule
        )
        self.ref = self._load_reference() if cfg.kl_coef > 0 else None
        # The policy and the reference share the architecture, so one decision covers both forwards.
        self.share_prefix = resolve_shared_prefix(cfg.shared_prefix, self.engine.module.config)
        self.loss_params = LossParams(cfg.clip_eps_low, cfg.clip_eps_high)
        self.step = 0
        logger.info(
            "learner rank %d/%d ready (ZeRO-%d, %s, %s; peak resident memory %.2f GiB)",
            rank, world_size, cfg.zero_stage, backend, self.device, peak_resident_gib(),
        )  # fmt: skip

    def _warmup_schedule(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """Linear warm-up over `warmup_steps` optimizer steps, then constant (the paper's schedule).

        Step k (from 1) uses lr·min(1, k / warmup_steps). DeepSpeed's WarmupLR would spend its first
        two steps at lr 0, and divides by log(warmup_steps), which fails for one warm-up step.
        """
        warmup = self.cfg.warmup_steps
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: min(1.0, (k + 1) / warmup) if warmup else 1.0)

    @staticmethod
    def _seed(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def _load_reference(self) -> torch.nn.Module:
        """The frozen reference policy for the KL term, loaded once.

        ZeRO-3 partitions it like the policy (an optimizer-less DeepSpeed engine) so it never exists
        whole on one rank. Under ZeRO-2 the policy's parameters are replicated on every rank anyway
        and ZeRO-2 only shards optimizer state and gradients, which a frozen model has none of: a
        plain eval-mode module in the compute dtype is exactly what ZeRO-2 would hold.
        """
        model = AutoModelForCausalLM.from_pretrained(self.cfg.model_path, dtype=torch.float32)
        model.requires_grad_(False).eval()
        if self.cfg.zero_stage == 3:
            ref, *_ = deepspeed.initialize(model=model, config=deepspeed_config(self.cfg, with_optimizer=False))
            return ref
        dtype = torch.bfloat16 if self.cfg.precision == "bf16" else torch.float32
        return model.to(device=self.device, dtype=dtype)

    # ---- training ---------------------------------------------------------------------------------
    def _micro_step(self, mb: MicroBatch, scale: float) -> torch.Tensor:
        """Forward + backward of one micro-batch; returns this micro-batch's _MICRO_SUMS, in order."""
        logits = completion_logits(self.engine, mb, self.sampling_temperature)
        logprobs = token_logprobs(logits, mb.targets)
        out = policy_loss(self.cfg.loss, logprobs, mb.old_logprobs, mb.advantages, mb.mask, self.loss_params)
        kl_sum = torch.zeros((), device=logits.device)
        if self.ref is not None:
            with torch.no_grad():
                ref_logits = completion_logits(self.ref, mb, self.sampling_temperature)
            if self.cfg.kl_estimator == "full":
                kl = full_reverse_kl(logits, ref_logits, self.cfg.kl_position_chunk, self.cfg.kl_vocab_chunk)
            else:
                kl = k3_kl(logprobs, token_logprobs(ref_logits, mb.targets))
            kl_sum = (kl * mb.mask).sum()
        loss = out.loss_sum + self.cfg.kl_coef * kl_sum
        # DeepSpeed averages gradients over ranks; × world_size turns that into a sum over the global batch.
        self.engine.backward(loss * scale, scale_wrt_gas=False)
        return torch.stack(
            [out.loss_sum.detach(), kl_sum.detach(), out.ratio_sum, out.clipped_tokens, out.num_tokens]
        ).float()

    def train_step(self, shard: TrajectoryBatch) -> dict[str, float]:
        """One optimizer step on this rank's shard of a scored batch (collective over all ranks).

        Invalid samples are dropped; the summed loss of the rest is divided by the number of action
        tokens in the global batch, so the update does not depend on how samples are sharded.

        Returns:
            Global metrics (identical on every rank): loss terms per action token, mean ratio, clip
            fraction, gradient norm, learning rate, token counts and throughput.
        """
        if len(shard) and not shard.is_scored:
            raise ValueError("train_step needs a scored batch (TrajectoryBatch.with_scores)")
        start = time.perf_counter()
        valid = [i for i, ok in enumerate(shard.valid or []) if ok]
        budget, share = self.cfg.micro_batch_tokens, self.share_prefix
        micro_batches = split_by_token_budget(shard.select(valid), budget, share) if valid else []
        local_tokens = sum(len(shard.completion_ids[i]) for i in valid)
        # Collective tensors live on the compute device: NCCL only reduces GPU tensors.
        counts = torch.tensor([local_tokens, len(micro_batches)], dtype=torch.float64, device=self.device)
        dist.all_reduce(counts[:1])
        dist.all_reduce(counts[1:], op=dist.ReduceOp.MAX)
        global_tokens, num_micro = int(counts[0]), int(counts[1])
        if global_tokens == 0:
            # No valid action token on any rank: every rank skips together, nothing to learn from.
            logger.warning("learner step %d skipped: no valid action tokens in the global batch", self.step)
            return {"learner/skipped": 1.0, "learner/action_tokens": 0.0}
        self.engine.train()
        sums = torch.zeros(len(_SUMS), dtype=torch.float64, device=self.device)
        sample_tokens = computed_tokens = 0
        scale = self.world_size / global_tokens
        for i in range(num_micro):
            part = micro_batches[i] if i < len(micro_batches) else dummy_sample()
            mb = pad_micro_batch(part, self.device, share_prefix=share)
            if i < len(micro_batches):
                sample_tokens += sum(len(p) + len(c) for p, c in zip(part.prompt_ids, part.completion_ids, strict=True))
                computed_tokens += mb.num_tokens
            sums[: len(_MICRO_SUMS)] += self._micro_step(mb, scale).double()
        sums[_SUMS.index("samples")] = len(valid)
        lr = float(self.engine.get_lr()[0])  # the rate this step uses; the scheduler advances in step()
        self.engine.step()
        self.step += 1
        elapsed = time.perf_counter() - start
        throughput = torch.tensor([sample_tokens, computed_tokens, elapsed], dtype=torch.float64, device=self.device)
        dist.all_reduce(sums)
        dist.all_reduce(throughput[:2])
        dist.all_reduce(throughput[2:], op=dist.ReduceOp.MAX)
        total = dict(zip(_SUMS, sums.cpu().tolist(), strict=True))
        tokens_done, tokens_computed, seconds = throughput.cpu().tolist()
        grad_norm = self.engine.get_global_grad_norm()
        return {
            "learner/loss": (total["policy_loss"] + self.cfg.kl_coef * total["kl"]) / global_tokens,
            "learner/policy_loss": total["policy_loss"] / global_tokens,
            "learner/kl": total["kl"] / global_tokens,
            "learner/ratio_mean": total["ratio"] / global_tokens,
            "learner/clip_fraction": total["clipped"] / global_tokens,
            "learner/grad_norm": float(grad_norm) if grad_norm is not None else 0.0,
            "learner/lr": lr,
            "learner/action_tokens": float(global_tokens),
            "learner/samples": total["samples"],
            "learner/micro_batches": float(num_micro),
            # Every sample's prompt + completion, as if unshared; computed_tokens is what the model ran.
            "learner/tokens_per_s": tokens_done / max(seconds, 1e-9),
            "learner/computed_tokens": tokens_computed,
            "learner/step_seconds": seconds,
            "learner/skipped": 0.0,
        }

    def state_fingerprint(self) -> list[float]:
        """[Σ p, Σ p², Σ |p|] over all full parameters in float64 (collective under ZeRO-3): a cheap
        equality check across runs and rank counts."""
        acc = torch.zeros(3, dtype=torch.float64)
        for _, tensor in iter_full_parameters(self.engine.module, self.cfg.zero_stage, self.cfg.export_bucket_mb):
            t = tensor.double()
            acc += torch.stack([t.sum(), (t * t).sum(), t.abs().sum()]).cpu()
        return acc.tolist()
