"""The config loader: defaults ← YAML ← dotlist, and every error reported at once."""

from dataclasses import dataclass, field

import pytest

from jobs.config_loading import ConfigError, load_config, to_yaml


@dataclass
class _Inner:
    lr: float = 1e-3
    steps: int = 2

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError(f"inner.lr must be > 0, got {self.lr}")


@dataclass
class _Other:
    name: str = "x"

    def __post_init__(self):
        if not self.name:
            raise ValueError("other.name must not be empty")


@dataclass
class _Root:
    inner: _Inner = field(default_factory=_Inner)
    other: _Other = field(default_factory=_Other)


def test_preset_then_overrides(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("inner:\n  lr: 0.5\n  steps: 9\n")
    cfg = load_config(_Root, preset, ["inner.steps=3"])
    assert cfg.inner == _Inner(lr=0.5, steps=3) and isinstance(cfg.inner, _Inner)
    assert "lr: 0.5" in to_yaml(cfg)


def test_all_errors_listed_at_once():
    with pytest.raises(ConfigError) as info:
        load_config(_Root, None, ["inner.steps=abc", "nokey", "inner.unknown=1"])
    assert len(info.value.errors) == 3
    message = str(info.value)
    assert "inner.steps=abc" in message and "key=value" in message and "inner.unknown=1" in message


def test_post_init_errors_of_every_section_listed():
    with pytest.raises(ConfigError) as info:
        load_config(_Root, None, ["inner.lr=-1", "other.name=''", "inner.steps=x"])
    assert any("inner.lr must be > 0" in e for e in info.value.errors)
    assert any("other.name must not be empty" in e for e in info.value.errors)
    assert any("inner.steps=x" in e for e in info.value.errors)


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ConfigError, match="valid presets are"):
        load_config(_Root, "no-such-preset", [])
