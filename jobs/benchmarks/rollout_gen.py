"""Section `rollout`: generated tokens/s of a RolloutPool (one RolloutActor) vs a bare `vllm.LLM`.

Same model, same step prompts (token ids), same engine arguments and sampling (G samples, the
workload's new tokens with EOS ignored, sampled-token logprobs, per-prompt seeds from the step's wave
seed). The bare engine runs in this process and is shut down before the actor's engine starts, so the
two never share the cores. A third row calls the actor's `generate` directly, without the pool's work
queue, to split actor cost from queue cost.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

import ray

from jobs.benchmarks.data import step_prompts
from jobs.benchmarks.models import checkpoint_parameters, ensure_bench_model
from jobs.benchmarks.report import SectionResult, median
from jobs.benchmarks.workloads import Workload
from rollout.config import RolloutConfig

logger = logging.getLogger(__name__)

COLUMNS = ["engine", "params", "samples/step", "tokens/step", "step s", "tokens/s", "vs bare vLLM"]


def _bare_step_seconds(cfg: RolloutConfig, steps: list[tuple[list[str], list[list[int]]]]) -> tuple[float, int]:
    """Median seconds of one `LLM.generate` per step after the first, and the tokens the last one generated."""
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(cfg.kv_cache_gib)
    # The engine arguments RolloutEngine passes on CPU (its token budget turns chunked prefill off).
    llm = LLM(model=cfg.model, dtype=cfg.dtype, max_model_len=cfg.max_model_len, seed=cfg.seed,
              enable_prefix_caching=cfg.enable_prefix_caching, enforce_eager=not cfg.enable_compile,
              max_num_seqs=cfg.max_num_seqs, logprobs_mode=cfg.logprobs_mode,
              max_num_batched_tokens=cfg.max_num_seqs * cfg.max_model_len)  # fmt: skip
    n = cfg.samples_per_prompt
    times, tokens = [], 0
    try:
        for step, (_, prompts) in enumerate(steps):
            # Per-prompt seeds as RolloutEngine.generate derives them from the wave seed (`step` on both paths).
            sampling = [SamplingParams(n=n, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens,
                                       ignore_eos=cfg.enable_ignore_eos, logprobs=0, seed=step + g * n)
                        for g in range(len(prompts))]  # fmt: skip
            start = time.perf_counter()
            outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], sampling, use_tqdm=False)
            times.append(time.perf_counter() - start)
            tokens = sum(len(s.token_ids) for out in outputs for s in out.outputs)
    finally:
        llm.llm_engine.engine_core.shutdown()
        del llm
    return median(times[1:]), tokens


def _actor_step_seconds(
    cfg: RolloutConfig, steps: list[tuple[list[str], list[list[int]]]]
) -> dict[str, tuple[float, int]]:
    """Median seconds and tokens per path: `RolloutPool.async_generate` (work queue) on the first half of
    `steps`, a direct `RolloutActor.generate` call (no queue) on the second half; first call of each is warm-up.
    """
    from actors.chunk_queue import PromptChunk
    from actors.rollout_pool import RolloutPool

    half = len(steps) // 2
    pool = RolloutPool(cfg)
    out = {}
    try:
        for path, part in (("pool", steps[:half]), ("direct", steps[half:])):
            times, tokens = [], 0
            for step, (ids, prompts) in enumerate(part):
                start = time.perf_counter()
                if path == "pool":
                    refs = pool.async_generate(ids, prompt_token_ids=prompts, seed=step)
                else:
                    chunk = PromptChunk(scenario_ids=ids, group_ids=list(range(len(ids))), prompt_token_ids=prompts)
                    refs = [pool.group.run_rank0("generate", chunk, seed=step)]
                ray.wait(refs, num_returns=len(refs), fetch_local=False)
                times.append(time.perf_counter() - start)
                # Counted after the clock stops: the driver never needs the payload in training either.
                tokens = sum(sum(len(c) for c in b.completion_ids) for b in ray.get(refs))
            out[path] = (median(times[1:]), tokens)
    finally:
        pool.shutdown()
    return out


def run(workload: Workload, out_dir: Path) -> SectionResult:
    """Bare vLLM first, then the RolloutPool, on the workload's step prompts (needs a connected Ray cluster)."""
    result = SectionResult("rollout", f"Rollout tokens/s, RolloutActor vs bare vLLM ({workload.name})")
    result.columns = COLUMNS
    model_dir = ensure_bench_model(workload.model)
    # A new step's prompts per call on both paths, as in training (no prefix-cache hits across calls).
    steps = [step_prompts(workload, model_dir, step) for step in range(workload.repeats + 1)]
    actor_steps = [step_prompts(workload, model_dir, step) for step in range(2 * (workload.repeats + 1))]
    cfg = RolloutConfig(
        model=str(model_dir),
        samples_per_prompt=workload.samples_per_prompt,
        max_tokens=workload.max_new_tokens,
        enable_ignore_eos=workload.enable_ignore_eos,
        max_restarts=0,
        # All prompts go to the engine in one take, as a bare generate call does.
        dispatch_chunk_prompts=workload.prompts_per_step,
    )
    cfg = dataclasses.replace(cfg, max_num_seqs=max(cfg.max_num_seqs, workload.samples_per_step))
    params = checkpoint_parameters(model_dir)
    bare_s, bare_tokens = _bare_step_seconds(cfg, steps)
    actor = _actor_step_seconds(cfg, actor_steps)
    for name, (seconds, tokens) in (("bare vllm.LLM (in-process)", (bare_s, bare_tokens)),
                                    ("RolloutPool.async_generate (queue)", actor["pool"]),
                                    ("RolloutActor.generate (direct call)", actor["direct"])):  # fmt: skip
        result.rows.append({"engine": name, "params": params, "samples/step": workload.samples_per_step,
                            "tokens/step": tokens, "step s": seconds, "tokens/s": tokens / seconds,
                            "vs bare vLLM": (tokens / seconds) / (bare_tokens / bare_s)})  # fmt: skip
    pool_s, pool_tokens = actor["pool"]
    result.metrics = {"bare_tokens_per_s": bare_tokens / bare_s, "actor_tokens_per_s": pool_tokens / pool_s}
    result.notes.append(
        f"median of {workload.repeats} generate calls (steps 1..{workload.repeats} prompts) after 1 warm-up; "
        "same engine arguments and sampling on every path; the target uses the pool path (what train calls)"
    )
    return result
