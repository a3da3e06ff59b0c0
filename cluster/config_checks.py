"""Single-field checks every config section shares; here because every package may import `cluster`
(it imports none of the others).

Each section's `__post_init__` runs a :class:`FieldChecks`, which collects every problem of the section
and raises them together, so a user who set three fields wrong sees three errors, not the first one.
Every float field is checked to be finite first: range checks written as `x > 0` or `0 <= x <= 1` let
nan through (every comparison with nan is false), and inf passes any lower bound.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Mapping
from typing import Any


class ConfigFieldErrors(ValueError):
    """Every single-field problem of one config section; `errors` lists them, the message joins them."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


class FieldChecks:
    """Collects the problems of config dataclass `cfg`, starting with its non-finite floats.

    Args:
        cfg: the config dataclass instance (checked as it is; nothing is converted).
        section: the prefix its fields are named with in messages (e.g. ``learner``).

    Example::

        checks = FieldChecks(self, "learner")
        checks.bounds("lr", "eps", gt=0)
        checks.one_of("precision", PRECISIONS)
        checks.done()  # raises ConfigFieldErrors listing every problem found
    """

    def __init__(self, cfg: Any, section: str):
        self.cfg = cfg
        self.section = section
        self.errors: list[str] = []
        bad = []
        for field in dataclasses.fields(cfg):
            value = getattr(cfg, field.name)
            if isinstance(value, Mapping):
                items = [(f"[{k!r}]", v) for k, v in value.items()]
            elif isinstance(value, list | tuple):
                items = [(f"[{i}]", v) for i, v in enumerate(value)]
            else:
                items = [("", value)]
            bad += [f"{section}.{field.name}{key}={v}" for key, v in items if _non_finite(v)]
        if bad:
            self.errors.append(f"{', '.join(bad)}: must be a finite number (nan and inf are not valid settings)")

    def fail(self, message: str) -> None:
        """Record a problem in the caller's own words (checks that are not a bound or a choice)."""
        self.errors.append(message)

    def bounds(
        self,
        *names: str,
        ge: float | None = None,
        gt: float | None = None,
        le: float | None = None,
        lt: float | None = None,
        hint: str = "",
    ) -> None:
        """Each named field must satisfy every given bound (`ge` = ≥, `gt` = >, `le` = ≤, `lt` = <).

        `hint` is appended to the message, e.g. ``" (0 = all rows)"``. Non-finite values were reported
        already and are skipped here.
        """
        for name in names:
            value = getattr(self.cfg, name)
            if _non_finite(value):
                continue
            ok = (
                (ge is None or value >= ge)
                and (gt is None or value > gt)
                and (le is None or value <= le)
                and (lt is None or value < lt)
            )
            if not ok:
                self.fail(f"{self.section}.{name} must be {_describe(ge, gt, le, lt)}, got {value}{hint}")

    def run(self, check: Callable[..., object], *args: Any) -> None:
        """Record the ValueError of a validator that raises (registry look-ups, custom resources)."""
        try:
            check(*args)
        except ValueError as exc:
            self.fail(str(exc))

    def one_of(self, name: str, valid: Collection[Any]) -> None:
        """The named field must be one of `valid` (the message lists them)."""
        value = getattr(self.cfg, name)
        if value not in valid:
            self.fail(f"{self.section}.{name} must be one of {list(valid)}, got {value!r}")

    def done(self) -> None:
        """Raise ConfigFieldErrors if any problem was recorded."""
        if self.errors:
            raise ConfigFieldErrors(self.errors)


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _describe(ge: float | None, gt: float | None, le: float | None, lt: float | None) -> str:
    low = f"[{ge}" if ge is not None else f"({gt}" if gt is not None else ""
    high = f"{le}]" if le is not None else f"{lt})" if lt is not None else ""
    if low and high:
        return f"in {low}, {high}"
    if low:
        return f">= {ge}" if ge is not None else f"> {gt}"
    return f"<= {le}" if le is not None else f"< {lt}"
