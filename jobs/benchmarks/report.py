"""Benchmark results as data: one `SectionResult` per section, plain-text tables, the targets (issues 8, 14).

Sections measure; this module only formats and judges numbers, so it is tested on hand-made values.
A target reads named metrics from the sections' `metrics` dicts; a missing metric (section skipped or
failed) makes the target `N/A`, never a silent PASS.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class SectionResult:
    """What one section measured: a table for people, `metrics` for the targets, `skipped` when it could not run."""

    # Section name (`--section`).
    name: str
    # Table heading.
    title: str
    # Column names, in order.
    columns: list[str] = field(default_factory=list)
    # One dict per table row, keyed by column name.
    rows: list[dict[str, Any]] = field(default_factory=list)
    # Scalars the targets read (e.g. `actor_over_bare`).
    metrics: dict[str, float] = field(default_factory=dict)
    # Free-text lines printed under the table (why a number is what it is, what was skipped).
    notes: list[str] = field(default_factory=list)
    # Non-empty = the section did not run, with the reason.
    skipped: str = ""


def median(values: Sequence[float]) -> float:
    """The middle value (upper middle for an even count): timing summaries robust to one slow repeat."""
    if not values:
        raise ValueError("median of no values")
    return sorted(values)[len(values) // 2]


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def format_table(title: str, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width text table: title, header, rule, rows (missing cells print as `-`)."""
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max([len(col)] + [len(r[i]) for r in cells]) for i, col in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        # Text left-aligned in the first column, numbers right-aligned elsewhere.
        return "  ".join(
            v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )

    out = [title, line(list(columns)), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def format_section(result: SectionResult) -> str:
    """The section's table (or its skip reason) with its notes."""
    if result.skipped:
        text = f"{result.title}\n  skipped: {result.skipped}"
    else:
        text = format_table(result.title, result.columns, result.rows)
    return "\n".join([text, *(f"  note: {n}" for n in result.notes)])


@dataclass(frozen=True)
class Target:
    """One target: a ratio computed from section metrics, compared with a bound."""

    # Short name in the summary table.
    name: str
    # The claim, in words.
    claim: str
    # Section whose metrics the ratio reads.
    section: str
    # Metric names the ratio needs.
    needs: tuple[str, ...]
    # metrics → ratio.
    ratio: Callable[[dict[str, float]], float]
    # Bound on the ratio.
    bound: float
    # True: PASS when ratio >= bound; False: PASS when ratio <= bound.
    higher_is_better: bool


TARGETS: tuple[Target, ...] = (
    Target(
        "e2e vs TRL",
        "end-to-end RL samples/s >= 3x TRL GRPOTrainer (best of sync/async)",
        "e2e",
        ("ours_samples_per_s", "trl_samples_per_s"),
        lambda m: m["ours_samples_per_s"] / m["trl_samples_per_s"],
        3.0,
        True,
    ),
    Target(
        "async overlap",
        "async step time <= 1.15x the slowest stage (latency-bound judge)",
        "schedule",
        ("async_step_s", "slowest_stage_s"),
        lambda m: m["async_step_s"] / m["slowest_stage_s"],
        1.15,
        False,
    ),
    Target(
        "rollout overhead",
        "RolloutActor tokens/s >= 90% of bare vLLM",
        "rollout",
        ("actor_tokens_per_s", "bare_tokens_per_s"),
        lambda m: m["actor_tokens_per_s"] / m["bare_tokens_per_s"],
        0.9,
        True,
    ),
    Target(
        "judge pool overhead",
        "vllm judge through the Serve pool at 1 replica >= 90% of the same engine in-process",
        "judge",
        ("vllm_pool_requests_per_s_r1", "vllm_in_process_requests_per_s"),
        lambda m: m["vllm_pool_requests_per_s_r1"] / m["vllm_in_process_requests_per_s"],
        0.9,
        True,
    ),
    Target(
        "judge scaling",
        "vllm judge pool at 2 replicas >= 80% of twice its 1-replica requests/s (cores permitting)",
        "judge",
        ("vllm_pool_requests_per_s_r1", "vllm_pool_requests_per_s_r2"),
        lambda m: m["vllm_pool_requests_per_s_r2"] / (2 * m["vllm_pool_requests_per_s_r1"]),
        0.8,
        True,
    ),
    Target(
        "weight sync",
        "object-store sync >= 50% of memcpy bandwidth (largest model measured)",
        "sync",
        ("object_store_gb_per_s", "memcpy_gb_per_s"),
        lambda m: m["object_store_gb_per_s"] / m["memcpy_gb_per_s"],
        0.5,
        True,
    ),
    Target(
        "driver bytes",
        "driver bytes per step flat in batch size (large / small batch <= 1.1)",
        "driver",
        ("bytes_per_step_small", "bytes_per_step_large"),
        lambda m: m["bytes_per_step_large"] / m["bytes_per_step_small"],
        1.1,
        False,
    ),
)


def evaluate_targets(results: dict[str, SectionResult], targets: Sequence[Target] = TARGETS) -> list[dict[str, Any]]:
    """One summary row per target: ratio, bound and PASS / MISS / N/A (with the reason for N/A)."""
    rows = []
    for target in targets:
        row: dict[str, Any] = {"target": target.name, "claim": target.claim, "ratio": None}
        row["bound"] = f"{'>=' if target.higher_is_better else '<='} {target.bound:g}"
        result = results.get(target.section)
        missing = [k for k in target.needs if result is None or k not in result.metrics]
        if result is None or result.skipped or missing:
            why = "not run" if result is None else result.skipped or f"missing {', '.join(missing)}"
            row.update(status="N/A", why=why)
        else:
            try:
                ratio = target.ratio(result.metrics)
            except ZeroDivisionError:
                row.update(status="N/A", why="zero denominator")
            else:
                ok = ratio >= target.bound if target.higher_is_better else ratio <= target.bound
                row.update(ratio=ratio, status="PASS" if ok else "MISS", why="")
        rows.append(row)
    return rows


SUMMARY_COLUMNS = ("target", "ratio", "bound", "status", "claim", "why")


def write_json(path: Path, header: dict[str, Any], results: dict[str, SectionResult], summary: list[dict]) -> Path:
    """Everything measured, as one JSON file (created with its parent directories)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {**header, "sections": {k: asdict(v) for k, v in results.items()}, "targets": summary}
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return path
