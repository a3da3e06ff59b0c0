"""Section `judge`: judge-pool requests/s at 1, 2, … replicas vs the same backend called in-process.

Each measurement scores `judge_batches` W1 step batches (peer-pairwise, dual order: G(G−1) requests
per prompt) submitted at once through `JudgePool.async_score`, with the offline backend sleeping a
fixed latency per request (a remote judge's stand-in) and the verdict cache off, so every request is
a fresh judge call. The baseline runs `judge.reward.score_batch` with the same backend in the calling
process, one batch after another.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import ray

from jobs.benchmarks.data import train_rows
from jobs.benchmarks.report import SectionResult
from jobs.benchmarks.workloads import Workload
from jobs.training.prompt_schedule import PromptSchedule
from judge.config import JudgeConfig
from judge.serve_config import JudgePoolConfig
from rollout.batch import TrajectoryBatch
from rollout.prompts import reference_answer
from scenarios.schema import ScenarioRow

logger = logging.getLogger(__name__)

COLUMNS = ["judge", "replicas", "batches", "requests", "seconds", "requests/s", "vs in-process"]


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


def run(workload: Workload, out_dir: Path) -> SectionResult:
    """Measure the in-process baseline, then the pool at each of `workload.judge_replicas` (Ray connected)."""
    from judge.backends import make_backend
    from judge.pool import JudgePool
    from judge.reward import plan_requests, score_batch

    latency = workload.judge_bench_latency_s
    result = SectionResult("judge", f"Judge pool requests/s (offline backend, {latency * 1000:g} ms per request)")
    result.columns = COLUMNS
    rows = train_rows()
    judge_cfg = JudgeConfig(backend="offline", reward_mode="peer_pairwise", offline_latency_s=latency)
    batches = [_step_batch(workload, rows, step) for step in range(workload.judge_batches)]
    requests = sum(len(plan_requests(b, rows, judge_cfg)) for b in batches)

    backend = make_backend("offline", judge_cfg)
    start = time.perf_counter()
    for batch in batches:
        score_batch(batch, rows, judge_cfg, backend)
    base_s = time.perf_counter() - start
    result.rows.append({"judge": "offline, in-process", "replicas": "-", "batches": len(batches),
                        "requests": requests, "seconds": base_s, "requests/s": requests / base_s,
                        "vs in-process": 1.0})  # fmt: skip
    result.metrics["in_process_requests_per_s"] = requests / base_s

    rows_ref = ray.put(rows)
    batch_refs = [ray.put(b) for b in batches]
    for replicas in workload.judge_replicas:
        pool_cfg = JudgePoolConfig(
            app_name=f"bench-judge-{replicas}",
            min_replicas=replicas,
            max_replicas=replicas,
            initial_replicas=replicas,
            max_ongoing_requests=16,
            enable_cache=False,
            enable_http=False,
        )
        pool = JudgePool.start(judge_cfg, pool_cfg, rows_ref)
        try:
            ray.get(pool.async_score(batch_refs[0]))  # warm-up: replicas, handles, ingress
            start = time.perf_counter()
            ray.get([pool.async_score(ref) for ref in batch_refs])
            seconds = time.perf_counter() - start
        finally:
            pool.shutdown()
        result.rows.append({"judge": "JudgePool (Ray Serve)", "replicas": replicas, "batches": len(batches),
                            "requests": requests, "seconds": seconds, "requests/s": requests / seconds,
                            "vs in-process": base_s / seconds})  # fmt: skip
        result.metrics[f"pool_requests_per_s_r{replicas}"] = requests / seconds
        logger.info("judge pool x%d: %.1f requests/s", replicas, requests / seconds)
    result.notes.append(
        "the offline backend sleeps its latency per request, one request after another inside a replica batch, "
        f"so one replica tops out near 1/latency = {1 / latency:g} requests/s; replicas add throughput linearly"
    )
    result.notes.append("vllm judge backend: not measured (CPU time went to the other sections)")
    return result
