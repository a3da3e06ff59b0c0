"""Run named benchmark sections for a workload, print one table each plus the targets, write one JSON.

Sections that measure inside this process (judge, learner, sync, and rollout) share one embedded Ray
cluster; sections that launch `privacyalign train` children (driver, schedule, e2e) run after it is
shut down, so two clusters never compete for the same cores. A section that fails is reported as
skipped with its error; the others still run.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from jobs.benchmarks.report import (
    SUMMARY_COLUMNS,
    SectionResult,
    evaluate_targets,
    format_section,
    format_table,
    write_json,
)
from jobs.benchmarks.workloads import Workload

logger = logging.getLogger(__name__)


@dataclass
class BenchContext:
    """What sections share in one invocation: the workload, an output folder, the cached train runs."""

    workload: Workload
    # Folder for this invocation's logs and child run directories (runs/bench/<timestamp>/).
    out_dir: Path
    # jobs.benchmarks.training.TrainRuns, created on first use.
    train_runs: object | None = None

    def runs(self):
        from jobs.benchmarks.training import TrainRuns

        if self.train_runs is None:
            self.train_runs = TrainRuns(self.workload, self.out_dir)
        return self.train_runs


SectionFn = Callable[[BenchContext], SectionResult]


def _rollout(ctx: BenchContext) -> SectionResult:
    from jobs.benchmarks import rollout_gen

    return rollout_gen.run(ctx.workload, ctx.out_dir)


def _judge(ctx: BenchContext) -> SectionResult:
    from jobs.benchmarks import judge_pool

    return judge_pool.run(ctx.workload, ctx.out_dir)


def _learner(ctx: BenchContext) -> SectionResult:
    from jobs.benchmarks import learner_step

    return learner_step.run(ctx.workload, ctx.out_dir)


def _sync(ctx: BenchContext) -> SectionResult:
    from jobs.benchmarks import sync

    return sync.run(ctx.workload, ctx.out_dir)


def _engine_layout(ctx: BenchContext) -> SectionResult:
    from jobs.benchmarks import engine_layout

    return engine_layout.run(ctx.workload, ctx.out_dir)


def _driver(ctx: BenchContext) -> SectionResult:
    from jobs.benchmarks.training import run_driver

    return run_driver(ctx.workload, ctx.runs())


def _schedule(ctx: BenchContext) -> SectionResult:
    from jobs.benchmarks.training import run_schedule

    return run_schedule(ctx.workload, ctx.runs())


def _e2e(ctx: BenchContext) -> SectionResult:
    from jobs.benchmarks.training import run_e2e

    return run_e2e(ctx.workload, ctx.runs())


# name → (section, needs the in-process Ray cluster). Order = run order.
SECTIONS: dict[str, tuple[SectionFn, bool]] = {
    "rollout": (_rollout, True),
    "judge": (_judge, True),
    "learner": (_learner, True),
    "sync": (_sync, True),
    "engine_layout": (_engine_layout, False),
    "driver": (_driver, False),
    "schedule": (_schedule, False),
    "e2e": (_e2e, False),
}


def resolve_sections(requested: Sequence[str], registry: dict[str, tuple[SectionFn, bool]]) -> list[str]:
    """Expand `all` and check names against `registry` (unknown → ValueError listing valid names)."""
    names = list(registry) if "all" in requested else list(dict.fromkeys(requested))
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ValueError(f"unknown bench section(s) {unknown}; valid: {['all', *registry]}")
    return names


def run_bench(
    workload: Workload,
    requested: Sequence[str],
    registry: dict[str, tuple[SectionFn, bool]],
    emit: Callable[[str], None],
    out_root: Path = Path("runs/bench"),
) -> tuple[dict[str, SectionResult], Path]:
    """Run the sections, `emit` each table as it completes and then the targets; returns results and JSON path."""
    from cluster.config import ClusterConfig
    from cluster.connect import connect, disconnect

    names = resolve_sections(requested, registry)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    ctx = BenchContext(workload=workload, out_dir=out_root / stamp)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, SectionResult] = {}
    header = {"workload": workload.name, "workload_description": workload.description, "timestamp_utc": stamp}
    ordered = sorted(names, key=lambda n: not registry[n][1])  # in-process Ray sections first
    for name in ordered:
        fn, needs_ray = registry[name]
        if needs_ray:
            connect(ClusterConfig())
        else:
            disconnect()
        started = time.perf_counter()
        try:
            results[name] = fn(ctx)
        except Exception as exc:  # process boundary: one broken section must not hide the others
            logger.exception("bench section %s failed", name)
            results[name] = SectionResult(name, f"Section {name}", skipped=f"failed: {type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - started
        # Other processes on a shared box skew every number: record how busy the machine was.
        load = os.getloadavg()[0]
        results[name].notes.append(f"section took {seconds:.0f} s; 1-min load average at its end {load:.1f} "
                                   f"on {os.cpu_count()} cores")  # fmt: skip
        logger.info("section %s done in %.0f s", name, seconds)
        emit(format_section(results[name]) + "\n")
        # Rewritten after every section, so a run killed halfway keeps what it measured.
        write_json(out_root / f"{stamp}.json", header, results, evaluate_targets(results))
    disconnect()
    summary = evaluate_targets(results)
    emit(format_table(f"Targets ({workload.name})", SUMMARY_COLUMNS, summary))
    path = write_json(out_root / f"{stamp}.json", header, results, summary)
    emit(f"\nJSON: {path}")
    return results, path
