"""Section `judge`: judge-pool requests/s at 1, 2, … replicas vs the same backend called in-process.

Each measurement scores the workload's step batches (the reward mode's requests: peer-pairwise in dual
order is G(G−1) per prompt, pointwise one per sample) submitted at once through `JudgePool.async_score`,
with the verdict cache off, so every request is a fresh judge call. The baseline runs
`judge.reward.score_batch` with the same backend class called directly, one batch after another, one
backend call per batch, in a Ray task holding one replica's CPUs (and GPU share), so its engine gets
the threads a replica's engine gets. The pool gets the same room: `max_batch_size` is one batch's
requests, so at one replica the ingress sends each batch in one call and the replica judges it in one
backend call; at R replicas each gets 1/R of it. The per-replica column is the scaling: requests/s ÷
(replicas × requests/s at one replica). Measured:

- `offline`, sleeping a fixed latency (a remote judge's stand-in), on `judge_batches` batches;
- `vllm`, a real engine per replica generating over the real judge prompts, on `judge_vllm_batches`
  batches. The judge model is a random-init shape with a long enough context whose special tokens
  (stop tokens included) never win greedy decoding, so every verdict is `judge_max_tokens` tokens of
  text. Its verdicts are unparsable (masked), which does not change the cost; the notes count them.
- `vllm tiny-judge` (CPU workload, `Workload.judge_tiny_size`), the same engine rows on the trained
  tiny judge as the CPU default run serves it: its prompt style, pointwise, greedy, at most 32 tokens,
  its trained 1,024-token context. Verdicts stop at EOS, so their lengths vary: the notes give the
  verdict statuses (mostly `ok`) and the mean prompt length.

Each row is the median of `repeats` rounds, every round on step batches no other round uses. Every
measurement is preceded by a warm-up of one-group batches from a step that is not timed (one per
timed batch, at once, so every concurrent score task has a warm worker), so the engines' prefix caches
hold nothing the timed batches reuse.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import Counter
from pathlib import Path

import ray

from jobs.benchmarks.data import train_rows
from jobs.benchmarks.models import ensure_bench_model
from jobs.benchmarks.report import SectionResult, median
from jobs.benchmarks.workloads import Workload
from jobs.training.prompt_schedule import PromptSchedule
from judge.config import JudgeConfig
from judge.reward import REWARD_MODES, plan_requests
from judge.serve_config import JudgePoolConfig, VllmBackendConfig
from learner.tiny_model import ensure_tiny_model, tiny_model_config
from records.trajectory_batch import TrajectoryBatch
from rollout.prompts import reference_answer
from scenarios.schema import ScenarioRow

logger = logging.getLogger(__name__)

COLUMNS = ["judge", "replicas", "batches", "requests", "seconds", "requests/s", "vs in-process", "per replica"]
# The trained judge as the CPU default run serves it (jobs/presets/tiny-cpu.yaml; a test keeps them equal):
# one pointwise verdict per sample, a short JSON line.
TRAINED_JUDGE_REWARD_MODE = "pointwise"
TRAINED_JUDGE_MAX_TOKENS = 32


def _step_batch(workload: Workload, rows: dict[str, ScenarioRow], step: int) -> TrajectoryBatch:
    """One step's samples with the two reference answers as completions (alternating), unscored."""
    ids = PromptSchedule(list(rows), workload.prompts_per_step, seed=0).ids_for_step(step)
    g = workload.samples_per_prompt
    n = len(ids) * g
    return TrajectoryBatch(
        scenario_ids=[sid for sid in ids for _ in range(g)],
        group_ids=[i for i in range(len(ids)) for _ in range(g)],
        prompt_ids=[[0] for _ in range(n)],
        completion_ids=[[0] for _ in range(n)],
        completion_logprobs=[[0.0] for _ in range(n)],
        completion_texts=[reference_answer(rows[sid], k % 2) for sid in ids for k in range(g)],
        finish_reasons=["stop"] * n,
    )


