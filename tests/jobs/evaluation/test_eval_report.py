"""Report files: summary.json, report.md tables and PNG charts, rendered from hand-made summaries."""

from __future__ import annotations

import json
import stat

from jobs.evaluation.metrics import agreement
from jobs.evaluation.records import ResultStore, make_run_dir
from jobs.evaluation.report import fmt, markdown_table, write_report


def _evaluate_summary() -> dict:
    pa = {
        "n": 4,
        "judge_samples": 1,
        "unusable": 1,
        "samples": 4.0,
        "unusable_rate": 0.25,
        "judge/leak_among_usable": 1 / 3,
        "judge/omit_among_usable": 0.0,
        "judge/clean_among_usable": 2 / 3,
        "judge/failed_rate": 0.0,
        "judge/leak_paper": 0.5,
        "judge/omit_paper": 0.25,
        "judge/clean_paper": 0.5,
        "oracle/samples": 4.0,
        "oracle/leak_among_usable": 2 / 3,
        "oracle/omit_among_usable": 0.0,
        "oracle/clean_among_usable": 1 / 3,
        "oracle/leak_paper": 0.75,
        "oracle/omit_paper": 0.25,
        "oracle/clean_paper": 0.25,
    }
    pa_after = {**pa, "judge/leak_among_usable": 0.25, "oracle/samples": 0.0, "unusable": 0}
    lens = {
        "n": 2,
        "n_usable": 0,
        "unusable_rate": 1.0,
        "leak_among_usable": None,
        "leak_paper": 1.0,
        "secret_leak_among_usable": None,
        "helpfulness_mean": 0.0,
        "helpful_rate": 0.0,
        "adjusted_leak_rate": None,
        "n_helpful": 0,
    }
    conf = {"free-response": {"n": 2, "leaks_rate": 0.5, "leaks_worst_case": 0.5}}
    return {
        "job": "evaluate",
        "agents": ["before", "after"],
        "benchmarks": {
            "privacyalign": {"before": pa, "after": pa_after},
            "privacylens": {"before": lens, "after": lens},
            "confaide": {"before": conf, "after": conf},
        },
    }


def test_markdown_helpers():
    assert fmt(0.125) == "12.5 %" and fmt(None) == "n/a" and fmt(0.5, percent=False) == "0.500" and fmt(3) == "3"
    assert markdown_table(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |\n"


def test_evaluate_report_files_and_tables(tmp_path):
    run_dir = make_run_dir(tmp_path / "run")
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    paths = write_report(_evaluate_summary(), run_dir)
    assert {p.name for p in paths} == {"summary.json", "report.md", "rates.png", "before_after.png"}
    for p in paths:
        assert p.stat().st_size > 0 and stat.S_IMODE(p.stat().st_mode) == 0o600
    assert (run_dir / "rates.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["charts"] == ["rates.png", "before_after.png"]
    report = (run_dir / "report.md").read_text()
    assert "| metric | before: judge | before: oracle | after: judge | after: oracle |" in report
    assert "| unusable | 25.0 % | 25.0 % | 25.0 % | n/a |" in report  # after: no ground truth → oracle n/a
    assert "| leak among usable | 33.3 % | 66.7 % | 25.0 % | n/a |" in report
    assert "| judge failed among usable | 0.0 % | — | 0.0 % | — |" in report
    assert "| leak, paper (unusable/failed = leak+omit) | 50.0 % | 75.0 % | 50.0 % | n/a |" in report
    assert "`before`: 4 answers, 1 unusable, 0 judge failures" in report
    # PrivacyLens with every case unusable: leak among usable is undefined, never 0.
    assert "| after | 2 | 100.0 % | n/a | 100.0 % | n/a | 0.000 | 0.0 % | n/a |" in report
    assert "| privacyalign | judge leak (usable) | 33.3 % | 25.0 % | -8.3 pts |" in report  # before → after
    assert "![rates](rates.png)" in report


def test_judge_eval_report_with_confusion_matrices(tmp_path):
    human = [True, True, False, False]
    entry = {
        "leaks": agreement(human, [True, False, False, False]),
        "omits": agreement([False] * 4, [False] * 4),
        "preference": {"n": 2, "pearson": 1.0, "spearman": 1.0},
    }
    oracle_entry = {
        "candidates": 4,
        "statuses": {"parse_error": 1, "ok": 3},
        "leaks": agreement(human, [True, True, True, False]),
        "omits": agreement(human, [True, True, False, False]),
        "edits": {
            "candidates": 2,
            "leaks": agreement(human[:2], [True, True]),
            "omits": agreement(human[:2], [True, True]),
        },
        "by_kind": {
            "alias_leak": {
                "n": 4,
                "oracle_leaks_rate": 1.0,
                "judge_leaks_rate": 0.25,
                "oracle_omits_rate": 0.0,
                "judge_omits_rate": 0.0,
            }
        },
    }
    summary = {
        "job": "judge-eval",
        "rows": 3,
        "split": "all",
        "human": {"rows": 2, "responses": 4, "backends": {"offline": {"with_annotations": entry}}},
        "oracle": {
            "rows": 1,
            "rows_without_candidates": 0,
            "candidates": 4,
            "kinds": {"alias_leak": 4},
            "backends": {"offline": {"with_annotations": oracle_entry}},
        },
    }
    paths = write_report(summary, make_run_dir(tmp_path))
    assert {p.name for p in paths} == {"summary.json", "report.md", "confusion.png"}
    report = (tmp_path / "report.md").read_text()
    assert "| offline | with_annotations | 75.0 % | 0.500 | 100.0 % | n/a | 1.000 | 1.000 | 0 |" in report
    assert "| offline | with_annotations | all | 4 | 75.0 % | 0.500 | 100.0 % | 1.000 | ok 3, parse_error 1 |" in report
    assert "| offline | with_annotations | edits | 2 | 100.0 % | n/a | 100.0 % | n/a |  |" in report
    assert "| offline | with_annotations | alias_leak | 4 | 100.0 % | 25.0 % | 0.0 % | 0.0 % |" in report
    assert "**human / offline / with_annotations / leaks**" in report
    assert "| human \\ judge | no | yes |" in report and "| oracle \\ judge | no | yes |" in report
    assert "| yes | 1 | 1 |" in report  # human leaks: fn=1, tp=1


def test_result_store_appends_skips_done_and_drops_text(tmp_path):
    store = ResultStore(tmp_path)
    store.append([{"agent": "a", "item_id": "x/1", "answer": "secret text", "leaks": True}])
    store.append([{"agent": "a", "item_id": "x/2", "prompt": "p"}])
    with store.path.open("a") as fh:
        fh.write('{"agent": "a", "item_id": "x/3"')  # a write cut short by a kill
    assert store.done_keys() == {("a", "x/1"), ("a", "x/2")}
    assert "secret text" not in store.path.read_text()
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    store.append([{"agent": "a", "item_id": "x/4"}])  # after the cut line, on a line of its own
    assert store.done_keys() == {("a", "x/1"), ("a", "x/2"), ("a", "x/4")}
    (tmp_path / "opted").mkdir()
    opted_in = ResultStore(tmp_path / "opted", enable_scenario_text=True)
    opted_in.append([{"agent": "a", "item_id": "x/1", "answer": "kept"}])
    assert "kept" in opted_in.path.read_text()
