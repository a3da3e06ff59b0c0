"""Sections that run `privacyalign train` end to end: `driver`, `schedule` and `e2e` (with TRL's GRPOTrainer).

Each train run is a child process (its own embedded Ray cluster) configured for the workload by
dotlist overrides; the numbers come from its `metrics.jsonl` (`time/*` per stage, `time/step`,
`driver/fetched_bytes`). The first step is warm-up and not counted. Runs are cached per bench
invocation by their overrides, so sections that need the same run share it.

Every train run scores with the offline judge (`BENCH_JUDGE`), the reward TRL's GRPOTrainer computes
in-process in the e2e section: the tiny-cpu preset the runs start from serves a vLLM judge, which
would put an engine on the cores that TRL's run has no counterpart of.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from jobs.benchmarks.models import BENCH_CACHE, ensure_bench_model
from jobs.benchmarks.report import SectionResult
from jobs.benchmarks.trl_env import ensure_trl_python
from jobs.benchmarks.workloads import Workload
from judge.config import JudgeConfig

logger = logging.getLogger(__name__)

# Each stage's own duration as the loop logs it (jobs/training/loop.py), in pipeline order.
STAGES = ("time/generate", "time/judge", "time/learn", "time/sync")
# What a step spent waiting on a stage (less than its duration where it overlapped an earlier step).
WAITS = ("time/generate_wait", "time/judge_wait", "time/sync_wait")
# Seconds one train run may take before it counts as hung.
RUN_TIMEOUT_S = 1200
# The reward judge of every bench train run, all fields set (a section may change its reward mode and
# latency); the e2e section's TRL run computes the same reward with this backend in-process.
BENCH_JUDGE = JudgeConfig(backend="offline", reward_mode="peer_pairwise")


class TrainRuns:
    """Runs `privacyalign train` once per distinct override set and keeps the counted step records."""

    def __init__(self, workload: Workload, out_dir: Path):
        self.workload = workload
        self.out_dir = out_dir
        self.model_dir = ensure_bench_model(workload.model)
        self._done: dict[tuple[str, ...], dict[str, Any]] = {}

    def overrides(self, *, schedule: str, prompts_per_step: int | None = None, **extra: Any) -> list[str]:
        """The workload's train config as dotlist overrides (evaluation, checkpoints and plots kept minimal)."""
        w = self.workload
        values: dict[str, Any] = {
            "model.source": str(self.model_dir.resolve()),
            "rollout.samples_per_prompt": w.samples_per_prompt,
            "rollout.max_tokens": w.max_new_tokens,
            "rollout.enable_ignore_eos": w.enable_ignore_eos,
            "rollout.prompt_style": w.prompt_style,
            # `judge.pool` stays "": each run starts its own pool.
            **{f"judge.{k}": v for k, v in dataclasses.asdict(BENCH_JUDGE).items() if k != "pool"},
            "learner.lr": 1e-6,
            # TRL's process computes with every core; our learner, which runs while the engines idle
            # (sync) or beside one engine thread (async), may too (its Ray share is 1 CPU).
            "learner.num_threads": os.cpu_count() or 1,
            "trainer.prompts_per_step": prompts_per_step or w.prompts_per_step,
            "trainer.num_steps": w.train_steps,
            "trainer.schedule": schedule,
            "trainer.eval_every": 0,
            "trainer.eval_max_prompts": 1,
            "trainer.eval_samples_per_prompt": 1,
            "trainer.checkpoint_every": 0,
            "trainer.enable_tensorboard": False,
            "trainer.enable_plot": False,
            "trainer.enable_progress_bar": False,
            **extra,
        }
        return [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items()]

    def run(self, name: str, overrides: list[str]) -> dict[str, Any]:
        """`{"steps": counted step records, "wall_s": process seconds, "run_dir": ...}`; raises on failure."""
        key = tuple(overrides)
        if key in self._done:
            return self._done[key]
        run_dir = self.out_dir / f"train-{name}"
        log_path = self.out_dir / f"train-{name}.log"
        cmd = [sys.executable, "-m", "jobs.cli", "train", "--run-dir", str(run_dir), *overrides]
        logger.info("train run %s: %s", name, " ".join(cmd))
        start = time.perf_counter()
        with log_path.open("w") as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_S, check=False)
        wall_s = time.perf_counter() - start
        if proc.returncode != 0:
            tail = log_path.read_text().splitlines()[-5:]
            raise RuntimeError(f"train run {name} exited {proc.returncode} (log {log_path}): {' | '.join(tail)}")
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
        steps = [r for r in records if "time/step" in r][1:]
        if not steps:
            raise RuntimeError(f"train run {name}: no counted steps in {run_dir / 'metrics.jsonl'}")
        self._done[key] = {"steps": steps, "wall_s": wall_s, "run_dir": str(run_dir)}
        return self._done[key]