@ray.remote
def _score_in_process(
    judge_cfg: JudgeConfig,
    backend_cfg: object,
    rows: dict[str, ScenarioRow],
    rounds: list[list[TrajectoryBatch]],
    warmup: TrajectoryBatch,
) -> tuple[list[float], list[TrajectoryBatch]]:
    """The baseline: `score_batch` with the backend in this process, batch after batch; (seconds per round, scored).

    Runs as a task with one replica's CPUs and GPU share, so its engine gets the threads a replica's gets.
    """
    from judge.backends import make_backend
    from judge.reward import score_batch

    backend = make_backend(judge_cfg.backend, backend_cfg)
    seconds, scored = [], []
    try:
        score_batch(warmup, rows, judge_cfg, backend)
        for batches in rounds:
            start = time.perf_counter()
            scored += [score_batch(b, rows, judge_cfg, backend) for b in batches]
            seconds.append(time.perf_counter() - start)
        return seconds, scored
    finally:
        backend.close()


def _measure(
    result: SectionResult,
    label: str,
    prefix: str,
    judge_cfg: JudgeConfig,
    pool_cfg: JudgePoolConfig,
    rows: dict[str, ScenarioRow],
    rounds: list[list[TrajectoryBatch]],
    warmup: TrajectoryBatch,
    replica_counts: tuple[int, ...],
) -> str:
    """In-process baseline, then the pool at each replica count: table rows and metrics appended to `result`.

    Each row times every round of batches (fresh steps each, so no engine reuses a cached prefix) and
    reports the median round. `label` names the rows, `prefix` their metrics. Returns the per-sample judge
    statuses of each measured row, for a note (`in-process {'ok': 30, ...}; x1 {...}`).
    """
    from judge.pool import JudgePool

    backend_cfg = pool_cfg.vllm if judge_cfg.backend == "vllm" else judge_cfg
    requests = sum(len(plan_requests(b, rows, judge_cfg)) for b in rounds[0])
    statuses: dict[str, Counter[str]] = {}

    def add_row(replicas: int | None, seconds: float, scored: list[TrajectoryBatch], base_s: float) -> None:
        judge = f"{label}, " + ("in-process" if replicas is None else "JudgePool (Ray Serve)")
        one_replica = result.metrics.get(f"{prefix}pool_requests_per_s_r1")
        per_replica = requests / seconds / (replicas * one_replica) if replicas and one_replica else None
        result.rows.append({"judge": judge, "replicas": replicas if replicas else "-", "batches": len(rounds[0]),
                            "requests": requests, "seconds": seconds, "requests/s": requests / seconds,
                            "vs in-process": base_s / seconds, "per replica": per_replica})  # fmt: skip
        statuses["in-process" if replicas is None else f"x{replicas}"] = Counter(
            s for b in scored for s in b.judge_statuses or []
        )
        logger.info("judge %s x%s: %.1f requests/s", label, replicas or "in-process", requests / seconds)

    # The in-process engine is closed before any replica starts, so the two never share the cores.
    baseline = _score_in_process.options(num_cpus=pool_cfg.num_cpus_per_replica, num_gpus=pool_cfg.num_gpus_per_replica)
    base_times, scored = ray.get(baseline.remote(judge_cfg, backend_cfg, rows, rounds, warmup))
    base_s = median(base_times)
    add_row(None, base_s, scored, base_s)
    result.metrics[f"{prefix}in_process_requests_per_s"] = requests / base_s

    rows_ref = ray.put(rows)
    round_refs = [[ray.put(b) for b in batches] for batches in rounds]
    for replicas in replica_counts:
        cfg = dataclasses.replace(
            pool_cfg,
            app_name=f"bench-judge-{label.replace(' ', '-')}-{replicas}",
            min_replicas=replicas,
            max_replicas=replicas,
            initial_replicas=replicas,
        )
        pool = JudgePool.start(judge_cfg, cfg, rows_ref)
        try:
            # Replicas, handles, ingress, engine graphs, and a worker for each concurrent score task.
            warmup_ref = ray.put(warmup)
            ray.get([pool.async_score(warmup_ref) for _ in round_refs[0]])
            times, scored = [], []
            for batch_refs in round_refs:
                start = time.perf_counter()
                scored += ray.get([pool.async_score(ref) for ref in batch_refs])
                times.append(time.perf_counter() - start)
        finally:
            pool.shutdown()
        seconds = median(times)
        result.metrics[f"{prefix}pool_requests_per_s_r{replicas}"] = requests / seconds
        add_row(replicas, seconds, scored, base_s)
    return "; ".join(f"{row} {dict(sorted(counts.items()))}" for row, counts in statuses.items())


