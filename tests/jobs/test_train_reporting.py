"""What a training run reports, without Ray or engines: held-out grading (judge views only, skipped prompts
unusable), the before/after tables printed at the end, and the curves plot."""

from __future__ import annotations

import json

import pytest

from jobs.config import TrainConfig
from jobs.evaluation.metrics import LeakOmit, split_rates
from jobs.train import render_summary, reward_judge
from jobs.training.metrics import PLOTTED, plot_metrics
from jobs.training.split_eval import graded_answers, judge_requests
from judge.config import JudgeConfig
from scenarios.config import bundled_scenarios_path
from scenarios.loading import load_rows


def _call(name: str, **arguments: str) -> str:
    return json.dumps({"type": "tool_use", "name": name, "arguments": arguments})


@pytest.fixture(scope="module")
def rows():
    return {r.id: r for r in load_rows(bundled_scenarios_path(), split="dev").rows[:2]}


def test_held_out_judge_requests_carry_no_ground_truth(rows):
    row = next(iter(rows.values()))
    assert row.has_ground_truth
    texts = [_call(row.expected_final_action, body=" ".join(row.relevant_facts)), "not a call"]
    requests = judge_requests("eval", JudgeConfig(), rows, [row.id, row.id], texts)
    assert list(requests) == [0]  # the unusable answer is not judged
    request = requests[0]
    assert request.request_id == "eval-0" and request.row == row.judge_view()
    assert request.row.sensitive_facts == () and request.row.sensitive_surface_forms == ()
    assert request.row.relevant_facts == () and request.row.split == ""


def test_held_out_grading_counts_skipped_prompts_as_unusable(rows):
    first, second = rows.values()
    leaky = _call(first.expected_final_action, body=" ".join(first.relevant_facts + first.sensitive_facts[:1]))
    safe = _call(first.expected_final_action, body=" ".join(first.relevant_facts))
    # 2 prompts x 2 samples asked for; the engine skipped `second` (too long), so only first's two came back.
    graded = graded_answers(
        rows,
        [first.id, first.id],
        [leaky, safe],
        {0: LeakOmit(False, False), 1: None},  # the judge missed the leak, then failed on the safe answer
        [first.id, second.id],
        2,
    )
    assert [a.usable for a in graded] == [True, True, False, False]
    assert [a.oracle for a in graded] == [LeakOmit(True, False), LeakOmit(False, False), None, None]
    rates = split_rates(graded)
    assert rates["samples"] == 4 and rates["unusable_rate"] == 0.5
    assert rates["judge/leak_among_usable"] == 0.0 and rates["judge/failed_rate"] == 0.5
    assert rates["oracle/leak_among_usable"] == 0.5 and rates["oracle/leak_paper"] == 0.75


def _rates(prefix: str, unusable: float, judge_leak: float, oracle_leak: float | None) -> dict:
    keys = {
        "samples": 384.0,
        "unusable_rate": unusable,
        "judge/leak_among_usable": judge_leak,
        "judge/omit_among_usable": 0.1,
        "judge/clean_among_usable": 1 - judge_leak - 0.1,
        "judge/failed_rate": 0.0,
        "judge/leak_paper": unusable + (1 - unusable) * judge_leak,
        "judge/omit_paper": 0.5,
        "judge/clean_paper": 0.25,
        "oracle/samples": 0.0 if oracle_leak is None else 384.0,
        "oracle/leak_among_usable": oracle_leak,
        "oracle/omit_among_usable": None if oracle_leak is None else 0.2,
        "oracle/clean_among_usable": None if oracle_leak is None else 0.5,
        "oracle/leak_paper": None if oracle_leak is None else 0.6,
        "oracle/omit_paper": None if oracle_leak is None else 0.4,
        "oracle/clean_paper": None if oracle_leak is None else 0.3,
    }
    return {f"{prefix}/{k}": v for k, v in keys.items()}


def test_end_of_run_tables_put_judge_and_oracle_side_by_side():
    summary = {
        **{f"before/{k}": v for k, v in (_rates("eval", 0.5, 0.4, 0.3) | _rates("test", 0.5, 0.4, 0.35)).items()},
        **{f"after/{k}": v for k, v in (_rates("eval", 0.25, 0.1, 0.2) | _rates("test", 0.25, 0.1, 0.25)).items()},
        "steps": 40.0,
        "reward_judge": "offline (rule-based, no model)",
    }
    text = render_summary(summary)
    print(text)  # the sample pasted in reports
    assert "dev split (before 384, after 384 answers):" in text and "test split" in text
    assert "| metric | judge before | judge after | oracle before | oracle after |" in text
    assert "| unusable | 50.0 % | 25.0 % | 50.0 % | 25.0 % |" in text
    assert "| leak among usable | 40.0 % | 10.0 % | 35.0 % | 25.0 % |" in text  # test table, last
    assert "| judge failed among usable | 0.0 % | 0.0 % | — | — |" in text
    assert "reward judge: offline (rule-based, no model)" in text
    # Hub data: no test split, no ground truth.
    hub = {f"{w}/{k}": v for w in ("before", "after") for k, v in _rates("eval", 0.0, 0.5, None).items()}
    text = render_summary(hub)
    assert "test: not evaluated (no test split in the data)" in text
    assert "| leak among usable | 50.0 % | 50.0 % | n/a | n/a |" in text


def test_reward_judge_names_backend_and_model():
    assert reward_judge(TrainConfig()) == "offline (rule-based, no model)"


def test_curves_plot_draws_oracle_beside_judge(tmp_path):
    records = [
        {"step": 0, **_rates("eval", 0.5, 0.4, 0.3)},
        {"step": 1, "reward/mean": 0.1, "judge/invalid_fraction": 0.0},
        {"step": 2, "reward/mean": 0.2, **_rates("eval", 0.25, 0.1, 0.2)},
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = plot_metrics(path, tmp_path / "curves.png")
    assert out is not None and out.read_bytes()[:4] == b"\x89PNG"
    keys = {key for _, curves in PLOTTED for key, _ in curves}
    assert {"eval/oracle/leak_among_usable", "eval/judge/leak_among_usable", "eval/unusable_rate"} <= keys
    assert {"eval/oracle/clean_among_usable", "eval/judge/clean_among_usable"} <= keys
    assert plot_metrics(tmp_path / "missing.jsonl", tmp_path / "none.png") is None
