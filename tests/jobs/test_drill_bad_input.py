"""Drill: bad input through the `privacyalign train` CLI is a clear message and exit code 2, not a traceback.

Data errors are found before Ray, the engines or the tiny model start, so these tests are cheap;
they also check that nothing was started. The loader's own error details are tested in
tests/scenarios/test_scenario_loading.py; here the point is what a user sees from the job.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray

from jobs.train import main
from scenarios.config import bundled_scenarios_path


@pytest.fixture()
def good_rows() -> list[dict]:
    lines = bundled_scenarios_path().read_text(encoding="utf-8").splitlines()[:3]
    return [json.loads(line) for line in lines]


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch):
    """Bad input must stop the job before any cluster starts; a test that got this far fails fast."""

    def refuse(*args, **kwargs):
        raise AssertionError("the train job tried to start Ray despite bad input")

    monkeypatch.setattr("jobs.training.session.connect", refuse)


def _train(tmp_path: Path, capsys, *overrides: str) -> tuple[int, str]:
    rc = main(["--run-dir", str(tmp_path / "run"), *overrides])
    err = capsys.readouterr().err
    assert not ray.is_initialized(), "a data or config error must be reported before Ray starts"
    return rc, err


def _write(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_malformed_jsonl_line_names_file_and_line(tmp_path, capsys, good_rows):
    source = _write(tmp_path / "bad.jsonl", [json.dumps(good_rows[0]), '{"id": "x", oops}'])
    rc, err = _train(tmp_path, capsys, f"data.source={source}")
    assert rc == 2
    assert f"{source}:2: field '<row>': malformed JSON" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("edit", "field", "reason"),
    [
        (lambda row: row.pop("annotations"), "annotations", "missing required field"),
        (lambda row: row.update(memories="not a list"), "memories", "expected list, got str"),
        (lambda row: row["response_b"].update(tool_name=7), "response_b.tool_name", "expected str, got int"),
    ],
    ids=["missing", "mistyped", "mistyped-nested"],
)
def test_missing_or_mistyped_field_names_file_line_and_field(tmp_path, capsys, good_rows, edit, field, reason):
    edit(good_rows[2])
    source = _write(tmp_path / "rows.jsonl", [json.dumps(row) for row in good_rows])
    rc, err = _train(tmp_path, capsys, f"data.source={source}")
    assert rc == 2
    assert f"{source}:3: field '{field}': {reason}" in err


def test_empty_dataset_and_missing_file(tmp_path, capsys):
    source = _write(tmp_path / "empty.jsonl", [""])
    rc, err = _train(tmp_path, capsys, f"data.source={source}")
    assert rc == 2 and "the dataset is empty" in err

    rc, err = _train(tmp_path, capsys, f"data.source={tmp_path / 'nowhere.jsonl'}")
    assert rc == 2 and "nowhere.jsonl" in err and "Traceback" not in err


def test_split_with_no_training_rows(tmp_path, capsys):
    # Rows that all belong to the dev split leave nothing to train on.
    lines = bundled_scenarios_path().read_text(encoding="utf-8").splitlines()
    dev_rows = [line for line in lines if json.loads(line)["split"] == "dev"][:2]
    source = _write(tmp_path / "dev_only.jsonl", dev_rows)
    rc, err = _train(tmp_path, capsys, f"data.source={source}")
    assert rc == 2 and "data.split='train' selects none of the 2 rows" in err


def test_training_rows_without_a_judge_canary(tmp_path, capsys, good_rows):
    # Every annotator flags a leak in both references: no row has a known winner to test the judge with.
    for row in good_rows:
        for annotation in row["annotations"]:
            annotation["response_a_labels"]["leaks"] = annotation["response_b_labels"]["leaks"] = True
    source = _write(tmp_path / "no_canaries.jsonl", [json.dumps({**row, "split": "train"}) for row in good_rows])
    rc, err = _train(tmp_path, capsys, f"data.source={source}")
    assert rc == 2 and "trainer.canary_pairs_per_step=2: none of the 3 training rows" in err
    # Without canaries the same rows pass the data checks (and the job goes on to start Ray).
    with pytest.raises(AssertionError, match="tried to start Ray"):
        main(["--run-dir", str(tmp_path / "run"), f"data.source={source}", "trainer.canary_pairs_per_step=0"])


def test_invalid_config_lists_every_error_at_once(tmp_path, capsys):
    rc, err = _train(
        tmp_path,
        capsys,
        "judge.reward_mode=peer_pairwise",
        "rollout.samples_per_prompt=1",
        "rollout.dtype=bfloat16",
        "rollout.temperature=0",
    )
    assert rc == 2
    assert "3 config error(s)" in err
    assert (
        "samples_per_prompt >= 2" in err
        and "SIGILL" in err
        and "rollout.temperature=0 (greedy) cannot be trained on" in err
    )
    assert not (tmp_path / "run").exists(), "config errors are reported before the run directory is made"


def test_run_stopped_for_skipped_steps_exits_1_with_why(tmp_path, capsys, monkeypatch):
    from jobs.training.loop import TooManySkippedSteps

    def judge_fails_every_step(*args, **kwargs):
        raise TooManySkippedSteps("stopping after 3 steps in a row skipped")

    monkeypatch.setattr("jobs.train.run", judge_fails_every_step)
    rc, err = _train(tmp_path, capsys)
    assert rc == 1 and "privacyalign train: stopping after 3 steps in a row skipped" in err
