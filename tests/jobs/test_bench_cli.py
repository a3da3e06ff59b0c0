"""`privacyalign bench` argument handling: section names and workload overrides (pure, nothing measured)."""

from __future__ import annotations

import pytest

from jobs.bench import REGISTRY, apply_overrides, main
from jobs.benchmarks.runner import resolve_sections
from jobs.benchmarks.workloads import get_workload


def test_all_expands_in_registry_order_and_duplicates_collapse():
    assert resolve_sections(["all"], REGISTRY) == list(REGISTRY)
    assert resolve_sections(["sync", "judge", "sync"], REGISTRY) == ["sync", "judge"]


def test_unknown_section_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown bench section\(s\) \['rollouts'\]; valid: \['all'"):
        resolve_sections(["rollouts"], REGISTRY)


def test_workload_overrides_scalars_and_lists():
    w = apply_overrides(get_workload("W1"), ["repeats=1", "train_steps=3", "judge_replicas=[1,2,4]"])
    assert (w.repeats, w.train_steps, w.judge_replicas) == (1, 3, (1, 2, 4))
    assert get_workload("W1").repeats == 3  # the registry entry is untouched


def test_override_of_shape_or_unknown_field_is_rejected():
    with pytest.raises(ValueError, match="cannot be overridden"):
        apply_overrides(get_workload("W1"), ["model=x"])
    with pytest.raises(ValueError, match="cannot be overridden"):
        apply_overrides(get_workload("W1"), ["judge_model=x"])
    with pytest.raises(ValueError, match="train_steps must be >= 2"):
        apply_overrides(get_workload("W1"), ["train_steps=1"])


def test_cli_reports_bad_arguments_with_exit_code_2(capsys):
    assert main(["--workload", "W9"]) == 2
    assert "unknown workload 'W9'" in capsys.readouterr().err


def test_bench_train_runs_score_with_the_reward_trl_computes(tmp_path) -> None:
    """The train runs start from the default preset (a vLLM judge): every judge field must be overridden to
    BENCH_JUDGE, the offline reward TRL's run computes in-process, or e2e compares unlike work."""
    from jobs.benchmarks.training import BENCH_JUDGE, TrainRuns
    from jobs.config import load_train_config
    from jobs.train import DEFAULT_PRESET

    runs = TrainRuns.__new__(TrainRuns)  # overrides() needs the workload and model path, not a built model
    runs.workload, runs.model_dir = get_workload("W1"), tmp_path
    cfg = load_train_config(DEFAULT_PRESET, runs.overrides(schedule="sync"))
    assert cfg.judge == BENCH_JUDGE
