"""Named benchmark workloads (issue 8): the model shape, batch and stage settings every section reads.

A workload is data, not a code path: sections read its fields and never branch on its name. `W1` is
the CPU standard (the `w1` tiny model: Qwen2, hidden 256, 4 layers, vocab 4k, random init; 8 prompts ×
4 samples, 64 new tokens ignoring EOS), whose judge section also measures the trained tiny judge the
CPU default run serves; `GPU-Q3-0.6B` has Qwen3-0.6B's shape, random init, for when a GPU is present.
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
    # Context window (prompt + new tokens) of a random-init shape.
    max_position_embeddings: int = 1024
    # Let the model emit special tokens (stop, pad, reserved). False unties the LM head and zeroes their rows
    # (logit 0, far below the largest of a thousand random logits), so greedy decoding runs to max_tokens and
    # every new token is visible text: fixed-length output where the caller cannot set ignore_eos (vllm judge).
    enable_special_tokens: bool = True

    def __post_init__(self) -> None:
        if self.arch not in ("qwen2", "qwen3"):
            raise ValueError(f"ModelShape.arch must be qwen2 or qwen3, got {self.arch!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})")
        if self.tiny_size and (self.max_position_embeddings != 1024 or not self.enable_special_tokens):
            raise ValueError(f"{self.name}: a tiny_size shape is built by learner/tiny_model.py (1,024 positions, "
                             "special tokens kept); leave tiny_size empty for a random-init shape")  # fmt: skip

    @property
    def num_parameters(self) -> int:
        """Parameter count (Qwen2 has q/k/v biases, Qwen3 has q/k norms instead; the LM head is tied unless
        `enable_special_tokens` is off)."""
        q, kv = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        attn = self.hidden_size * (q + 2 * kv) + q * self.hidden_size
        attn += q + 2 * kv if self.arch == "qwen2" else 2 * self.head_dim
        mlp = 3 * self.hidden_size * self.intermediate_size
        per_layer = attn + mlp + 2 * self.hidden_size
        embeddings = self.vocab_size * self.hidden_size * (1 if self.enable_special_tokens else 2)
        return embeddings + self.num_layers * per_layer + self.hidden_size


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
    # Judge model of the judge section's `vllm` rows: random init, context long enough for judge prompts.
    judge_model: ModelShape
    # New tokens per `vllm` verdict (judge_model never stops early, so every verdict costs exactly this many).
    judge_max_tokens: int
    # Step batches scored per `vllm` measurement (real prefill of ~1.5k-token prompts: fewer than judge_batches).
    judge_vllm_batches: int
    # Learner data-parallel ranks measured.
    learner_ranks: tuple[int, ...]
    # ZeRO stages measured.
    zero_stages: tuple[int, ...]
    # Shapes of the weight-sync sweep, smallest first.
    sync_shapes: tuple[ModelShape, ...]
    # learner/tiny_model.py size of a trained judge the judge section also measures (`vllm tiny-judge` rows,
    # served as the CPU default run serves it); "" = none.
    judge_tiny_size: str = ""
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
        if self.judge_max_tokens < 1 or self.judge_vllm_batches < 1:
            raise ValueError("judge_max_tokens and judge_vllm_batches must be >= 1")

    @property
    def samples_per_step(self) -> int:
        return self.prompts_per_step * self.samples_per_prompt


W1_MODEL = ModelShape("w1-4M", "qwen2", 256, 4, 4, 4, 64, 1024, 4096, tiny_size="w1")
# Weight-sync sweep shapes (Qwen2, head_dim 64, vocab 4096): about 25M and 100M parameters.
SYNC_25M = ModelShape("qwen2-25M", "qwen2", 512, 6, 8, 8, 64, 2048, 4096)
SYNC_100M = ModelShape("qwen2-100M", "qwen2", 1024, 6, 16, 16, 64, 4096, 4096)
# Qwen3-0.6B's published shape (hidden 1024, 28 layers, 16 q / 8 kv heads of 128, MLP 3072, vocab 151,936).
QWEN3_06B = ModelShape("qwen3-0.6B", "qwen3", 1024, 28, 16, 8, 128, 3072, 151936)
# Judge shapes for the `vllm` judge rows: the policy's shape with 4,096 positions (judge prompts run ~1.5k
# tokens, past the tiny model's 1,024) and no special tokens, so every verdict is the same length of text.
W1_JUDGE = ModelShape("w1-judge-4k", "qwen2", 256, 4, 4, 4, 64, 1024, 4096, max_position_embeddings=4096,
                      enable_special_tokens=False)  # fmt: skip
QWEN3_06B_JUDGE = ModelShape("qwen3-0.6B-judge-4k", "qwen3", 1024, 28, 16, 8, 128, 3072, 151936,
                             max_position_embeddings=4096, enable_special_tokens=False)  # fmt: skip

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
        judge_model=W1_JUDGE,
        judge_max_tokens=64,
        judge_vllm_batches=1,
        learner_ranks=(1, 2),
        zero_stages=(2, 3),
        sync_shapes=(W1_MODEL, SYNC_25M, SYNC_100M),
        judge_tiny_size="judge",
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
        judge_model=QWEN3_06B_JUDGE,
        judge_max_tokens=64,
        judge_vllm_batches=8,
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
