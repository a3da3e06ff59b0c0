"""The learner's own settings (docs/architecture.md §1.4): DeepSpeed engine, optimiser, loss, KL, checkpoints."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cluster.config_checks import FieldChecks
from cluster.resources import check_custom_resources
from learner.kl import check_kl_estimator
from learner.losses import get_policy_loss
from learner.model_forward import check_shared_prefix_mode

BACKENDS = ("auto", "gloo", "nccl")
PRECISIONS = ("fp32", "bf16")


@dataclass
class LearnerConfig:
    """Everything one data-parallel group of LearnerActors needs; the trainer passes only this section."""

    # HF-format checkpoint directory the policy (and the frozen reference) start from.
    model_path: str = ""
    # Data-parallel learner ranks (one LearnerActor each, one torch.distributed process group).
    num_ranks: int = 1
    # Seconds a collective learner call (train step, weight export, checkpoint save/load) may take on every
    # rank; past it, or at the first rank that fails, the run fails naming the rank.
    call_timeout_s: float = 900.0
    # torch threads per rank; 0 = the rank's Ray CPU share (Ray sets OMP_NUM_THREADS from it). More than the
    # share suits the sync schedule on one node: the learner runs while the engines that hold the other cores idle.
    num_threads: int = 0
    # Custom Ray resources per rank, e.g. {"learner_node": 0.001}, to pin the ranks to tagged nodes.
    resources_per_rank: dict[str, float] = field(default_factory=dict)
    # DeepSpeed ZeRO stage: 2 shards optimizer state + gradients, 3 also shards parameters.
    zero_stage: int = 3
    # Keep optimizer state (and its step) on the CPU via DeepSpeed's offload; frees GPU memory on GPUs.
    enable_cpu_offload: bool = False
    # Compute precision: fp32 (CPU default; bf16 matmuls are slow or missing on CPUs) or bf16 (GPUs).
    precision: str = "fp32"
    # Peak AdamW learning rate (paper: 1e-6 – 2e-6 on 4B–8B models).
    lr: float = 1e-6
    # AdamW decoupled weight decay (paper: 0.01).
    weight_decay: float = 0.01
    # AdamW (beta1, beta2).
    betas: tuple[float, float] = (0.9, 0.999)
    # AdamW epsilon.
    eps: float = 1e-8
    # Global gradient-norm clip (paper: 1.0); 0 disables clipping.
    grad_clip: float = 1.0
    # Linear warm-up length in optimizer steps (step k uses lr·k/warmup_steps), then constant `lr`.
    warmup_steps: int = 0
    # Token budget of one micro-batch per rank (prompt + completion tokens, padded length × rows).
    micro_batch_tokens: int = 4096
    # Lay a prompt's G samples out as one row, the prompt computed once and each completion attending to it
    # and to itself (same logprobs and gradients, fewer tokens): `auto` where the model's attention supports
    # the mask (SDPA, eager), else one sample per row, logged once; `on` fails where unsupported; `off`.
    shared_prefix: str = "auto"
    # Policy loss by registered name: `sapo` (paper), `vanilla` (−r·A) or `clipped` (PPO/GRPO surrogate).
    loss: str = "sapo"
    # `clipped` only: the ratio is clipped below at 1 − clip_eps_low.
    clip_eps_low: float = 0.2
    # `clipped` only: the ratio is clipped above at 1 + clip_eps_high.
    clip_eps_high: float = 0.28
    # β of the β·KL(π‖π_ref) penalty (paper: 0.002); 0 skips the reference model entirely.
    kl_coef: float = 0.002
    # `full`: exact full-vocabulary KL from both models' logits (paper); `k3`: sampled-token estimator.
    kl_estimator: str = "full"
    # Full KL: token positions per tile (bounds the KL's extra memory together with kl_vocab_chunk).
    kl_position_chunk: int = 1024
    # Full KL: vocabulary entries per tile.
    kl_vocab_chunk: int = 16384
    # Where checkpoints go (step_000010/, …): an absolute path or an s3:// / gs:// URI; empty = the trainer decides.
    checkpoint_dir: str = ""
    # Checkpoints kept on disk; older ones are deleted after a newer one is complete (0 = keep all).
    checkpoint_keep_last: int = 2
    # Seed of torch RNGs on every rank (dropout, if any); all ranks share it so parameters start equal.
    seed: int = 0
    # torch.distributed backend: `auto` picks nccl when CUDA is available, gloo otherwise.
    backend: str = "auto"
    # Tensor bytes per weight-sync bucket (ZeRO-3 gathers one bucket of parameters at a time).
    export_bucket_mb: int = 256

    def __post_init__(self) -> None:
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        # YAML 1.1 reads a bare on/off (`learner.shared_prefix=off` on the command line) as a boolean, which
        # reaches this str field as "True"/"False".
        self.shared_prefix = {"True": "on", "False": "off"}.get(self.shared_prefix, self.shared_prefix)
        checks = FieldChecks(self, "learner")
        checks.bounds("num_ranks", ge=1)
        checks.bounds("num_threads", ge=0)
        checks.bounds("call_timeout_s", gt=0, hint=" seconds")
        checks.run(check_custom_resources, "learner.resources_per_rank", self.resources_per_rank)
        checks.one_of("zero_stage", (2, 3))
        checks.one_of("precision", PRECISIONS)
        checks.one_of("backend", BACKENDS)
        checks.run(get_policy_loss, self.loss)
        checks.run(check_kl_estimator, self.kl_estimator)
        checks.run(check_shared_prefix_mode, self.shared_prefix)
        if not all(0.0 <= b < 1.0 for b in self.betas if math.isfinite(b)):
            checks.fail(f"learner.betas must lie in [0, 1), got {self.betas}")
        positive = ("lr", "micro_batch_tokens", "kl_position_chunk", "kl_vocab_chunk", "eps")
        checks.bounds(*positive, "export_bucket_mb", gt=0)
        checks.bounds("weight_decay", "grad_clip", "warmup_steps", "kl_coef", "checkpoint_keep_last", ge=0)
        checks.bounds("clip_eps_low", "clip_eps_high", gt=0, lt=1)
        checks.done()

    def resolved_backend(self, cuda_available: bool) -> str:
        """The torch.distributed backend to use on this machine."""
        if self.backend == "auto":
            return "nccl" if cuda_available else "gloo"
        return self.backend