def _batch_requests(workload: Workload, judge_cfg: JudgeConfig) -> int:
    """Judge requests of one step batch in `judge_cfg`'s reward mode (the planner `plan_requests` uses)."""
    _, planner = REWARD_MODES[judge_cfg.reward_mode]
    return workload.prompts_per_step * len(planner(range(workload.samples_per_prompt), judge_cfg.enable_dual_order))


def _vllm_pool_config(
    workload: Workload, judge_cfg: JudgeConfig, model_dir: Path, max_model_len: int, max_tokens: int
) -> JudgePoolConfig:
    """One engine per replica on `model_dir`; a whole step batch of `judge_cfg`'s requests per engine call at most."""
    on_gpu = workload.device == "gpu"
    # Replicas share one GPU in the GPU workload: each takes an equal slice of it.
    share = 1.0 / max(workload.judge_replicas) if on_gpu else 0.0
    vllm = VllmBackendConfig(
        model=str(model_dir),
        dtype="bfloat16" if on_gpu else "float32",
        max_model_len=max_model_len,
        kv_cache_gib=1,
        gpu_memory_utilization=0.85 * share if on_gpu else 0.85,
        max_tokens=max_tokens,
    )
    return JudgePoolConfig(
        max_ongoing_requests=128,
        num_cpus_per_replica=1,
        num_gpus_per_replica=share,
        max_batch_size=_batch_requests(workload, judge_cfg),
        batch_wait_timeout_s=0.05,
        enable_cache=False,
        enable_http=False,
        vllm=vllm,
    )


def _trained_judge_configs(workload: Workload) -> tuple[JudgeConfig, JudgePoolConfig]:
    """Judge and pool configs of the trained tiny judge `workload.judge_tiny_size`, as the CPU default serves it.

    Its own prompt style and context (what it was trained on), built or copied from the shipped checkpoint
    into the jobs' model cache on the driver, so replicas only load it.
    """
    tiny = tiny_model_config(workload.judge_tiny_size)
    if tiny.role != "judge":
        raise ValueError(f"judge_tiny_size={workload.judge_tiny_size!r} is an {tiny.role} model; name a judge size")
    judge_cfg = JudgeConfig(backend="vllm", reward_mode=TRAINED_JUDGE_REWARD_MODE, prompt_style=tiny.prompt_style)
    pool_cfg = _vllm_pool_config(
        workload, judge_cfg, ensure_tiny_model(tiny), tiny.max_position_embeddings, TRAINED_JUDGE_MAX_TOKENS
    )
    return judge_cfg, pool_cfg


