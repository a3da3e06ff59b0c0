"""Per-item result records → the `summary.json` of an evaluate run (one entry per benchmark and agent).

Records are what `items.jsonl` holds (ids, flags, statuses; no text), so a resumed or finished run
can always be re-summarised from its file alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jobs.evaluation import confaide
from jobs.evaluation.metrics import (
    GradedAnswer,
    LeakOmit,
    LensCase,
    judge_leak_omit,
    privacylens_rates,
    repeated_judging_rates,
    split_rates,
)


def graded_answers(records: Sequence[dict[str, Any]], judge_sample: int) -> list[GradedAnswer]:
    """The records as :class:`GradedAnswer` under judge sample `judge_sample`.

    Record fields: `usable`, `verdicts` (one `{leaks, omits, status}` per judge sample), and from
    generated rows `ground_truth` (bool) and `oracle` (`{leaks, omits}` of a usable answer, else None).
    """
    out = []
    for r in records:
        v, oracle = r["verdicts"][judge_sample], r.get("oracle")
        out.append(
            GradedAnswer(
                usable=r["usable"],
                judge=judge_leak_omit(v["leaks"], v["omits"], v["status"]) if r["usable"] else None,
                has_ground_truth=r.get("ground_truth", False),
                oracle=LeakOmit(oracle["leaks"], oracle["omits"]) if oracle is not None else None,
            )
        )
    return out


def summarize_privacyalign(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """:func:`split_rates` per judge sample, then mean ± std across judge samples, plus counts."""
    k = min((len(r["verdicts"]) for r in records), default=0)
    out = repeated_judging_rates([split_rates(graded_answers(records, j)) for j in range(k)])
    out["n"] = len(records)
    out["unusable"] = sum(not r["usable"] for r in records)
    out["judge_failures"] = sum(v["status"] not in ("ok", "not_judged") for r in records for v in r["verdicts"])
    return out


def summarize_privacylens(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Unusable rate, leak among usable cases and under the paper's convention, helpfulness, adjusted leak.

    An unusable action is judged by nobody (as upstream); it counts as unusable, never as "no leak".
    """
    cases = [
        LensCase(tuple(r["secret_leaks"]), r["helpfulness"])
        if r["usable"]
        else LensCase((False,) * len(r["secret_leaks"]), 0, usable=False)
        for r in records
    ]
    out = privacylens_rates(cases)
    out["unusable"] = sum(not r["usable"] for r in records)
    out["judge_failures"] = sum(s != "ok" for r in records if r["usable"] for s in r["judge_statuses"])
    return out


SUMMARIZERS = {
    "privacyalign": summarize_privacyalign,
    "privacylens": summarize_privacylens,
    "confaide": confaide.summarize,
}


def summarize_evaluate(records: Sequence[dict[str, Any]], agents: Sequence[str], benchmarks: Sequence[str]) -> dict:
    """The evaluate summary: `benchmarks[benchmark][agent]` → that benchmark's metrics."""
    out: dict[str, Any] = {"job": "evaluate", "agents": list(agents), "benchmarks": {}}
    for benchmark in benchmarks:
        out["benchmarks"][benchmark] = {
            agent: SUMMARIZERS[benchmark]([r for r in records if r["benchmark"] == benchmark and r["agent"] == agent])
            for agent in agents
        }
    return out
