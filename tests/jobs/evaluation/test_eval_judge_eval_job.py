"""`privacyalign judge-eval` end to end with the offline backend on the bundled dev rows (no model, no Ray)."""

from __future__ import annotations

import json
import stat

from jobs import judge_eval


def test_judge_eval_offline_annotations_beat_plain_judge(tmp_path, capsys):
    run_dir = tmp_path / "je"
    assert judge_eval.main(["--run-dir", str(run_dir)]) == 0
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    for name in ("summary.json", "report.md", "confusion.png", "items.jsonl", "config.yaml"):
        assert (run_dir / name).stat().st_size > 0, name
    summary = json.loads((run_dir / "summary.json").read_text())
    offline = summary["backends"]["offline"]
    with_ann, without = offline["with_annotations"], offline["without_annotations"]
    # Bundled dev split: 18 rows, each with one leaking and one appropriate reference.
    assert summary["rows"] == 18 and with_ann["leaks"]["n"] == 36
    assert with_ann["leaks"]["kappa"] > without["leaks"]["kappa"]
    assert with_ann["preference"]["pearson"] > without["preference"]["pearson"]
    assert with_ann["judge_failures"] == without["judge_failures"] == 0
    report = (run_dir / "report.md").read_text()
    assert "| offline | with_annotations |" in report and "| offline | without_annotations |" in report
    records = [json.loads(line) for line in (run_dir / "items.jsonl").read_text().splitlines()]
    assert len(records) == 72 and "judge_outputs" not in records[0]  # no text unless opted in
    assert "leak kappa" in capsys.readouterr().out
