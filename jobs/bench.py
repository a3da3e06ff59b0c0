"""`privacyalign bench`: side-by-side throughput of our components against their baselines (issue 8).

Examples:
    privacyalign bench                                   # W1, every section, ~20 min on 2 cores
    privacyalign bench --section judge --section sync    # just those tables
    privacyalign bench --section e2e train_steps=3       # trailing key=value override workload fields

Prints one table per section and a summary of the targets (PASS / MISS / N/A) and writes everything
to runs/bench/<UTC timestamp>.json. Run it under `flock /tmp/privacyalign-heavy.lock` on a shared box.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from jobs.benchmarks.runner import SECTIONS, SectionFn, resolve_sections, run_bench
from jobs.benchmarks.workloads import WORKLOADS, Workload, get_workload

# Every section `--section` accepts: name → (function of BenchContext, needs the in-process Ray cluster).
REGISTRY: dict[str, tuple[SectionFn, bool]] = dict(SECTIONS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="privacyalign bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--workload", default="W1", help=f"workload name (default W1; valid: {', '.join(WORKLOADS)})")
    parser.add_argument(
        "--section",
        action="append",
        default=[],
        help=f"section to run, repeatable (default all; valid: all, {', '.join(REGISTRY)})",
    )
    parser.add_argument("--out-root", default="runs/bench", help="folder for the JSON report and run logs")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="override scalar or list fields of the workload, e.g. repeats=1 train_steps=3 judge_replicas=[1,2,4]",
    )
    return parser


def apply_overrides(workload: Workload, overrides: list[str]) -> Workload:
    """The workload with `key=value` overrides of its scalar/list fields (lists become tuples)."""
    from omegaconf import ListConfig, OmegaConf

    fields = {f.name for f in dataclasses.fields(workload)} - {"model", "judge_model", "sync_shapes", "name"}
    changes = {}
    for key, value in OmegaConf.to_container(OmegaConf.from_dotlist(overrides)).items():
        if key not in fields:
            raise ValueError(f"workload field {key!r} cannot be overridden; valid: {sorted(fields)}")
        changes[key] = tuple(value) if isinstance(value, list | ListConfig) else value
    return dataclasses.replace(workload, **changes)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        workload = apply_overrides(get_workload(args.workload), args.overrides)
        sections = resolve_sections(args.section or ["all"], REGISTRY)
    except ValueError as exc:
        print(f"privacyalign bench: {exc}", file=sys.stderr)
        return 2
    _, path = run_bench(workload, sections, REGISTRY, emit=lambda text: print(text, flush=True),
                        out_root=Path(args.out_root))  # fmt: skip
    return 0 if path.exists() else 1


if __name__ == "__main__":
    sys.exit(main())