def _mean(steps: list[dict[str, Any]], key: str) -> float:
    values = [float(s[key]) for s in steps if key in s]
    return sum(values) / len(values) if values else float("nan")


def run_driver(workload: Workload, runs: TrainRuns) -> SectionResult:
    """Bytes the driver fetched per step at two batch sizes (sync schedule, offline judge, no latency)."""
    result = SectionResult("driver", f"Driver bytes fetched per step ({workload.name}, sync schedule)")
    result.columns = ["prompts/step", "samples/step", "steps", "bytes/step", "bytes/sample"]
    for label, prompts in zip(("small", "large"), workload.driver_prompts_per_step, strict=True):
        overrides = runs.overrides(schedule="sync", prompts_per_step=prompts)
        steps = runs.run("sync" if prompts == workload.prompts_per_step else f"sync-p{prompts}", overrides)["steps"]
        per_step = _mean(steps, "driver/fetched_bytes")
        samples = prompts * workload.samples_per_prompt
        result.rows.append({"prompts/step": prompts, "samples/step": samples, "steps": len(steps),
                            "bytes/step": per_step, "bytes/sample": per_step / samples})  # fmt: skip
        result.metrics[f"bytes_per_step_{label}"] = per_step
    result.notes.append("pickled size of every ray.get the driver made in a step (jobs/training/driver_fetch.py)")
    return result


def _column(key: str) -> str:
    return key.removeprefix("time/").replace("_", " ") + " s"


def run_schedule(workload: Workload, runs: TrainRuns) -> SectionResult:
    """Sync vs async step time with the offline judge as a latency-bound service (fixed replicas).

    The target compares the async step to the slowest stage's own duration (launch → done, measured
    even while it overlaps another step) in the same async run: what perfect overlap would reach on
    that run's hardware share. The slowest stage of the sync run, where stages never share the CPU,
    is reported beside it.
    """
    latency = workload.judge_latency_s
    replicas = max(workload.judge_replicas)
    result = SectionResult("schedule", f"Sync vs async step time, judge latency {latency:g} s/request x{replicas}")
    result.columns = ["schedule", "steps", "step s", *map(_column, STAGES + WAITS), "slowest stage"]
    extra = {
        "judge.reward_mode": "pointwise",
        "judge.offline_latency_s": latency,
        "judge_pool.min_replicas": replicas,
        "judge_pool.max_replicas": replicas,
        "judge_pool.initial_replicas": replicas,
    }
    for schedule in ("sync", "async"):
        steps = runs.run(f"{schedule}-latency", runs.overrides(schedule=schedule, **extra))["steps"]
        row: dict[str, Any] = {"schedule": schedule, "steps": len(steps), "step s": _mean(steps, "time/step")}
        row.update({_column(s): _mean(steps, s) for s in STAGES + WAITS})
        row["slowest stage"] = max(STAGES, key=lambda s: row[_column(s)]).removeprefix("time/")
        result.rows.append(row)
    sync_row, async_row = result.rows
    slowest_s = async_row[_column("time/" + async_row["slowest stage"])]
    alone_s = sync_row[_column("time/" + sync_row["slowest stage"])]
    result.metrics = {"async_step_s": async_row["step s"], "slowest_stage_s": slowest_s,
                      "slowest_stage_alone_s": alone_s, "sync_step_s": sync_row["step s"]}  # fmt: skip
    result.notes.append(
        f"target ratio: async step / its own slowest stage ({async_row['slowest stage']}, {slowest_s:.2f} s); "
        f"vs that stage alone in the sync run ({sync_row['slowest stage']}, {alone_s:.2f} s): "
        f"{async_row['step s'] / alone_s:.2f}x; pointwise reward ({workload.samples_per_step} judge requests/step "
        f"over {replicas} replicas, served concurrently)"
    )
    return result


