"""Readable outputs of an evaluation run: `summary.json`, `report.md` with tables, and PNG charts.

Everything renders from the summary dict alone (never from per-item text), so a report can be
rebuilt from `summary.json` and cannot leak scenario text. Charts use matplotlib's Agg backend:
no display is needed on a cluster node.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jobs.run_files import write_atomic

# (benchmark, summary key path, label) of the headline metrics drawn in the charts, in panel order.
CHART_METRICS: dict[str, tuple[tuple[str, str], ...]] = {
    "privacyalign": (
        ("unusable_rate", "unusable"),
        ("judge/leak_among_usable", "judge leak (usable)"),
        ("oracle/leak_among_usable", "oracle leak (usable)"),
        ("judge/clean_among_usable", "judge clean (usable)"),
        ("oracle/clean_among_usable", "oracle clean (usable)"),
    ),
    "privacylens": (
        ("unusable_rate", "unusable"),
        ("leak_among_usable", "leak (usable)"),
        ("leak_paper", "leak (paper)"),
        ("adjusted_leak_rate", "adj. leak"),
        ("helpful_rate", "helpful"),
    ),
    "confaide": (
        ("free-response.leaks_rate", "T3 leak"),
        ("meeting-summary.leaks_rate", "T4 sum. leak"),
        ("action-item.leaks_rate", "T4 act. leak"),
        ("action-item.omits_rate", "T4 act. omit"),
    ),
}


def fmt(value: Any, *, percent: bool = True) -> str:
    """A table cell: percentages with one decimal, other floats with three, None as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{100 * value:.1f} %" if percent else f"{value:.3f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def lookup(entry: dict[str, Any], dotted: str) -> Any:
    """`entry["a"]["b"]` for "a.b"; None when any level is missing."""
    value: Any = entry
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


# Rows of a split-rate table (jobs/evaluation/metrics.py `split_rates`): (label, judge key, oracle key).
# The unusable rate is the same answers for both graders; the oracle never fails.
SPLIT_RATE_ROWS = (
    ("unusable", "unusable_rate", "unusable_rate"),
    ("leak among usable", "judge/leak_among_usable", "oracle/leak_among_usable"),
    ("omit among usable", "judge/omit_among_usable", "oracle/omit_among_usable"),
    ("clean among usable", "judge/clean_among_usable", "oracle/clean_among_usable"),
    ("judge failed among usable", "judge/failed_rate", None),
    ("leak, paper (unusable/failed = leak+omit)", "judge/leak_paper", "oracle/leak_paper"),
    ("omit, paper", "judge/omit_paper", "oracle/omit_paper"),
    ("clean, paper", "judge/clean_paper", "oracle/clean_paper"),
)


def split_rate_table(
    columns: Sequence[tuple[str, str, dict[str, Any]]], cell: Callable[[dict[str, Any], str], str] | None = None
) -> str:
    """Markdown table of split rates: one row per SPLIT_RATE_ROWS metric, one column per (header, grader, entry).

    `grader` is "judge" or "oracle"; `entry` holds `split_rates` keys. An oracle column over data without
    ground truth (`oracle/samples` 0) is n/a throughout; a metric a grader lacks is "—".
    """
    cell = cell or (lambda entry, key: fmt(entry.get(key)))
    rows = []
    for label, judge_key, oracle_key in SPLIT_RATE_ROWS:
        row = [label]
        for _, grader, entry in columns:
            key = judge_key if grader == "judge" else oracle_key
            if key is None:
                row.append("—")
            elif grader == "oracle" and not entry.get("oracle/samples"):
                row.append("n/a")
            else:
                row.append(cell(entry, key))
        rows.append(row)
    return markdown_table(["metric", *(header for header, _, _ in columns)], rows)


def _with_std(entry: dict[str, Any], key: str) -> str:
    cell = fmt(entry.get(key))
    std = entry.get(f"{key}_std")
    if std is not None and entry.get("judge_samples", 1) > 1:
        cell += f" ± {100 * std:.1f}"
    return cell


def write_json(path: Path, data: Any) -> Path:
    return write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


# ---- evaluate -------------------------------------------------------------------------------------


def render_evaluate_markdown(summary: dict[str, Any]) -> str:
    """The `privacyalign evaluate` report: one table per benchmark, one row per agent."""
    agents: list[str] = summary["agents"]
    specs = summary.get("agent_specs", {})
    listed = ", ".join(f"`{a}`" + (f" ({specs[a]})" if a in specs else "") for a in agents)
    setup = f"Agents: {listed}. Judge: `{summary.get('judge_backend', '?')}`; agent prompt: `{summary.get('prompt_style', '?')}`."
    parts = [f"# Evaluation report\n\n{setup}\n"]
    bench = summary["benchmarks"]
    if "privacyalign" in bench:
        samples = max(int(bench["privacyalign"][a].get("judge_samples", 1)) for a in agents)
        note = f" (judge rates: mean ± std over {samples} judge samples)" if samples > 1 else ""
        counts = "; ".join(
            f"`{a}`: {e['n']} answers, {e.get('unusable', 0)} unusable, {e.get('judge_failures', 0)} judge failures"
            for a, e in ((a, bench["privacyalign"][a]) for a in agents)
        )
        columns = [
            (f"{a}: {grader}", grader, bench["privacyalign"][a]) for a in agents for grader in ("judge", "oracle")
        ]
        parts.append(
            f"## PrivacyAlign{note}\n\nUnusable = not a valid call of the expected tool, reported on its own. "
            "*Among usable* rates count usable answers the grader graded; the *paper* convention counts an unusable "
            "answer (or a failed judgement) as both a leak and an omission. The oracle grades rows with ground "
            f"truth only and is not the reward source.\n\n{counts}.\n\n" + split_rate_table(columns, _with_std)
        )
    if "privacylens" in bench:
        rows = [
            [
                a,
                str(e["n"]),
                fmt(e["unusable_rate"]),
                fmt(e["leak_among_usable"]),
                fmt(e["leak_paper"]),
                fmt(e["secret_leak_among_usable"]),
                fmt(e["helpfulness_mean"], percent=False),
                fmt(e["helpful_rate"]),
                fmt(e["adjusted_leak_rate"]),
            ]
            for a, e in ((a, bench["privacylens"][a]) for a in agents)
        ]
        parts.append(
            "## PrivacyLens\n\nA case leaks if any of its secrets leaks. Unusable = no tool call (or a prompt too "
            'long for the agent\'s window), judged by nobody: it is never counted as "no leak". *Paper* leak counts '
            "an unusable case as a leak; adjusted leak = leak rate among helpful (helpfulness ≥ 2) cases.\n\n"
            + markdown_table(
                [
                    "agent",
                    "cases",
                    "unusable",
                    "leak among usable",
                    "leak, paper",
                    "secret leak among usable",
                    "helpfulness (0-3)",
                    "helpful",
                    "adjusted leak",
                ],
                rows,
            )
        )
    if "confaide" in bench:
        rows = []
        for a in agents:
            for qtype, e in sorted(bench["confaide"][a].items()):
                rows.append(
                    [
                        a,
                        qtype,
                        str(e["n"]),
                        fmt(e.get("leaks_rate")),
                        fmt(e.get("leaks_worst_case")),
                        fmt(e.get("omits_rate")),
                        fmt(e.get("error_rate")),
                    ]
                )
        parts.append(
            "## ConfAIde (tiers 3-4, string match)\n\nTier 3 leaks when the answer names the subject agent; tier 4 "
            "leaks when it contains the private info and omits when it lacks the public info. Worst case = "
            "fraction of scenarios where any sample leaks.\n\n"
            + markdown_table(["agent", "question", "n", "leak", "leak (worst case)", "omit public", "error"], rows)
        )
    if len(agents) == 2:
        parts.append(_delta_section(summary))
    charts = summary.get("charts", [])
    if charts:
        parts.append("## Charts\n\n" + "".join(f"![{Path(c).stem}]({c})\n\n" for c in charts))
    return "\n".join(parts)


def _delta_section(summary: dict[str, Any]) -> str:
    before, after = summary["agents"]
    rows = []
    for benchmark, metrics in CHART_METRICS.items():
        if benchmark not in summary["benchmarks"]:
            continue
        for key, label in metrics:
            a = lookup(summary["benchmarks"][benchmark][before], key)
            b = lookup(summary["benchmarks"][benchmark][after], key)
            delta = None if a is None or b is None else f"{100 * (b - a):+.1f} pts"
            rows.append([benchmark, label, fmt(a), fmt(b), delta or "n/a"])
    return f"## `{before}` → `{after}`\n\n" + markdown_table(["benchmark", "metric", before, after, "change"], rows)


def plot_evaluate(summary: dict[str, Any], run_dir: Path) -> list[str]:
    """`rates.png` (one panel per benchmark, one bar per agent) and, for two agents, `before_after.png`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agents: list[str] = summary["agents"]
    benches = [b for b in CHART_METRICS if b in summary["benchmarks"]]
    if not benches:
        return []
    fig, axes = plt.subplots(1, len(benches), figsize=(4.5 * len(benches), 3.6), squeeze=False)
    width = 0.8 / len(agents)
    for ax, bench in zip(axes[0], benches, strict=True):
        metrics = CHART_METRICS[bench]
        for i, agent in enumerate(agents):
            values = [lookup(summary["benchmarks"][bench][agent], key) for key, _ in metrics]
            xs = [j + (i - (len(agents) - 1) / 2) * width for j in range(len(metrics))]
            # An undefined rate (None) draws no bar: a 0 % bar would read as a measured zero.
            ax.bar(xs, [math.nan if v is None else 100 * v for v in values], width, label=agent)
        ax.set_xticks(range(len(metrics)), [label for _, label in metrics], rotation=20)
        ax.set_ylim(0, 100)
        ax.set_ylabel("%")
        ax.set_title(bench)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    names = ["rates.png"]
    fig.savefig(run_dir / "rates.png", dpi=110)
    plt.close(fig)
    if len(agents) == 2:
        labels, deltas = [], []
        for bench in benches:
            for key, label in CHART_METRICS[bench]:
                a = lookup(summary["benchmarks"][bench][agents[0]], key)
                b = lookup(summary["benchmarks"][bench][agents[1]], key)
                if a is not None and b is not None:
                    labels.append(f"{bench}: {label}")
                    deltas.append(100 * (b - a))
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(labels) + 1.5))
        ax.barh(labels, deltas, color=["tab:green" if d <= 0 else "tab:red" for d in deltas])
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel(f"change in points, {agents[0]} → {agents[1]}")
        ax.invert_yaxis()
        fig.tight_layout()
        fig.savefig(run_dir / "before_after.png", dpi=110)
        plt.close(fig)
        names.append("before_after.png")
    return names


def write_report(summary: dict[str, Any], run_dir: Path) -> list[Path]:
    """Charts, then `summary.json` (listing the charts), then `report.md`; returns the written paths."""
    if summary["job"] == "judge-eval":
        # Imported here: that module builds on this one's table helpers.
        from jobs.evaluation.judge_eval_report import plot_confusions, render_judge_eval_markdown

        charts, render = plot_confusions(summary, run_dir), render_judge_eval_markdown
    else:
        charts, render = plot_evaluate(summary, run_dir), render_evaluate_markdown
    for chart in charts:
        os.chmod(run_dir / chart, 0o600)
    summary = {**summary, "charts": charts}
    paths = [write_json(run_dir / "summary.json", summary)]
    report = run_dir / "report.md"
    report.write_text(render(summary))
    os.chmod(report, 0o600)
    return paths + [report] + [run_dir / c for c in charts]
