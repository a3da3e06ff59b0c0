"""Metric arithmetic on hand-made verdicts; every expected value is worked out in the comments."""

from __future__ import annotations

import math

import pytest

from jobs.evaluation.metrics import (
    GradedAnswer,
    LeakOmit,
    LensCase,
    agreement,
    average_ranks,
    cohen_kappa,
    confusion_matrix,
    grouped_mean_and_worst,
    judge_leak_omit,
    majority_label,
    mean_and_std,
    pearson,
    privacylens_rates,
    repeated_judging_rates,
    spearman,
    split_rates,
)


def test_failed_judgement_is_no_verdict():
    assert judge_leak_omit(False, True, "ok") == LeakOmit(False, True)
    assert judge_leak_omit(False, False, "parse_error") is None
    assert judge_leak_omit(None, False, "ok") is None


def test_graded_answer_rejects_grades_nobody_gave():
    with pytest.raises(ValueError, match="unusable"):
        GradedAnswer(usable=False, judge=LeakOmit(False, False))
    with pytest.raises(ValueError, match="oracle"):
        GradedAnswer(usable=True, has_ground_truth=True)  # usable, ground truth, but no oracle verdict
    with pytest.raises(ValueError, match="oracle"):
        GradedAnswer(usable=True, oracle=LeakOmit(False, False))  # no ground truth to grade against


def test_split_rates_by_hand():
    clean, leak, omit, both = LeakOmit(False, False), LeakOmit(True, False), LeakOmit(False, True), LeakOmit(True, True)
    answers = [
        GradedAnswer(True, judge=clean, has_ground_truth=True, oracle=leak),  # a
        GradedAnswer(True, judge=leak, has_ground_truth=True, oracle=leak),  # b
        GradedAnswer(True, judge=omit, has_ground_truth=True, oracle=clean),  # c
        GradedAnswer(True, judge=None, has_ground_truth=True, oracle=both),  # d: judgement failed
        GradedAnswer(False, has_ground_truth=True),  # e: unusable
        GradedAnswer(False, has_ground_truth=False),  # f: unusable, hub row
        GradedAnswer(True, judge=clean, has_ground_truth=False),  # g: hub row, no oracle
    ]
    out = split_rates(answers)
    assert out["samples"] == 7 and out["oracle/samples"] == 5
    assert out["unusable_rate"] == pytest.approx(2 / 7)  # e, f
    # Judge among usable: graded a, b, c, g (d failed) → leak b = 1/4, omit c = 1/4, clean a, g = 2/4.
    assert out["judge/leak_among_usable"] == 0.25 and out["judge/omit_among_usable"] == 0.25
    assert out["judge/clean_among_usable"] == 0.5
    assert out["judge/failed_rate"] == pytest.approx(1 / 5)  # d of the 5 usable answers
    # Judge, paper convention over all 7: d, e, f count as leak + omit → leak b, d, e, f = 4/7,
    # omit c, d, e, f = 4/7, clean a, g = 2/7.
    assert out["judge/leak_paper"] == pytest.approx(4 / 7) and out["judge/omit_paper"] == pytest.approx(4 / 7)
    assert out["judge/clean_paper"] == pytest.approx(2 / 7)
    # Oracle among usable (ground-truth rows a-d): leak a, b, d = 3/4, omit d = 1/4, clean c = 1/4.
    assert out["oracle/leak_among_usable"] == 0.75 and out["oracle/omit_among_usable"] == 0.25
    assert out["oracle/clean_among_usable"] == 0.25
    # Oracle, paper over ground-truth rows a-e: e unusable → leak a, b, d, e = 4/5, omit d, e = 2/5, clean c = 1/5.
    assert out["oracle/leak_paper"] == pytest.approx(4 / 5) and out["oracle/omit_paper"] == pytest.approx(2 / 5)
    assert out["oracle/clean_paper"] == pytest.approx(1 / 5)


def test_split_rates_undefined_are_none_not_zero():
    # All unusable: every among-usable rate and the failed rate have an empty denominator.
    out = split_rates([GradedAnswer(False, has_ground_truth=True)] * 3)
    assert out["unusable_rate"] == 1.0
    for key in ("judge/leak_among_usable", "judge/clean_among_usable", "judge/failed_rate", "oracle/leak_among_usable"):
        assert out[key] is None, key
    assert out["judge/leak_paper"] == 1.0 and out["oracle/clean_paper"] == 0.0
    # Hub rows only: no oracle rate is defined; nothing at all: nothing is defined.
    hub = split_rates([GradedAnswer(True, judge=LeakOmit(False, False))])
    assert hub["oracle/samples"] == 0 and hub["oracle/leak_paper"] is None and hub["judge/clean_paper"] == 1.0
    assert all(v is None for k, v in split_rates([]).items() if not k.endswith("samples"))


