"""The committed jobs/presets/defaults.yaml is what `privacyalign train --print-defaults` prints now: every
field, its default and its source comment, loading back to the defaults."""

from __future__ import annotations

import dataclasses

from omegaconf import OmegaConf

from jobs.config import TrainConfig
from jobs.config_loading import PRESETS_DIR, load_config
from jobs.train import main

DEFAULTS_FILE = PRESETS_DIR / "defaults.yaml"


def test_committed_defaults_yaml_is_what_print_defaults_prints(capsys):
    assert main(["--print-defaults"]) == 0
    assert DEFAULTS_FILE.read_text(encoding="utf-8") == capsys.readouterr().out, (
        "jobs/presets/defaults.yaml is stale (a config field, default or comment changed): regenerate it with "
        "`privacyalign train --print-defaults > jobs/presets/defaults.yaml`"
    )


def test_defaults_yaml_loads_back_to_the_defaults():
    assert load_config(TrainConfig, DEFAULTS_FILE) == TrainConfig()


def _leaf_fields(cfg: object, prefix: str = "") -> list[str]:
    """Dotted names of every field of `cfg` that holds a value rather than a nested section."""
    paths = []
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        if dataclasses.is_dataclass(value):
            paths += _leaf_fields(value, f"{prefix}{field.name}.")
        else:
            paths.append(prefix + field.name)
    return paths


def test_defaults_yaml_spells_out_every_field():
    bare = OmegaConf.load(DEFAULTS_FILE)  # not merged onto the schema, which would fill in any field left out
    absent = object()
    missing = [path for path in _leaf_fields(TrainConfig()) if OmegaConf.select(bare, path, default=absent) is absent]
    assert missing == []


def test_a_field_has_its_source_comment_right_above_it():
    text = DEFAULTS_FILE.read_text(encoding="utf-8")
    # rollout.model: declared in VllmEngineConfig, which RolloutConfig extends; the comment comes with it.
    assert "rollout:\n  # HF-format model directory or hub id the engine loads.\n  model: ''\n" in text
    # judge_pool.vllm.max_model_len: a two-line comment of the subclass that overrides the inherited one.
    assert (
        "    # Longest prompt + completion, in tokens: a judge prompt carries the scenario, the annotator block and\n"
        "    # the candidates, so it is longer than an agent's.\n"
        "    max_model_len: 2048\n"
    ) in text
