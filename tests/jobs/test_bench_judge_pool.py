"""The judge bench section's configs: requests per step batch by reward mode, the trained tiny judge's pool.

Pure: no Ray, no engine; the tiny judge's checkpoint is stubbed (its path is all the config holds).
"""

from __future__ import annotations

import dataclasses

import pytest

from jobs.benchmarks import judge_pool
from jobs.benchmarks.data import train_rows
from jobs.benchmarks.workloads import get_workload
from jobs.config import load_train_config
from judge.config import JudgeConfig
from judge.reward import plan_requests
from learner.tiny_model import TINY_JUDGE, tiny_model_config


@pytest.mark.parametrize(
    ("mode", "dual", "per_prompt"),
    [("peer_pairwise", True, 12), ("peer_pairwise", False, 6), ("anchor", True, 8), ("pointwise", True, 4)],
)
def test_step_batch_requests_follow_the_reward_mode(mode, dual, per_prompt):
    # W1: 8 prompts x G=4; peer-pairwise in both orders is G(G-1), pointwise one per sample.
    w1 = get_workload("W1")
    cfg = JudgeConfig(reward_mode=mode, enable_dual_order=dual)
    assert judge_pool._batch_requests(w1, cfg) == 8 * per_prompt
    # The count is what the reward stage really plans for a step batch.
    rows = train_rows()
    assert len(plan_requests(judge_pool._step_batch(w1, rows, 0), rows, cfg)) == 8 * per_prompt


def test_trained_judge_pool_serves_the_tiny_judge_as_trained(monkeypatch, tmp_path):
    built = []
    monkeypatch.setattr(judge_pool, "ensure_tiny_model", lambda cfg: built.append(cfg) or tmp_path)
    judge_cfg, pool_cfg = judge_pool._trained_judge_configs(get_workload("W1"))
    assert built == [tiny_model_config("judge")]
    assert (judge_cfg.backend, judge_cfg.reward_mode, judge_cfg.prompt_style) == ("vllm", "pointwise", "compact")
    vllm = pool_cfg.vllm
    assert (vllm.model, vllm.max_model_len, vllm.max_tokens, vllm.temperature) == (str(tmp_path), 1024, 32, 0.0)
    assert vllm.dtype == "float32" and pool_cfg.num_cpus_per_replica == 1 and not pool_cfg.enable_cache
    # One step batch of pointwise requests (8 prompts x 4 samples) per engine call, not G(G-1) per prompt.
    assert pool_cfg.max_batch_size == 32


def test_trained_judge_is_served_as_the_cpu_default_run_serves_it():
    cfg = load_train_config("tiny-cpu", [])
    assert cfg.judge.backend == "vllm" and cfg.judge_pool.vllm.model == TINY_JUDGE
    assert cfg.judge.reward_mode == judge_pool.TRAINED_JUDGE_REWARD_MODE
    assert cfg.judge.prompt_style == tiny_model_config("judge").prompt_style
    assert cfg.judge_pool.vllm.max_tokens == judge_pool.TRAINED_JUDGE_MAX_TOKENS


def test_only_the_cpu_workload_measures_a_trained_judge_and_it_must_be_a_judge():
    assert get_workload("W1").judge_tiny_size == "judge"
    assert get_workload("GPU-Q3-0.6B").judge_tiny_size == ""
    agent = dataclasses.replace(get_workload("W1"), judge_tiny_size="tiny")
    with pytest.raises(ValueError, match="is an agent model; name a judge size"):
        judge_pool._trained_judge_configs(agent)