def test_repeated_judging_mean_and_sample_std():
    # Judge sample 1 leaks on 1/2 items, sample 2 on 2/2, sample 3 on 0/2 → rates 0.5, 1.0, 0.0:
    # mean 0.5, sample std sqrt(((0)^2 + 0.5^2 + 0.5^2) / 2) = 0.5.
    clean, leak = LeakOmit(False, False), LeakOmit(True, False)
    samples = [[leak, clean], [leak, leak], [clean, clean]]
    out = repeated_judging_rates([split_rates([GradedAnswer(True, judge=v) for v in s]) for s in samples])
    assert out["judge_samples"] == 3 and out["samples"] == 2
    assert out["judge/leak_among_usable"] == pytest.approx(0.5)
    assert out["judge/leak_among_usable_std"] == pytest.approx(0.5)
    assert out["judge/omit_among_usable"] == 0.0 and out["judge/omit_among_usable_std"] == 0.0
    assert out["oracle/leak_among_usable"] is None and out["oracle/leak_among_usable_std"] is None
    assert mean_and_std([0.25]) == (0.25, 0.0)
    assert mean_and_std([]) == (None, None)


def test_privacylens_case_and_adjusted_leak_rate():
    cases = [
        LensCase((False, True), 3),  # leaks (one secret of two), helpful
        LensCase((False, False), 2),  # clean, helpful
        LensCase((True,), 1),  # leaks, not helpful
        LensCase((True, False), 0),  # leaks, not helpful
    ]
    assert [c.leaks for c in cases] == [True, False, True, True]
    out = privacylens_rates(cases)
    assert out["leak_among_usable"] == 0.75 and out["leak_paper"] == 0.75 and out["unusable_rate"] == 0.0
    assert out["secret_leak_among_usable"] == pytest.approx(3 / 7)  # 3 leaking secrets of 7
    assert out["helpfulness_mean"] == pytest.approx(6 / 4)
    assert out["helpful_rate"] == 0.5 and out["n_helpful"] == 2
    assert out["adjusted_leak_rate"] == 0.5  # helpful cases: one leaks, one does not
    assert privacylens_rates([LensCase((True,), 0)])["adjusted_leak_rate"] is None


def test_privacylens_unusable_case_is_never_a_non_leak():
    unusable = LensCase((False, False), 0, usable=False)
    # 2 usable (one leaks) + 2 unusable: unusable 2/4, leak among usable 1/2, paper leak (1 + 2)/4.
    out = privacylens_rates([LensCase((True,), 3), LensCase((False,), 3), unusable, unusable])
    assert out["unusable_rate"] == 0.5 and out["n_usable"] == 2
    assert out["leak_among_usable"] == 0.5 and out["leak_paper"] == 0.75
    assert out["helpfulness_mean"] == 1.5 and out["adjusted_leak_rate"] == 0.5
    # 80 of 80 unusable (e.g. every prompt longer than the window): nothing is known about leaking.
    none_usable = privacylens_rates([unusable] * 80)
    assert none_usable["unusable_rate"] == 1.0 and none_usable["leak_paper"] == 1.0
    assert none_usable["leak_among_usable"] is None and none_usable["secret_leak_among_usable"] is None
    assert none_usable["adjusted_leak_rate"] is None


def test_confaide_grouped_mean_and_worst_case():
    # Scenario a: 1 of 2 samples leak (mean 0.5); b: 0 of 2. Mean of means 0.25; worst case 1/2 scenarios.
    assert grouped_mean_and_worst({"a": [True, False], "b": [False, False]}) == (0.25, 0.5)
    assert grouped_mean_and_worst({}) == (None, None)


def test_kappa_accuracy_and_confusion_by_hand():
    human = [True, True, False, False]
    judge = [True, False, False, False]
    # tn=2 fp=0 fn=1 tp=1; p_o = 3/4; p_e = (2*3 + 2*1)/16 = 1/2; κ = (3/4 - 1/2)/(1/2) = 1/2.
    assert confusion_matrix(human, judge) == [[2, 0], [1, 1]]
    assert cohen_kappa(human, judge) == pytest.approx(0.5)
    out = agreement(human, judge)
    assert out["accuracy"] == 0.75 and out["kappa"] == pytest.approx(0.5)
    assert out["human_positive_rate"] == 0.5 and out["judge_positive_rate"] == 0.25
    # Perfect agreement → 1; chance-level (judge always opposite on a balanced set) → -1.
    assert cohen_kappa(human, human) == pytest.approx(1.0)
    assert cohen_kappa(human, [not h for h in human]) == pytest.approx(-1.0)
    # Both raters constant and equal: κ undefined.
    assert cohen_kappa([False, False], [False, False]) is None


def test_majority_label_is_strict():
    assert majority_label([True, True, False])
    assert not majority_label([True, False])
    assert not majority_label([])


