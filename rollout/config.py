"""Rollout configuration: the vLLM engines, sampling, their placement, and weight sync.

`VllmEngineConfig` is one vLLM engine's model and sizing. The rollout engines extend it here, and the
vllm judge extends it as `judge_pool.vllm` (judge/serve_config.py). Both are started by
rollout/vllm_start.py, so a fix to how an engine starts on CPU reaches both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cluster.config_checks import FieldChecks
from cluster.resources import check_custom_resources
from rollout.prompts import SYSTEM_PROMPTS

# Prompt renderers in rollout/prompts.py (docs/architecture.md §1.5: naive vs privacy-enhanced agent prompt,
# and compact, the tiny CPU agent's).
PROMPT_STYLES = tuple(SYSTEM_PROMPTS)
# Receiving side of weight sync (rollout/weight_sync.py).
WEIGHT_SYNC_TRANSPORTS = ("object_store", "collective")
# vLLM `logprobs_mode`: processed = after temperature/top-p, i.e. the distribution actually sampled from.
LOGPROBS_MODES = ("raw_logprobs", "processed_logprobs")
# What to do with a prompt longer than the model window allows.
PROMPT_OVERFLOW = ("skip", "truncate_left")
# Weight dtypes vLLM accepts here.
DTYPES = ("float32", "bfloat16", "float16", "auto")


@dataclass
class VllmEngineConfig:
    """One vLLM engine's model and sizing, shared by the rollout engines and the vllm judge."""

    # HF-format model directory or hub id the engine loads.
    model: str = ""
    # Weights/activations dtype; float32 on CPU (bfloat16 crashes the CPU backend with SIGILL).
    dtype: str = "float32"
    # Longest prompt + completion, in tokens.
    max_model_len: int = 1024
    # KV cache size per engine on CPU, whole GiB (exported as VLLM_CPU_KVCACHE_SPACE, which takes integers).
    kv_cache_gib: int = 1
    # Fraction of GPU memory an engine may use (GPUs only).
    gpu_memory_utilization: float = 0.5
    # Reuse KV blocks of shared prompt prefixes (a prompt's G samples, a scenario's judge requests); the
    # rollout engines reset them on each weight sync.
    enable_prefix_caching: bool = True
    # Compile the model (torch.compile / CUDA graphs); off = eager, faster engine start for tiny CPU runs.
    enable_compile: bool = False
    # Most sequences an engine schedules at once.
    max_num_seqs: int = 64
    # Engine seed: same weights, prompts and schedule give the same samples.
    seed: int = 0

    def check_engine_fields(self, checks: FieldChecks) -> None:
        """Record the problems of the engine fields into the subclass's `checks` (it names the section)."""
        checks.one_of("dtype", DTYPES)
        checks.bounds("max_model_len", "max_num_seqs", ge=1)
        if not isinstance(self.kv_cache_gib, int) or self.kv_cache_gib < 1:
            checks.fail(f"{checks.section}.kv_cache_gib must be a whole number of GiB >= 1, got {self.kv_cache_gib}")
        checks.bounds("gpu_memory_utilization", gt=0, le=1)


@dataclass
class RolloutConfig(VllmEngineConfig):
    """Everything the rollout engines need; the lead composes it into jobs/config.py as `rollout`.

    `model` (from VllmEngineConfig) is also the learner's initial weights.
    """

    # Number of engines (RolloutActors); each holds one vLLM engine.
    num_engines: int = 1
    # Tensor-parallel degree of each engine (GPUs only; must be 1 on CPU).
    tensor_parallel_size: int = 1
    # CPUs reserved per engine actor.
    num_cpus_per_engine: float = 1.0
    # GPUs reserved per engine actor (0 on CPU; tensor_parallel_size on GPUs).
    num_gpus_per_engine: float = 0.0
    # Samples per prompt, G (the paper uses 4).
    samples_per_prompt: int = 4
    # Sampling temperature.
    temperature: float = 1.0
    # Nucleus sampling mass.
    top_p: float = 1.0
    # Most completion tokens per sample.
    max_tokens: int = 256
    # Stop strings (the stop string itself is not part of the completion).
    stop: list[str] = field(default_factory=list)
    # Keep generating past EOS up to max_tokens (benchmarks use fixed lengths).
    enable_ignore_eos: bool = False
    # Which logprob vLLM reports for each sampled token (see LOGPROBS_MODES).
    logprobs_mode: str = "processed_logprobs"
    # Prompts with no room left for max_tokens are skipped (and counted) or cut from the left.
    prompt_overflow: str = "skip"
    # Agent prompt renderer: naive or privacy_enhanced.
    prompt_style: str = "privacy_enhanced"
    # Placement of the engine actors: PACK, SPREAD, STRICT_PACK or STRICT_SPREAD.
    placement_strategy: str = "PACK"
    # Restarts of a dead engine actor (-1 = forever); a restarted actor reloads the latest weights.
    max_restarts: int = 1
    # Seconds an engine call (a wave's generation, a weight update) may take from its launch, queueing
    # behind earlier calls included; past it the run fails naming the engine (a hung engine, not a dead one).
    call_timeout_s: float = 900.0
    # Custom Ray resources per engine, e.g. {"rollout_node": 0.001}, to pin engines to tagged nodes.
    resources_per_engine: dict[str, float] = field(default_factory=dict)
    # Prompts (whole groups of G) per work item the pool hands to a free engine.
    dispatch_chunk_prompts: int = 4
    # Weight sync transport: object_store (CPU, any topology) or collective (NCCL broadcast, GPUs).
    weight_sync: str = "object_store"

    def __post_init__(self) -> None:
        checks = FieldChecks(self, "rollout")
        self.check_engine_fields(checks)
        checks.bounds("num_engines", "tensor_parallel_size", ge=1)
        checks.bounds("samples_per_prompt", "max_tokens", "dispatch_chunk_prompts", ge=1)
        checks.bounds("num_cpus_per_engine", "num_gpus_per_engine", ge=0)
        checks.bounds("call_timeout_s", gt=0, hint=" seconds")
        checks.run(check_custom_resources, "rollout.resources_per_engine", self.resources_per_engine)
        checks.bounds("temperature", ge=0, hint=" (0 = greedy)")
        checks.bounds("top_p", gt=0, le=1)
        if self.max_tokens >= self.max_model_len:
            checks.fail(
                f"rollout.max_tokens ({self.max_tokens}) must be < max_model_len ({self.max_model_len}) "
                "to leave room for the prompt"
            )
        checks.one_of("prompt_style", PROMPT_STYLES)
        checks.one_of("weight_sync", WEIGHT_SYNC_TRANSPORTS)
        checks.one_of("logprobs_mode", LOGPROBS_MODES)
        checks.one_of("prompt_overflow", PROMPT_OVERFLOW)
        checks.done()

    @property
    def on_gpu(self) -> bool:
        """Engines run on GPUs exactly when they reserve GPUs."""
        return self.num_gpus_per_engine > 0
