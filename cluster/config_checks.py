"""Checks every config dataclass shares; here because every package may import `cluster` (it imports none).

Range checks written as `x > 0` or `0 <= x <= 1` let nan through (every comparison with nan is
false), and inf passes any lower bound, so each config section with float fields calls
:func:`check_finite` before its own range checks.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any


def check_finite(cfg: Any, section: str) -> None:
    """Raise ValueError naming every float field of dataclass `cfg` that is nan or ±inf.

    Items of tuple, list and dict fields (e.g. `betas`, `resources_per_rank`) are checked too.

    Args:
        cfg: a config dataclass instance.
        section: the prefix its fields are named with in messages (e.g. ``learner``).
    """
    bad = []
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        if isinstance(value, Mapping):
            items = [(f"[{k!r}]", v) for k, v in value.items()]
        elif isinstance(value, list | tuple):
            items = [(f"[{i}]", v) for i, v in enumerate(value)]
        else:
            items = [("", value)]
        bad += [f"{section}.{field.name}{key}={v}" for key, v in items if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise ValueError(f"{', '.join(bad)}: must be a finite number (nan and inf are not valid settings)")