def _trl_run(workload: Workload, runs: TrainRuns) -> dict[str, Any]:
    python = ensure_trl_python()
    out = runs.out_dir / "trl-grpo.json"
    cmd = [str(python), "-m", "jobs.benchmarks.trl_grpo", "--model", str(runs.model_dir.resolve()),
           "--out", str(out), "--steps", str(workload.train_steps),
           "--prompts-per-step", str(workload.prompts_per_step),
           "--samples-per-prompt", str(workload.samples_per_prompt),
           "--max-new-tokens", str(workload.max_new_tokens), "--prompt-style", workload.prompt_style,
           "--reward-mode", BENCH_JUDGE.reward_mode, "--lr", "1e-6", "--beta", "0.002",
           "--work-dir", str(BENCH_CACHE / "trl-out")]  # fmt: skip
    if workload.enable_ignore_eos:
        cmd.append("--ignore-eos")
    # Our pure modules come from the repo; TRL's venv has torch, transformers, pyarrow and omegaconf.
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    log_path = runs.out_dir / "trl-grpo.log"
    start = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=RUN_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        tail = log_path.read_text().splitlines()[-5:]
        raise RuntimeError(f"TRL GRPO run exited {proc.returncode} (log {log_path}): {' | '.join(tail)}")
    return {**json.loads(out.read_text()), "wall_s": time.perf_counter() - start}


def run_e2e(workload: Workload, runs: TrainRuns) -> SectionResult:
    """End-to-end RL samples/s: our train (sync, async) vs TRL GRPOTrainer, same model/prompts/G/tokens/reward."""
    reward = f"{BENCH_JUDGE.backend} judge, {BENCH_JUDGE.reward_mode} reward"
    result = SectionResult("e2e", f"End-to-end RL samples/s ({workload.name}, {reward})")
    stage_columns = [_column(s) for s in STAGES]
    result.columns = ["trainer", "steps", "step s", *stage_columns, "samples/s", "process wall s", "vs TRL"]
    ours: dict[str, float] = {}
    for schedule in ("sync", "async"):
        run = runs.run(schedule, runs.overrides(schedule=schedule))
        step_s = _mean(run["steps"], "time/step")
        ours[schedule] = workload.samples_per_step / step_s
        row = {"trainer": f"privacyalign train ({schedule})", "steps": len(run["steps"]), "step s": step_s,
               "samples/s": ours[schedule], "process wall s": run["wall_s"]}  # fmt: skip
        row.update({col: _mean(run["steps"], s) for col, s in zip(stage_columns, STAGES, strict=True)})
        result.rows.append(row)
    trl = _trl_run(workload, runs)
    timed = trl["step_seconds"][1:]
    result.rows.append({"trainer": "TRL GRPOTrainer (transformers generate)", "steps": len(timed),
                        "step s": sum(timed) / len(timed), "samples/s": trl["samples_per_s"],
                        "process wall s": trl["wall_s"]})  # fmt: skip
    for row in result.rows:
        row["vs TRL"] = row["samples/s"] / trl["samples_per_s"]
    result.metrics = {"ours_samples_per_s": max(ours.values()), "trl_samples_per_s": trl["samples_per_s"],
                      "ours_sync_samples_per_s": ours["sync"], "ours_async_samples_per_s": ours["async"]}  # fmt: skip
    result.notes.append(
        "steady-state step time (first step not counted); process wall includes Ray/vLLM/DeepSpeed or TRL start-up "
        "and our before/after dev evaluation"
    )
    return result
