"""`privacyalign evaluate` end to end: the tiny model on vLLM rollout actors, the offline judge, all three
benchmarks on a few fixture items, and resume (one engine for the whole module)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from jobs import evaluate

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.mark.timeout(240)
def test_evaluate_tiny_model_all_benchmarks_and_resume(tmp_path, tiny_model_dir):
    import ray

    run_dir = tmp_path / "eval"
    run_dir.mkdir(mode=0o700)
    # A record left by an interrupted earlier run: the rerun must skip this item, not redo it.
    label = Path(tiny_model_dir).name
    done = {"agent": label, "benchmark": "confaide", "item_id": "confaide/t3-0", "group_id": "t3-0", "sample": 0,
            "question_type": "free-response", "tier": 3, "flags": {"leaks": True}}  # fmt: skip
    (run_dir / "items.jsonl").write_text(json.dumps(done) + "\n")
    (run_dir / "config.yaml").write_text("")  # an empty saved config: defaults + the flags below
    argv = [
        "--resume", str(run_dir), "--agent", f"hf:{tiny_model_dir}",
        "--benchmark", "privacyalign", "--benchmark", "privacylens", "--benchmark", "confaide",
        "--data", f"privacylens={FIXTURES / 'privacylens' / 'culturebank_subset.json'}",
        "--data", f"confaide={FIXTURES / 'confaide'}",
        "--max-items", "2", "--judge-samples", "2",
        "eval.max_tokens=96", "eval.chunk_items=4", "rollout.prompt_overflow=truncate_left", "cluster.num_cpus=2",
    ]  # fmt: skip
    try:
        assert evaluate.main(argv) == 0
    finally:
        ray.shutdown()
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    records = [json.loads(line) for line in (run_dir / "items.jsonl").read_text().splitlines()]
    ids = [r["item_id"] for r in records]
    # 2 PrivacyAlign rows + 2 PrivacyLens cases + ConfAIde: 2 stories + 2 meetings x 2 questions; t3-0 kept as is.
    assert len(ids) == len(set(ids)) == 2 + 2 + 2 + 4
    assert records[0] == done
    assert all("answer" not in r and "prompt" not in r for r in records)  # no text unless opted in
    pa = [r for r in records if r["benchmark"] == "privacyalign"]
    assert all(len(r["verdicts"]) == 2 for r in pa)
    summary = json.loads((run_dir / "summary.json").read_text())
    entry = summary["benchmarks"]["privacyalign"][label]
    assert entry["n"] == 2 and entry["judge_samples"] == 2
    assert entry["judge/leak_paper"] + entry["judge/clean_paper"] <= 1.0 + 1e-9
    assert entry["oracle/samples"] == 2 and entry["unusable_rate"] is not None
    assert summary["benchmarks"]["privacylens"][label]["n"] == 2
    assert summary["benchmarks"]["confaide"][label]["free-response"]["n"] == 2
    report = (run_dir / "report.md").read_text()
    for heading in ("## PrivacyAlign", "## PrivacyLens", "## ConfAIde"):
        assert heading in report
    assert (run_dir / "rates.png").read_bytes()[:4] == b"\x89PNG"
