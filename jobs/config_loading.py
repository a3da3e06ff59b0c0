"""Load an OmegaConf YAML preset plus CLI dotlist overrides into a typed dataclass config.

Errors are collected, not raised one at a time: a user who typed three bad overrides sees all three
(torchtune's `config/_validate.py` does the same). Every job uses this one loader.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from jobs.run_files import write_atomic

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
T = TypeVar("T")


class ConfigError(ValueError):
    """One or more config problems; the message lists every one of them."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"{len(self.errors)} config error(s):\n{lines}")


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def resolve_preset(name_or_path: str) -> Path:
    """A preset name (`tiny-cpu`) or a path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} and path.exists():
        return path
    candidate = PRESETS_DIR / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    raise ConfigError(
        [f"unknown preset {name_or_path!r}: not a YAML file, and valid presets are {available_presets()}"]
    )


def load_config(schema: type[T], preset: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build `schema` from defaults ← preset YAML ← `key=value` overrides; raise ConfigError listing all errors.

    Each top-level section is instantiated on its own, so a bad value in `learner` does not hide a
    bad value in `rollout`.
    """
    errors: list[str] = []
    merged: DictConfig = OmegaConf.structured(schema)
    if preset is not None:
        path = resolve_preset(str(preset))
        try:
            merged = OmegaConf.merge(merged, OmegaConf.load(path))
        except OmegaConfBaseException as exc:
            errors.append(f"{path}: {_short(exc)}")
    for item in overrides or []:
        if "=" not in item:
            errors.append(f"override {item!r} is not of the form key=value (e.g. learner.lr=2e-6)")
            continue
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as exc:
            errors.append(f"override {item!r}: {_short(exc)}")
    try:
        cfg = instantiate(schema, merged)
    except ConfigError as exc:
        errors.extend(exc.errors)
    if errors:
        raise ConfigError(errors)
    return cfg


def instantiate(schema: type[T], merged: DictConfig) -> T:
    """Turn a merged DictConfig into `schema`, running every section's `__post_init__` checks."""
    errors: list[str] = []
    sections: dict[str, Any] = {}
    for field in dataclasses.fields(schema):
        node = merged[field.name]
        if isinstance(node, DictConfig):
            try:
                sections[field.name] = OmegaConf.to_object(node)
            except (ValueError, OmegaConfBaseException) as exc:
                # A section's FieldChecks raise every problem of the section at once, as `errors`.
                errors += [f"{field.name}: {e}" for e in getattr(exc, "errors", [_short(exc)])]
        else:
            sections[field.name] = node
    if errors:
        raise ConfigError(errors)
    try:
        return schema(**sections)
    except ValueError as exc:
        raise ConfigError(getattr(exc, "errors", [str(exc)])) from None


def to_yaml(cfg: Any) -> str:
    """The resolved config as YAML (saved in every run directory and checkpoint)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def to_dict(cfg: Any) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config next to the run's outputs, owner-readable only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return write_atomic(path, to_yaml(cfg))


def _short(exc: Exception) -> str:
    # OmegaConf messages carry a multi-line "full_key/object_type" trailer; the first line says it all.
    return str(exc).strip().splitlines()[0]
