"""Start a `vllm.LLM` from a :class:`VllmEngineConfig`: the one place that knows how an engine must be
started on these machines, for the rollout engines and the vllm judge alike.

On CPU the engine core runs in the caller's process. vLLM's default separate engine-core process
busy-polls its worker's replies while the worker computes (40 % of a core measured during generation),
and on a small CPU box that time is taken from the learner. In-process, the engine also uses just the
threads Ray gave the actor (OMP_NUM_THREADS) and dies with it instead of outliving a SIGKILL; and judge
replicas no longer all compute on core 0 (a separate engine core binds its threads by local rank, which
is 0 in every Serve replica). VLLM_ENABLE_V1_MULTIPROCESSING=1 in the job's environment restores
vLLM's default.

No chunked prefill on CPU either: a partially prefilled request with a per-request seed makes vLLM
0.32 rewind its generator's offset, which CPU generators reject ("CPU Generator does not use offset")
and the engine dies. Rollout samples and judge requests both carry their own seeds; a token budget
covering a full batch avoids it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from rollout.config import VllmEngineConfig

if TYPE_CHECKING:
    from vllm import LLM


def start_vllm(cfg: VllmEngineConfig, *, on_gpu: bool, **engine_kwargs: Any) -> LLM:
    """A `vllm.LLM` for `cfg`; `engine_kwargs` adds what only one caller needs (tensor parallelism,
    logprobs mode, a worker extension)."""
    kwargs: dict[str, Any] = {}
    if on_gpu:
        kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
    else:
        # Read by the CPU backend when the engine core starts.
        os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(cfg.kv_cache_gib)
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        kwargs["max_num_batched_tokens"] = cfg.max_num_seqs * cfg.max_model_len
    from vllm import LLM  # heavy import: only processes that run an engine pay for it

    return LLM(
        model=cfg.model,
        dtype=cfg.dtype,
        max_model_len=cfg.max_model_len,
        seed=cfg.seed,
        enable_prefix_caching=cfg.enable_prefix_caching,
        enforce_eager=not cfg.enable_compile,
        max_num_seqs=cfg.max_num_seqs,
        **kwargs,
        **engine_kwargs,
    )
