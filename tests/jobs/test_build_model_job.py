"""`privacyalign build-model`: dotlist overrides onto the named sizes, errors, and a cheap end-to-end build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.build_model import build_config, main
from learner.tiny_model import TINY_MODEL_SIZES, config_hash, tiny_model_config


def test_overrides_apply_to_the_named_size() -> None:
    cfg = build_config("w1", ["seed=7", "warm_start_lr=1e-3"])
    assert (cfg.hidden_size, cfg.num_layers, cfg.vocab_size, cfg.warm_start_steps) == (256, 4, 4096, 0)
    assert (cfg.seed, cfg.warm_start_lr) == (7, 1e-3)
    assert build_config("tiny", []) == TINY_MODEL_SIZES["tiny"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("hidden_size=100", "head_dim 64"),
        ("no_such_field=1", "no_such_field"),
        ("seed=abc", "seed=abc"),
        ("seed", "key=value"),
        ("prompt_style=fancy", "naive"),
    ],
)
def test_bad_overrides_name_the_problem(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_config("tiny", [override])


def test_bad_override_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed=abc"]) == 2
    assert "seed=abc" in capsys.readouterr().err


def test_hash_depends_on_every_field() -> None:
    base = tiny_model_config()
    assert len(config_hash(base)) == 16
    assert config_hash(base) != config_hash(tiny_model_config(warm_start_steps=base.warm_start_steps + 1))
    assert config_hash(base) != config_hash(tiny_model_config("w1"))


def test_main_builds_and_prints_the_cached_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Random init and a small vocabulary: a few seconds, no warm start.
    argv = ["--size", "w1", "--cache-dir", str(tmp_path), "vocab_size=512", "num_layers=1"]
    assert main(argv) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.parent == tmp_path and (path / "model.safetensors").exists()
    saved = json.loads((path / "tiny_model_config.json").read_text())
    assert saved["config"]["vocab_size"] == 512 and saved["stats"]["final_loss"] is None
    assert main(argv) == 0 and Path(capsys.readouterr().out.strip()) == path
