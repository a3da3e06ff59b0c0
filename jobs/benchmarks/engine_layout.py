"""Section `engine_layout`: where vLLM's engine core runs on CPU, measured against a learner stand-in.

vLLM's default puts the engine core in its own process, which busy-polls its worker's replies while
the worker computes. On a small CPU box that spin takes a core share from whatever overlaps
generation: in training, the learner. `RolloutEngine` therefore runs the engine core inside the
rollout actor on CPU. This section measures both layouts side by side: each in a fresh child process
(the layout is fixed when vLLM starts) with one OpenMP thread, as a 1-CPU Ray actor has, generating
the workload's steps while a 1-thread torch loop (the learner's stand-in) runs next to it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

from jobs.benchmarks.report import SectionResult, median
from jobs.benchmarks.workloads import Workload, get_workload

# VLLM_ENABLE_V1_MULTIPROCESSING per layout (read when the engine starts).
LAYOUTS = {"separate engine-core process (vLLM default)": "1", "engine core in the actor (ours on CPU)": "0"}
COLUMNS = ["engine core", "generate s", "generate s (overlapped)", "learner it/s", "learner it/s (overlapped)",
           "learner kept", "engine CPU s per wall s"]  # fmt: skip
OVERLAP_S = 8.0


def _learner_stand_in(seconds: float, out: multiprocessing.Queue) -> None:
    """Iterations/s of a 1-thread 512x512 matmul loop: the compute-bound learner's share of a core."""
    import torch

    torch.set_num_threads(1)
    a = torch.randn(512, 512)
    count, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        a = torch.tanh(a @ a.T / 512)
        count += 1
    out.put(count / seconds)


def _cpu_seconds(pid: int, skip: int) -> float:
    """User+system CPU seconds of `pid` and its descendants, except the subtree of `skip`."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split() if int(c) != skip]
        except OSError:
            continue
    return total


def _measure_child(workload_name: str) -> dict[str, float]:
    """In a child with the layout already in its environment: generation and learner rates, alone and together."""
    from jobs.benchmarks.data import step_prompts
    from jobs.benchmarks.models import ensure_bench_model
    from rollout.config import RolloutConfig
    from rollout.engine import RolloutEngine

    workload = get_workload(workload_name)
    model_dir = ensure_bench_model(workload.model)
    steps = [step_prompts(workload, model_dir, step) for step in range(workload.repeats + 1)]
    spawn = multiprocessing.get_context("spawn")
    rates: multiprocessing.Queue = spawn.Queue()
    learner = spawn.Process(target=_learner_stand_in, args=(OVERLAP_S / 2, rates))
    learner.start()
    learner.join()
    alone_rate = rates.get()

    cfg = RolloutConfig(model=str(model_dir), samples_per_prompt=workload.samples_per_prompt,
                        max_tokens=workload.max_new_tokens, enable_ignore_eos=workload.enable_ignore_eos,
                        max_num_seqs=max(256, workload.samples_per_step))  # fmt: skip
    engine = RolloutEngine(cfg)
    try:

        def generate(step: int) -> float:
            ids, prompts = steps[step % len(steps)]
            start = time.perf_counter()
            engine.generate(prompts, ids, list(range(len(ids))), 0, seed=step)
            return time.perf_counter() - start

        alone = median([generate(step) for step in range(len(steps))][1:])
        learner = spawn.Process(target=_learner_stand_in, args=(OVERLAP_S, rates))
        cpu_before, start = _cpu_seconds(os.getpid(), skip=-1), time.perf_counter()
        learner.start()
        overlapped, step = [], 0
        while time.perf_counter() - start < OVERLAP_S:
            overlapped.append(generate(step))
            step += 1
        cpu = _cpu_seconds(os.getpid(), skip=learner.pid) - cpu_before
        wall = time.perf_counter() - start
        learner.join()
        together_rate = rates.get()
    finally:
        engine.shutdown()
    return {"generate_s": alone, "generate_overlapped_s": median(overlapped), "learner_rate": alone_rate,
            "learner_rate_overlapped": together_rate, "engine_cpu_per_wall": cpu / wall}  # fmt: skip


def layout_row(name: str, measured: dict[str, float]) -> dict[str, object]:
    """One table row; `learner kept` = the stand-in's overlapped rate over its rate alone."""
    return {"engine core": name, "generate s": measured["generate_s"],
            "generate s (overlapped)": measured["generate_overlapped_s"],
            "learner it/s": measured["learner_rate"], "learner it/s (overlapped)": measured["learner_rate_overlapped"],
            "learner kept": measured["learner_rate_overlapped"] / measured["learner_rate"],
            "engine CPU s per wall s": measured["engine_cpu_per_wall"]}  # fmt: skip


def run(workload: Workload, out_dir: Path) -> SectionResult:
    """Both layouts, one after the other, each in its own child process (nothing else running)."""
    result = SectionResult(
        "engine_layout", f"vLLM engine-core layout on CPU, generating next to a learner ({workload.name})"
    )
    result.columns = COLUMNS
    for name, multiprocessing_flag in LAYOUTS.items():
        env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": multiprocessing_flag, "OMP_NUM_THREADS": "1"}
        log = out_dir / f"engine_layout_{multiprocessing_flag}.log"
        with log.open("w") as out:
            child = subprocess.run([sys.executable, "-m", __name__, workload.name], env=env, stdout=subprocess.PIPE,
                                   stderr=out, text=True, check=False, timeout=900)  # fmt: skip
        if child.returncode != 0:
            raise RuntimeError(f"engine_layout child ({name}) exited with {child.returncode}; see {log}")
        result.rows.append(layout_row(name, json.loads(child.stdout.strip().splitlines()[-1])))
    result.notes.append(
        f"each layout in a fresh process with OMP_NUM_THREADS=1; learner stand-in = 1-thread 512x512 matmul loop; "
        f"overlapped = {OVERLAP_S:.0f} s of back-to-back generate calls while it runs; engine CPU excludes the stand-in"
    )
    return result


if __name__ == "__main__":
    print(json.dumps(_measure_child(sys.argv[1])), flush=True)
