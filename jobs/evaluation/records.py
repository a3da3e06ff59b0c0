"""What one evaluation item is, and the append-only per-item JSONL that makes a run resumable.

An :class:`EvalItem` is one prompt for the agent under test, built by a benchmark adapter. Its
`payload` (the scenario row, the PrivacyLens case, the ConfAIde story) holds private text: it never
reaches a log line, and the results file only carries it when the user opted in
(`--enable-scenario-text`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

BENCHMARKS = ("privacyalign", "privacylens", "confaide")
# Fields of a result record that carry private text; written only with enable_scenario_text.
TEXT_FIELDS = ("prompt", "answer", "judge_outputs")


@dataclass(frozen=True)
class EvalItem:
    """One agent prompt of one benchmark.

    Attributes:
        item_id: Unique within the run, prefixed by the benchmark (e.g. `confaide/t3-0`).
        benchmark: One of BENCHMARKS.
        group_id: Scenario the item belongs to (ConfAIde aggregates several items per scenario).
        messages: The chat prompt sent to the agent (role/content dicts).
        payload: Benchmark-specific record the scorer needs (ScenarioRow, LensCaseSpec, ConfaideCase).
    """

    item_id: str
    benchmark: str
    group_id: str
    messages: tuple[dict[str, str], ...]
    payload: Any


def make_run_dir(path: str | Path) -> Path:
    """Create the run directory owner-only (0o700): per-item results can hold judge rationales."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


class ResultStore:
    """Append-only `items.jsonl`: one JSON record per finished (agent, item); a rerun skips done pairs.

    Records are appended and flushed as soon as each item is scored, so a killed run loses at most
    the items in flight. A truncated last line (the process died mid-write) is ignored on load.
    """

    def __init__(self, run_dir: Path, *, enable_scenario_text: bool = False):
        self.path = run_dir / "items.jsonl"
        self.enable_scenario_text = enable_scenario_text

    def load(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records = []
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("%s:%d: skipping a truncated record (interrupted write)", self.path, number)
        return records

    def done_keys(self) -> set[tuple[str, str]]:
        return {(r["agent"], r["item_id"]) for r in self.load()}

    def append(self, records: Iterable[dict[str, Any]]) -> int:
        """Append records (text fields dropped unless opted in); returns how many were written."""
        lines = []
        for record in records:
            if not self.enable_scenario_text:
                record = {k: v for k, v in record.items() if k not in TEXT_FIELDS}
            lines.append(json.dumps(record, sort_keys=True) + "\n")
        if lines:
            # A run killed mid-write leaves a line without its newline: start on a fresh line.
            if self.path.exists() and self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n"):
                lines.insert(0, "\n")
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as fh:
                fh.write("".join(lines))
                fh.flush()
                os.fsync(fh.fileno())
        return len(lines)