def _mean_prompt_tokens(
    model_dir: str, judge_cfg: JudgeConfig, rows: dict[str, ScenarioRow], batch: TrajectoryBatch
) -> float:
    """Mean chat-templated judge prompt length in the judge model's tokens (what each vllm request prefills)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    texts = [
        tokenizer.apply_chat_template(list(c.request.messages), add_generation_prompt=True, tokenize=False)
        for c in plan_requests(batch, rows, judge_cfg)
    ]
    return sum(len(tokenizer.encode(t, add_special_tokens=False)) for t in texts) / len(texts)


def run(workload: Workload, out_dir: Path) -> SectionResult:
    """Measure every judge: in-process baseline, then the pool at each of `workload.judge_replicas`."""
    latency, replica_counts = workload.judge_bench_latency_s, workload.judge_replicas
    title = (
        f"Judge pool requests/s (offline backend: {latency * 1000:g} ms latency; vllm backend: "
        f"{workload.judge_model.name}, {workload.judge_max_tokens} tokens per verdict"
    )
    if workload.judge_tiny_size:
        mode, tokens = TRAINED_JUDGE_REWARD_MODE, TRAINED_JUDGE_MAX_TOKENS
        title += f"; vllm tiny-judge: trained, {mode}, up to {tokens} tokens per verdict"
    result = SectionResult("judge", title + ")")
    result.columns = COLUMNS
    rows = train_rows()
    g = workload.samples_per_prompt
    untimed = workload.repeats * max(workload.judge_batches, workload.judge_vllm_batches)
    warmup = _step_batch(workload, rows, untimed).select(range(g))

    def rounds(n: int) -> list[list[TrajectoryBatch]]:
        """`workload.repeats` rounds of `n` step batches, every step a different one."""
        return [[_step_batch(workload, rows, r * n + i) for i in range(n)] for r in range(workload.repeats)]

    offline_cfg = JudgeConfig(backend="offline", reward_mode="peer_pairwise", offline_latency_s=latency)
    # A whole step batch per backend call, as in-process (the default of 8 would take 12 latencies per batch).
    offline_pool = JudgePoolConfig(
        max_ongoing_requests=128,
        max_batch_size=_batch_requests(workload, offline_cfg),
        enable_cache=False,
        enable_http=False,
    )
    offline_rounds = rounds(workload.judge_batches)
    _measure(result, "offline", "", offline_cfg, offline_pool, rows, offline_rounds, warmup, replica_counts)
    result.notes.append(
        "the offline backend answers a batch in one latency (a hosted judge serving requests concurrently), "
        f"so a replica tops out near max_batch_size/latency requests/s (max_batch_size {offline_pool.max_batch_size}"
        " = one step batch); the offline rows show the cost of Serve's calls around it"
    )

    vllm_cfg = JudgeConfig(backend="vllm", reward_mode="peer_pairwise")
    judge_model = workload.judge_model
    vllm_pool = _vllm_pool_config(
        workload,
        vllm_cfg,
        ensure_bench_model(judge_model),
        judge_model.max_position_embeddings,
        workload.judge_max_tokens,
    )
    vllm_rounds = rounds(workload.judge_vllm_batches)
    prompt_tokens = _mean_prompt_tokens(vllm_pool.vllm.model, vllm_cfg, rows, vllm_rounds[0][0])
    statuses = _measure(result, "vllm", "vllm_", vllm_cfg, vllm_pool, rows, vllm_rounds, warmup, replica_counts)
    result.notes.append(
        f"vllm: one engine per replica (KV cache {vllm_pool.vllm.kv_cache_gib} GiB, up to "
        f"{vllm_pool.max_batch_size} requests per engine call); each request prefills ~{prompt_tokens:.0f} prompt "
        f"tokens and generates exactly {workload.judge_max_tokens} (greedy; the random-init judge's special "
        "tokens have zero LM-head rows)"
    )
    result.notes.append(f"vllm verdict statuses per sample (random-init judge: unparsable → masked): {statuses}")

    if workload.judge_tiny_size:
        tiny_cfg, tiny_pool = _trained_judge_configs(workload)
        prompt_tokens = _mean_prompt_tokens(tiny_pool.vllm.model, tiny_cfg, rows, vllm_rounds[0][0])
        statuses = _measure(
            result, "vllm tiny-judge", "tiny_judge_", tiny_cfg, tiny_pool, rows, vllm_rounds, warmup, replica_counts
        )
        result.notes.append(
            f"vllm tiny-judge: the trained `{workload.judge_tiny_size}` tiny model, {tiny_cfg.prompt_style} prompts, "
            f"{tiny_cfg.reward_mode} (one request per sample, up to {tiny_pool.max_batch_size} per engine call), "
            f"max_model_len {tiny_pool.vllm.max_model_len}; each request prefills ~{prompt_tokens:.0f} prompt "
            f"tokens and generates up to {tiny_pool.vllm.max_tokens} (greedy, ending at its EOS, so lengths vary)"
        )
        result.notes.append(f"vllm tiny-judge verdict statuses per sample (ok = parsed, scored): {statuses}")
    if workload.device == "cpu":
        result.notes.append(
            f"on CPU every vllm engine, in-process or in a replica, computes with {vllm_pool.num_cpus_per_replica:g} "
            f"thread(s) (Ray's OMP_NUM_THREADS for the task or replica); this machine has {os.cpu_count()} cores, "
            "shared with the driver, the ingress and Ray, so replicas add throughput only while cores are free"
        )
    return result
