"""Per-item result records → the `summary.json` of an evaluate run (one entry per benchmark and agent).

Records are what `items.jsonl` holds (ids, flags, statuses; no text), so a resumed or finished run
can always be re-summarised from its file alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jobs.evaluation import confaide
from jobs.evaluation.metrics import LensCase, effective_verdict, privacylens_rates, repeated_judging_rates


def summarize_privacyalign(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Leak/omit/clean over items, per judge sample, then mean ± std across judge samples.

    Record fields: `usable` (the answer is a tool call of the expected action) and `verdicts`, one
    `{leaks, omits, status}` per judge sample.
    """
    k = min((len(r["verdicts"]) for r in records), default=0)
    samples = [
        [
            effective_verdict(v["leaks"], v["omits"], status=v["status"], usable=r["usable"])
            for r in records
            for v in (r["verdicts"][j],)
        ]
        for j in range(k)
    ]
    out = repeated_judging_rates(samples) if samples else {"judge_samples": 0, "n": len(records)}
    out["unusable"] = sum(not r["usable"] for r in records)
    out["judge_failures"] = sum(v["status"] not in ("ok", "not_judged") for r in records for v in r["verdicts"])
    return out


def summarize_privacylens(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Case leak, adjusted leak and helpfulness; an unusable action is judged by neither, as upstream:
    it leaks nothing and scores helpfulness 0."""
    cases = [
        LensCase(tuple(r["secret_leaks"]), r["helpfulness"])
        if r["usable"]
        else LensCase((False,) * len(r["secret_leaks"]), 0)
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
