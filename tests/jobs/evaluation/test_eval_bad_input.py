"""Bad data through `evaluate`, `judge-eval` and `serve-judge` is a clear message and exit 2, before Ray or a run dir.

Each job would start Ray here (an `hf:` agent, the judge pool), so a test that gets past data loading
fails fast instead of starting a cluster.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray

from jobs import evaluate, judge_eval

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the job tried to start Ray despite bad input")

    monkeypatch.setattr("cluster.connect.connect", refuse)


@pytest.fixture()
def bad_rows(tmp_path: Path) -> Path:
    """The fixture rows with row 2's annotations turned into a string."""
    rows = [json.loads(line) for line in (FIXTURES / "privacyalign" / "example_rows.jsonl").read_text().splitlines()]
    rows[1]["annotations"] = "none"
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _check(rc: int, err: str, run_dir: Path, where: str) -> None:
    assert rc == 2
    assert where in err and "Traceback" not in err
    assert not ray.is_initialized() and not run_dir.exists()


def test_evaluate_bad_privacyalign_row(tmp_path, capsys, bad_rows):
    run_dir = tmp_path / "run"
    rc = evaluate.main(["--agent", "hf:/ckpt", "--data", str(bad_rows), "--run-dir", str(run_dir)])
    _check(rc, capsys.readouterr().err, run_dir, f"data: {bad_rows}:2: field 'annotations': expected list")


def test_evaluate_bad_confaide_and_privacylens_files(tmp_path, capsys):
    run_dir = tmp_path / "run"
    confaide = tmp_path / "confaide"
    confaide.mkdir()
    lines = (FIXTURES / "confaide" / "tier_3.jsonl").read_text().splitlines()
    (confaide / "tier_3.jsonl").write_text("\n".join([lines[0], lines[1][:-5]]) + "\n")  # line 2 cut short
    argv = ["--agent", "hf:/ckpt", "--benchmark", "confaide", "--data", str(confaide), "--run-dir", str(run_dir)]
    _check(evaluate.main(argv), capsys.readouterr().err, run_dir, f"{confaide / 'tier_3.jsonl'}:2: malformed JSON")

    lens = tmp_path / "lens.json"
    lens.write_text((FIXTURES / "privacylens" / "confide_subset.json").read_text()[:-20])
    argv = ["--agent", "hf:/ckpt", "--benchmark", "privacylens", "--data", str(lens), "--run-dir", str(run_dir)]
    _check(evaluate.main(argv), capsys.readouterr().err, run_dir, f"{lens}:")


def test_judge_eval_bad_row(tmp_path, capsys, bad_rows):
    run_dir = tmp_path / "run"
    rc = judge_eval.main(["--data", str(bad_rows), "--run-dir", str(run_dir), "eval.enable_judge_pool=true"])
    _check(rc, capsys.readouterr().err, run_dir, f"data: {bad_rows}:2: field 'annotations': expected list")


def test_serve_judge_bad_row(tmp_path, capsys, bad_rows):
    from jobs import serve_judge

    rc = serve_judge.main([f"data.source={bad_rows}"])
    _check(rc, capsys.readouterr().err, tmp_path / "no-run-dir", f"{bad_rows}:2: field 'annotations': expected list")
