"""Rule 1 of docs/architecture.md §3, checked on the source: no judge code can read generated ground truth.

A judge that reads `sensitive_facts` or calls the oracle is an oracle in disguise, and the rates a run
reports would then grade the reward source with itself.
"""

from __future__ import annotations

import re
from pathlib import Path

from scenarios.schema import GROUND_TRUTH_FIELDS

JUDGE_DIR = Path(__file__).resolve().parents[2] / "judge"


def _offenders(source: str) -> list[str]:
    fields = "|".join(name for name in GROUND_TRUTH_FIELDS if name != "split")
    pattern = re.compile(rf"\.({fields})\b|[\"']({fields})[\"']|scenarios\.oracle|oracle_verdict")
    return [line.strip() for line in source.splitlines() if pattern.search(line)]


def test_the_check_can_fail() -> None:
    assert _offenders("x = row.sensitive_facts") and _offenders('getattr(row, "relevant_facts")')
    assert _offenders("from scenarios.oracle import oracle_verdict")
    assert not _offenders("It never reads `sensitive_facts` (docstring).")


def test_no_judge_module_reads_ground_truth_or_calls_the_oracle() -> None:
    found = {str(p.relative_to(JUDGE_DIR.parent)): _offenders(p.read_text("utf-8")) for p in JUDGE_DIR.rglob("*.py")}
    assert not {path: lines for path, lines in found.items() if lines}
