"""Every float setting of every job config rejects nan and ±inf (range checks alone let nan through)."""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest

from actors.config import ActorGroupConfig
from jobs.config import TrainConfig
from jobs.config_loading import ConfigError, load_config
from jobs.evaluation.config import EvalJobConfig


def _float_settings(schema: type, prefix: str = "") -> list[str]:
    """Dotted paths of the float fields under `schema`, nested sections included."""
    paths = []
    hints = typing.get_type_hints(schema)
    for field in dataclasses.fields(schema):
        kind = hints[field.name]
        if dataclasses.is_dataclass(kind):
            paths += _float_settings(kind, f"{prefix}{field.name}.")
        elif kind is float:
            paths.append(f"{prefix}{field.name}")
    return paths


SETTINGS = [(TrainConfig, p) for p in _float_settings(TrainConfig)] + [
    (EvalJobConfig, p) for p in _float_settings(EvalJobConfig)
]


def test_the_walk_finds_the_known_float_settings() -> None:
    paths = {p for _, p in SETTINGS}
    assert {"learner.lr", "judge.reward_clip", "judge_pool.openai.timeout_s", "eval.temperature"} <= paths
    assert len(paths) > 30


@pytest.mark.parametrize("value", ["nan", "inf"])
@pytest.mark.parametrize(("schema", "path"), SETTINGS, ids=[f"{s.__name__}:{p}" for s, p in SETTINGS])
def test_non_finite_float_setting_is_a_config_error(schema: type, path: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(schema, None, [f"{path}={value}"])
    field = path.rsplit(".", 1)[-1]
    assert f".{field}={float(value)}: must be a finite number" in str(info.value)


def test_float_items_of_tuples_and_dicts_and_in_code_configs() -> None:
    with pytest.raises(ConfigError, match=r"learner\.betas\[1\]=nan: must be a finite number"):
        load_config(TrainConfig, None, ["learner.betas=[0.9,nan]"])
    with pytest.raises(ConfigError, match=r"rollout\.resources_per_engine\['rollout_node'\]=inf"):
        load_config(TrainConfig, None, ["rollout.resources_per_engine={rollout_node: .inf}"])
    with pytest.raises(ValueError, match=r"actor_group\.num_cpus_per_actor=nan"):
        ActorGroupConfig(num_cpus_per_actor=math.nan)
