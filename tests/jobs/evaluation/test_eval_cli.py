"""Flag and override resolution of `evaluate` and `judge-eval` (no model, no Ray)."""

from __future__ import annotations

import pytest

from jobs import evaluate, judge_eval
from jobs.config_loading import ConfigError, save_config
from jobs.evaluation.config import AgentSpec, agent_labels, parse_agent_spec


def _cfg(argv):
    return evaluate.resolve_config(evaluate.parse_args(argv))


def test_agent_specs():
    assert parse_agent_spec("hf:/ckpt/step-40") == AgentSpec("hf", "/ckpt/step-40")
    assert parse_agent_spec("openai:http://127.0.0.1:8000/v1#Qwen/Qwen3-8B") == AgentSpec(
        "openai", "http://127.0.0.1:8000/v1", "Qwen/Qwen3-8B"
    )
    for bad in ("ckpt", "openai:http://x/v1", "openai:ftp://x#m"):
        with pytest.raises(ValueError, match="expected hf:<checkpoint dir> or openai:"):
            parse_agent_spec(bad)
    specs = [parse_agent_spec("hf:/a/model"), parse_agent_spec("hf:/b/model")]
    assert agent_labels(specs) == ["model#1", "model#2"]


def test_flags_override_dotlist_and_validate():
    cfg = _cfg(
        ["--compare", "hf:/a/base", "hf:/b/rl", "--benchmark", "privacyalign", "--benchmark", "confaide",
         "--data", "confaide=/data/confaide", "--judge-samples", "3", "eval.max_tokens=64", "judge.backend=offline"]
    )  # fmt: skip
    assert cfg.eval.agents == ["hf:/a/base", "hf:/b/rl"]
    assert cfg.eval.benchmarks == ["privacyalign", "confaide"]
    assert cfg.eval.confaide_data == "/data/confaide" and cfg.eval.judge_samples == 3 and cfg.eval.max_tokens == 64
    single = _cfg(["--agent", "hf:/a", "--benchmark", "privacylens", "--data", "main_data.json"])
    assert single.eval.privacylens_data == "main_data.json"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--benchmark", "privacyalign"], "no agent"),
        (["--agent", "hf:/a", "--benchmark", "confaide"], "confaide needs its data"),
        (
            ["--agent", "hf:/a", "--benchmark", "confaide", "--benchmark", "privacylens", "--data", "x"],
            "BENCHMARK=PATH",
        ),
        (["--agent", "hf:/a", "--judge-samples", "0"], "judge_samples must be >= 1"),
        (["--agent", "hf:/a", "--resume", "/nonexistent/run"], "no config.yaml there"),
    ],
)
def test_user_mistakes_are_config_errors(argv, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(argv)


def test_resume_reads_the_saved_config(tmp_path):
    cfg = _cfg(["--agent", "hf:/a", "--judge-samples", "2", "--max-items", "3"])
    save_config(cfg, tmp_path / "config.yaml")
    resumed = _cfg(["--resume", str(tmp_path)])
    assert resumed.eval.agents == ["hf:/a"] and resumed.eval.judge_samples == 2 and resumed.eval.max_items == 3
    assert resumed.eval.run_dir == str(tmp_path)


def test_judge_eval_flags():
    cfg = judge_eval.resolve_config(
        judge_eval.parse_args(["--backend", "offline", "--split", "all", "--max-items", "5"])
    )
    assert cfg.eval.judge_backends == ["offline"] and cfg.eval.split == "all" and cfg.eval.max_items == 5
    # judge-eval's own default is the test split (unseen facts); an override still wins over it.
    assert judge_eval.resolve_config(judge_eval.parse_args([])).eval.split == "test"
    assert judge_eval.resolve_config(judge_eval.parse_args(["eval.split=dev"])).eval.split == "dev"


def test_help_explains_every_flag(capsys):
    for module in (evaluate, judge_eval):
        with pytest.raises(SystemExit):
            module.parse_args(["--help"])
        out = capsys.readouterr().out
        assert "--enable-scenario-text" in out and "overrides" in out
