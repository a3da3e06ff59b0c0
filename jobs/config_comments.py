"""A dataclass config as YAML with each field's source comment above it (like verl's generated trainer YAML).

Every config field carries its explanation as `# ...` lines above it in the dataclass source; this
renders those comments beside the values, so a user can read what each field means and what it is set
to without opening the dataclasses. The comments are read from the source, so they cannot drift.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from functools import cache
from typing import Any

from omegaconf import OmegaConf


def commented_yaml(cfg: Any) -> str:
    """`cfg` (a dataclass config instance) as YAML, every field preceded by its comment in the source.

    The values are OmegaConf's, so loading the text back into the same schema gives `cfg` again.
    """
    values = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
    return "\n".join(_lines(cfg, values, indent="")) + "\n"


def _lines(cfg: Any, values: dict[str, Any], indent: str) -> list[str]:
    comments = _field_comments(type(cfg))
    lines: list[str] = []
    for field in dataclasses.fields(cfg):
        section = getattr(cfg, field.name)
        if dataclasses.is_dataclass(section) and lines:
            lines.append("")  # a blank line before each nested section, for the eye
        lines += [f"{indent}# {line}".rstrip() for line in comments.get(field.name, [])]
        if dataclasses.is_dataclass(section):
            lines.append(f"{indent}{field.name}:")
            lines += _lines(section, values[field.name], indent + "  ")
        else:
            leaf = OmegaConf.to_yaml({field.name: values[field.name]})
            lines += [indent + line for line in leaf.splitlines()]
    return lines


@cache
def _field_comments(cls: type) -> dict[str, list[str]]:
    """Field name → its comment lines, from `cls` and the dataclasses it extends (a subclass's own wins)."""
    comments: dict[str, list[str]] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            comments.update(_own_field_comments(klass))
    return comments


def _own_field_comments(cls: type) -> dict[str, list[str]]:
    """Field name → the `#` comment lines (text after `# `) written directly above it in `cls`'s body."""
    source = textwrap.dedent(inspect.getsource(cls))
    source_lines = source.splitlines()
    (class_def,) = ast.parse(source).body
    comments: dict[str, list[str]] = {}
    for node in class_def.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        row = node.lineno - 2  # the line above the field (lineno counts from 1)
        while row >= 0 and source_lines[row].strip().startswith("#"):
            above.insert(0, source_lines[row].strip()[1:].removeprefix(" "))
            row -= 1
        if above:
            comments[node.target.id] = above
    return comments
