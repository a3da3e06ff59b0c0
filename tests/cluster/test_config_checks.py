"""Config field checks: every float setting rejects nan and ±inf (range checks alone let nan through),
bounds read as written, and a section reports all of its problems at once."""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest

from actors.config import ActorGroupConfig
from cluster.config_checks import ConfigFieldErrors, FieldChecks
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


@dataclasses.dataclass
class _Section:
    ratio: float = 0.5
    count: int = 1
    mode: str = "a"


@pytest.mark.parametrize(
    ("bounds", "value", "message"),
    [
        ({"gt": 0, "le": 1}, 0.0, "s.ratio must be in (0, 1], got 0.0"),
        ({"ge": 0, "lt": 1}, 1.0, "s.ratio must be in [0, 1), got 1.0"),
        ({"ge": 1}, 0.5, "s.ratio must be >= 1, got 0.5"),
        ({"gt": 0}, -2.0, "s.ratio must be > 0, got -2.0"),
        ({"lt": 0.25}, 0.25, "s.ratio must be < 0.25, got 0.25"),
    ],
)
def test_bounds_messages(bounds: dict, value: float, message: str) -> None:
    checks = FieldChecks(_Section(ratio=value), "s")
    checks.bounds("ratio", **bounds)
    assert checks.errors == [message]
    ok = FieldChecks(_Section(), "s")
    ok.bounds("ratio", gt=0, le=1)
    ok.done()  # 0.5 is inside: nothing raised


def test_every_problem_of_a_section_is_raised_together() -> None:
    checks = FieldChecks(_Section(ratio=math.nan, count=0, mode="z"), "s")
    checks.bounds("ratio", "count", ge=1)  # nan is reported once, as not finite
    checks.one_of("mode", ("a", "b"))
    with pytest.raises(ConfigFieldErrors) as info:
        checks.done()
    assert info.value.errors == [
        "s.ratio=nan: must be a finite number (nan and inf are not valid settings)",
        "s.count must be >= 1, got 0",
        "s.mode must be one of ['a', 'b'], got 'z'",
    ]
    with pytest.raises(ConfigError) as info:
        load_config(
            TrainConfig, None, ["learner.lr=0", "learner.zero_stage=1", "learner.eps=nan", "judge.reward_clip=-1"]
        )
    assert info.value.errors == [
        "judge: judge.reward_clip must be > 0, got -1.0",
        "learner: learner.eps=nan: must be a finite number (nan and inf are not valid settings)",
        "learner: learner.zero_stage must be one of [2, 3], got 1",
        "learner: learner.lr must be > 0, got 0.0",
    ]
