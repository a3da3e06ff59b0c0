"""Named benchmark workloads (issue 8): the model shape, batch and stage settings every section reads.

A workload is data, not a code path: sections read its fields and never branch on its name. `W1` is
the CPU standard (the `w1` tiny model: Qwen2, hidden 256, 4 layers, vocab 4k, random init; 8 prompts ×
4 samples, 64 new tokens ignoring EOS); `GPU-Q3-0.6B` has Qwen3-0.6B's shape, random init, for when a
GPU is present.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelShape:
    """A random-init causal LM shape; `tiny_size` names a learner/tiny_model.py size that builds it."""

    # Short name used in tables and cache directories.
    name: str
    # HF architecture family: `qwen2` or `qwen3`.
    arch: str
    # Residual width.
    hidden_size: int
    # Decoder layers.
    num_layers: int
    # Query heads.
    num_heads: int
    # Key/value heads (grouped-query attention when < num_heads).
    num_kv_heads: int
    # Per-head width (64 on the vLLM CPU backend).
    head_dim: int
    # SwiGLU MLP width.
    intermediate_size: int
    # Vocabulary size of the embedding (tied with the LM head).
    vocab_size: int
    # learner/tiny_model.py size that builds exactly this shape with a tokenizer; "" = random init with
    # the W1 tokenizer (any vocab >= the tokenizer's works for throughput).
    tiny_size: str = ""

    def __post_init__(self) -> None:
        if self.arch not in ("qwen2", "qwen3"):
            raise ValueError(f"ModelShape.arch must be qwen2 or qwen3, got {self.arch!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})")

    @property
    def num_parameters(self) -> int:
        """Parameter count with tied embeddings (Qwen2 has q/k/v biases, Qwen3 has q/k norms instead)."""
        q, kv = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        attn = self.hidden_size * (q + 2 * kv) + q * self.hidden_size
        attn += q + 2 * kv if self.arch == "qwen2" else 2 * self.head_dim
        mlp = 3 * self.hidden_size * self.intermediate_size
        per_layer = attn + mlp + 2 * self.hidden_size
        return self.vocab_size * self.hidden_size + self.num_layers * per_layer + self.hidden_size


@dataclass(frozen=True)
class Workload:
    """Everything a benchmark section needs to know about what it measures."""

    # Registry name (`--workload`).
    name: str
    # One line for the report header.
    description: str
    # The policy model every section runs (rollout, learner, train, TRL).
    model: ModelShape
    # Scenarios per RL step.
    prompts_per_step: int
    # Samples per scenario (G).
    samples_per_prompt: int
    # New tokens per sample; with enable_ignore_eos every sample has exactly this many.
    max_new_tokens: int
    # Generate past EOS so every sample costs the same (throughput, not quality, is measured).
    enable_ignore_eos: bool
    # Agent prompt style (rollout.prompts.SYSTEM_PROMPTS key).
    prompt_style: str
    # Steps per `privacyalign train` run in the driver/schedule/e2e sections (the first is warm-up).
    train_steps: int
    # Fixed per-request latency of the offline judge in the schedule section (a hosted judge's stand-in).
    judge_latency_s: float
    # Prompts per step of the two driver-bytes runs (the second must be larger).
    driver_prompts_per_step: tuple[int, int]
    # Judge replicas measured in the judge section.
    judge_replicas: tuple[int, ...]
    # Step batches scored concurrently per replica count in the judge section.
    judge_batches: int
    # Offline judge latency per request in the judge section (short, so the in-process baseline stays quick).
    judge_bench_latency_s: float
    # Learner data-parallel ranks measured.
    learner_ranks: tuple[int, ...]
    # ZeRO stages measured.
    zero_stages: tuple[int, ...]
    # Shapes of the weight-sync sweep, smallest first.
    sync_shapes: tuple[ModelShape, ...]
    # `cpu` or `gpu`: what the workload is sized for.
    device: str = "cpu"
    # Timed repetitions per measurement (after one warm-up).
    repeats: int = 3
    # Extra notes printed under the summary.
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "gpu"):
            raise ValueError(f"Workload.device must be cpu or gpu, got {self.device!r}")
        small, large = self.driver_prompts_per_step
        if not 0 < small < large:
            raise ValueError(f"driver_prompts_per_step must be two growing sizes, got {self.driver_prompts_per_step}")
        if self.train_steps < 2:
            raise ValueError("train_steps must be >= 2: the first step is warm-up and is not counted")

    @property
    def samples_per_step(self) -> int:
        return self.prompts_per_step * self.samples_per_prompt


W1_MODEL = ModelShape("w1-4M", "qwen2", 256, 4, 4, 4, 64, 1024, 4096, tiny_size="w1")
# Weight-sync sweep shapes (Qwen2, head_dim 64, vocab 4096): about 25M and 100M parameters.
SYNC_25M = ModelShape("qwen2-25M", "qwen2", 512, 6, 8, 8, 64, 2048, 4096)
SYNC_100M = ModelShape("qwen2-100M", "qwen2", 1024, 6, 16, 16, 64, 4096, 4096)
# Qwen3-0.6B's published shape (hidden 1024, 28 layers, 16 q / 8 kv heads of 128, MLP 3072, vocab 151,936).
QWEN3_06B = ModelShape("qwen3-0.6B", "qwen3", 1024, 28, 16, 8, 128, 3072, 151936)

WORKLOADS: dict[str, Workload] = {
    "W1": Workload(
        name="W1",
        description="CPU standard: Qwen2 4M random init, 8 prompts x 4 samples, 64 new tokens (EOS ignored)",
        model=W1_MODEL,
        prompts_per_step=8,
        samples_per_prompt=4,
        max_new_tokens=64,
        enable_ignore_eos=True,
        prompt_style="privacy_enhanced",
        train_steps=4,
        judge_latency_s=0.5,
        driver_prompts_per_step=(8, 16),
        judge_replicas=(1, 2),
        judge_batches=4,
        judge_bench_latency_s=0.02,
        learner_ranks=(1, 2),
        zero_stages=(2, 3),
        sync_shapes=(W1_MODEL, SYNC_25M, SYNC_100M),
    ),
    "GPU-Q3-0.6B": Workload(
        name="GPU-Q3-0.6B",
        description="GPU: Qwen3-0.6B shape, random init, 64 prompts x 4 samples, 256 new tokens (EOS ignored)",
        model=QWEN3_06B,
        prompts_per_step=64,
        samples_per_prompt=4,
        max_new_tokens=256,
        enable_ignore_eos=True,
        prompt_style="privacy_enhanced",
        train_steps=6,
        judge_latency_s=0.5,
        driver_prompts_per_step=(32, 64),
        judge_replicas=(1, 2, 4),
        judge_batches=8,
        judge_bench_latency_s=0.02,
        learner_ranks=(1, 2),
        zero_stages=(2, 3),
        sync_shapes=(SYNC_100M, QWEN3_06B),
        device="gpu",
    ),
}


def get_workload(name: str) -> Workload:
    """The registered workload `name` (exact match); unknown → ValueError listing valid names."""
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; valid: {sorted(WORKLOADS)}")
    return WORKLOADS[name]
