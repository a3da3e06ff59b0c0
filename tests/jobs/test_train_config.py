"""Every shipped preset loads and validates; cross-field mistakes are all reported together."""

from pathlib import Path

import pytest

from jobs.config import load_train_config, required_gpus, validate
from jobs.config_loading import ConfigError, available_presets


@pytest.mark.parametrize("preset", available_presets())
def test_every_shipped_preset_validates(preset):
    cfg = load_train_config(preset, [])
    assert validate(cfg) == []


def test_presets_include_the_cpu_default_and_gpu_ones():
    assert {"tiny-cpu", "qwen3-4b-1node", "qwen3-8b-2node"} <= set(available_presets())


def test_gpu_presets_fit_their_gpu_count():
    for preset, gpus in (("qwen3-4b-1node", 8), ("qwen3-8b-2node", 16)):
        cfg = load_train_config(preset, [])
        assert sum(required_gpus(cfg).values()) == gpus == cfg.cluster.num_gpus
        assert required_gpus(cfg)["learner"] == cfg.learner.num_ranks


def test_invalid_config_lists_every_error_at_once():
    with pytest.raises(ConfigError) as info:
        load_train_config(
            "tiny-cpu",
            [
                "judge.reward_mode=peer_pairwise",
                "rollout.samples_per_prompt=1",  # cross-field: peer_pairwise needs >= 2
                "rollout.dtype=bfloat16",  # cross-field: CPU engine
                "trainer.schedule=sometimes",  # single field
                "learner.lr=fast",  # type error
                "learner.num_threads=-1",  # bound
            ],
        )
    text = str(info.value)
    assert "trainer.schedule must be one of" in text
    assert "learner.lr=fast" in text
    assert "learner.num_threads must be >= 0" in text
    # Single-field errors stop before cross-field checks can run on broken sections; fix them and the
    # cross-field ones are reported together.
    with pytest.raises(ConfigError) as info:
        load_train_config(
            "tiny-cpu", ["judge.reward_mode=peer_pairwise", "rollout.samples_per_prompt=1", "rollout.dtype=bfloat16"]
        )
    assert len(info.value.errors) == 2
    assert "samples_per_prompt >= 2" in info.value.errors[0] and "SIGILL" in info.value.errors[1]


def test_training_needs_a_sampling_temperature_above_zero():
    # The learner takes rollout.temperature from the job; there is no second setting to keep equal.
    assert load_train_config("tiny-cpu", ["rollout.temperature=0.7"]).rollout.temperature == 0.7
    with pytest.raises(ConfigError, match=r"rollout.temperature=0 \(greedy\) cannot be trained on"):
        load_train_config("tiny-cpu", ["rollout.temperature=0"])


def test_the_policy_cannot_be_a_tiny_judge():
    with pytest.raises(ConfigError, match="model.tiny.role=judge: the trained policy is an agent"):
        load_train_config("tiny-cpu", ["model.tiny.role=judge", "model.tiny.prompt_style=compact"])


def test_gpu_overcommit_is_reported():
    with pytest.raises(ConfigError, match="asks for 10 GPUs"):
        load_train_config("qwen3-4b-1node", ["rollout.num_engines=4"])


def test_node_pinning_settings_load_and_bad_ones_are_all_named():
    cfg = load_train_config(
        "tiny-cpu",
        ["learner.resources_per_rank={learner_node: 0.001}", "judge_pool.resources_per_replica={judge_node: 0.5}"],
    )
    assert cfg.learner.resources_per_rank == {"learner_node": 0.001}
    assert cfg.judge_pool.resources_per_replica == {"judge_node": 0.5}
    with pytest.raises(ConfigError) as info:
        load_train_config(
            "tiny-cpu",
            [
                "learner.resources_per_rank={learner_node: 0}",
                "judge_pool.resources_per_replica={GPU: 1}",
                "rollout.resources_per_engine={rollout_node: -1}",
            ],
        )
    assert len(info.value.errors) == 3
    for key in ("learner.resources_per_rank", "resources_per_replica {'GPU'", "rollout.resources_per_engine"):
        assert any(key in error for error in info.value.errors), key


def test_an_attached_judge_pool_takes_no_gpus_of_the_job():
    cfg = load_train_config("qwen3-4b-1node", [])
    assert required_gpus(cfg)["judge"] > 0
    attached = load_train_config("qwen3-4b-1node", ["judge.pool=privacyalign-judge"])
    assert required_gpus(attached)["judge"] == 0
    assert required_gpus(attached)["rollout"] == required_gpus(cfg)["rollout"]


def test_deadlines_must_be_positive_and_each_is_named():
    overrides = ["rollout.call_timeout_s=0", "learner.call_timeout_s=-1", "judge_pool.request_timeout_s=0"]
    overrides += ["judge_pool.health_check_timeout_s=0"]
    with pytest.raises(ConfigError) as info:
        load_train_config("tiny-cpu", overrides)
    text = str(info.value)
    for key in (
        "rollout.call_timeout_s",
        "learner.call_timeout_s",
        "judge_pool.request_timeout_s",
        "health_check_timeout_s",
    ):
        assert f"{key} must be > 0" in text, text


def test_the_tiny_judge_name_resolves_to_its_checkpoint(tmp_path):
    """`judge_pool.vllm.model=tiny-judge` becomes the shipped judge's directory, capped to its context."""
    from jobs.config import with_judge_model
    from judge.serve_config import JudgePoolConfig, VllmBackendConfig

    resolved = with_judge_model(JudgePoolConfig(vllm=VllmBackendConfig(model="tiny-judge")), cache_dir=str(tmp_path))
    assert Path(resolved.vllm.model).parent == tmp_path and (Path(resolved.vllm.model) / "config.json").exists()
    assert resolved.vllm.max_model_len == 1024  # the judge's trained context, under the pool's 2,048 default
    unnamed = with_judge_model(JudgePoolConfig(), default="/policy", cache_dir=str(tmp_path))
    assert (unnamed.vllm.model, unnamed.vllm.max_model_len) == ("/policy", 2048)
    other = with_judge_model(JudgePoolConfig(vllm=VllmBackendConfig(model="org/judge-7b")), cache_dir=str(tmp_path))
    assert other.vllm.model == "org/judge-7b"


@pytest.mark.parametrize("mode", ["auto", "on", "off"])
def test_shared_prefix_modes_survive_the_command_line(mode: str) -> None:
    # YAML reads a bare on/off as a boolean; the documented values must still arrive as written.
    assert load_train_config("tiny-cpu", [f"learner.shared_prefix={mode}"]).learner.shared_prefix == mode