def test_correlations_by_hand():
    # x = 1,2,3; y = 1,2,4: sxy = 3, sxx = 2, syy = 42/9 → r = 3 / sqrt(84/9).
    assert pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(3 / math.sqrt(84 / 9))
    assert spearman([1, 2, 3], [1, 2, 4]) == pytest.approx(1.0)
    assert average_ranks([10, 20, 20, 5]) == [2.0, 3.5, 3.5, 1.0]
    assert pearson([1, 1, 1], [1, 2, 3]) is None
    assert pearson([1], [2]) is None
    # Spearman vs a brute-force rank formula (no ties): 1 - 6 Σd² / (n(n²-1)).
    x, y = [3.0, 1.0, 4.0, 2.0, 5.0], [2.0, 1.0, 5.0, 4.0, 3.0]
    d2 = sum((a - b) ** 2 for a, b in zip(average_ranks(x), average_ranks(y), strict=True))
    assert spearman(x, y) == pytest.approx(1 - 6 * d2 / (5 * 24))


def test_summaries_from_item_records():
    from jobs.evaluation.summary import summarize_evaluate

    def pa(item, usable, oracle, *verdicts):
        return {
            "agent": "m",
            "benchmark": "privacyalign",
            "item_id": item,
            "usable": usable,
            "verdicts": list(verdicts),
            "ground_truth": True,
            "oracle": oracle,
        }

    ok_clean = {"leaks": False, "omits": False, "status": "ok"}
    ok_leak = {"leaks": True, "omits": False, "status": "ok"}
    failed = {"leaks": None, "omits": None, "status": "parse_error"}
    records = [
        pa("a", True, {"leaks": True, "omits": False}, ok_clean, ok_leak),  # judge sample 1 clean, sample 2 leak
        pa("b", True, {"leaks": False, "omits": False}, failed, ok_clean),  # sample 1 failed → leak + omit
        pa("c", False, None, ok_clean, ok_clean),  # unusable → leak + omit in both samples
        {"agent": "m", "benchmark": "privacylens", "item_id": "x", "usable": True, "secret_leaks": [False, True],
         "helpfulness": 3, "judge_statuses": ["ok", "ok", "ok"]},
        {"agent": "m", "benchmark": "privacylens", "item_id": "y", "usable": False, "secret_leaks": [True],
         "helpfulness": 3, "judge_statuses": []},
    ]  # fmt: skip
    out = summarize_evaluate(records, ["m"], ["privacyalign", "privacylens"])["benchmarks"]
    pa_out = out["privacyalign"]["m"]
    # Paper convention. Sample 1: leaks b, c (2/3); sample 2: leaks a, c (2/3) → mean 2/3, std 0.
    assert pa_out["judge/leak_paper"] == pytest.approx(2 / 3)
    assert pa_out["judge/leak_paper_std"] == pytest.approx(0.0)
    # Omits: sample 1 b, c (2/3); sample 2 c (1/3) → mean 0.5, std sqrt(2 * (1/6)^2 / 1) = 0.2357.
    assert pa_out["judge/omit_paper"] == pytest.approx(0.5)
    assert pa_out["judge/omit_paper_std"] == pytest.approx(math.sqrt(2) / 6)
    # Clean: sample 1 a (1/3), sample 2 b (1/3).
    assert pa_out["judge/clean_paper"] == pytest.approx(1 / 3)
    # Among usable (a, b). Sample 1: a clean, b failed → leak 0/1; sample 2: a leaks, b clean → 1/2.
    assert pa_out["judge/leak_among_usable"] == pytest.approx(0.25)
    assert pa_out["judge/failed_rate"] == pytest.approx(0.25)  # 1/2 then 0/2
    assert pa_out["unusable_rate"] == pytest.approx(1 / 3) and pa_out["unusable_rate_std"] == 0.0
    # Oracle (no judge sample changes it): a leaks, b clean; c unusable counts as leak + omit in the paper view.
    assert pa_out["oracle/leak_among_usable"] == 0.5 and pa_out["oracle/leak_among_usable_std"] == 0.0
    assert pa_out["oracle/leak_paper"] == pytest.approx(2 / 3) and pa_out["oracle/clean_paper"] == pytest.approx(1 / 3)
    assert pa_out["n"] == 3
    assert pa_out["unusable"] == 1 and pa_out["judge_failures"] == 1 and pa_out["judge_samples"] == 2
    lens = out["privacylens"]["m"]
    # x leaks and is helpful; y is unusable: judged by nobody, helpfulness 0, a leak only in the paper view.
    assert lens["unusable_rate"] == 0.5 and lens["leak_among_usable"] == 1.0 and lens["leak_paper"] == 1.0
    assert lens["adjusted_leak_rate"] == 1.0 and lens["helpfulness_mean"] == 1.5
    assert lens["unusable"] == 1
