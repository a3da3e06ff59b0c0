"""Typed records for one PrivacyAlign row (docs/architecture.md §1.1), validated strictly when built.

Every validation failure raises :class:`RowValidationError`, which names the file, the line and the
dotted field path, so a user with a 10k-line JSONL file can jump straight to the broken value.
Real hub rows carry extra fields (``model_a``, ``pair_family``, …): unknown keys are kept in
``ScenarioRow.extras`` rather than rejected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# Annotator preference labels and their numeric value (negative = response A preferred).
# `unsure` is a valid label but carries no value: it is excluded from preference aggregates.
PREFERENCE_VALUES: dict[str, float | None] = {
    "agent_a_strongly": -2.0,
    "agent_a": -2.0,
    "agent_a_slightly": -1.0,
    "tie": 0.0,
    "agent_b_slightly": 1.0,
    "agent_b": 2.0,
    "agent_b_strongly": 2.0,
    "unsure": None,
}


class RowValidationError(ValueError):
    """A row does not match the PrivacyAlign schema; says where (file, line, field) and why."""

    def __init__(self, message: str, *, source: str = "<memory>", line: int | None = None, field: str = ""):
        self.source = source
        self.line = line
        self.field = field
        self.reason = message
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: field '{field or '<row>'}': {message}")


class _Checker:
    """Reads typed fields out of a raw dict, raising errors that carry the dotted field path."""

    def __init__(self, source: str, line: int | None):
        self.source = source
        self.line = line

    def fail(self, path: str, message: str) -> RowValidationError:
        return RowValidationError(message, source=self.source, line=self.line, field=path)

    def get(self, obj: dict, key: str, path: str, kind: type | tuple[type, ...], *, default: Any = ...) -> Any:
        if not isinstance(obj, dict):
            raise self.fail(path, f"expected an object, got {type(obj).__name__}")
        if key not in obj:
            if default is not ...:
                return default
            raise self.fail(f"{path}.{key}" if path else key, "missing required field")
        value = obj[key]
        full = f"{path}.{key}" if path else key
        # bool is a subclass of int: reject True where an int is wanted and vice versa.
        bad_bool = isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))
        if not isinstance(value, kind) or bad_bool:
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(full, f"expected {names}, got {type(value).__name__} ({_preview(value)})")
        return value

    def str_list(self, obj: dict, key: str, path: str = "", *, default: Any = ...) -> tuple[str, ...]:
        items = self.get(obj, key, path, list, default=default)
        full = f"{path}.{key}" if path else key
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise self.fail(f"{full}[{i}]", f"expected str, got {type(item).__name__}")
        return tuple(items)

    def json_text(self, obj: dict, key: str, path: str) -> str:
        """A field that must hold a JSON *string* (the dataset stores arguments this way)."""
        text = self.get(obj, key, path, str)
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise self.fail(f"{path}.{key}", f"not valid JSON text ({exc.msg} at char {exc.pos})") from None
        return text


# Values of a generated row's `split` field (empty on hub rows, whose split is the id hash).
ROW_SPLITS = ("train", "dev", "test")


def _split_field(check: _Checker, raw: dict) -> str:
    split = check.get(raw, "split", "", str, default="") or ""
    if split and split not in ROW_SPLITS:
        raise check.fail("split", f"must be one of {list(ROW_SPLITS)} (or absent), got {split!r}")
    return split


def _preview(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class ResponseLabels:
    """One annotator's flags on one reference response."""

    leaks: bool
    leaks_details: str
    omits: bool
    omits_details: str

    @classmethod
    def from_dict(cls, raw: dict, check: _Checker, path: str) -> ResponseLabels:
        return cls(
            leaks=check.get(raw, "leaks", path, bool),
            leaks_details=check.get(raw, "leaks_details", path, str, default="") or "",
            omits=check.get(raw, "omits", path, bool),
            omits_details=check.get(raw, "omits_details", path, str, default="") or "",
        )


@dataclass(frozen=True)
class Annotation:
    """One annotator's judgement of the pair of reference responses."""

    preference: str
    explanation: str
    gold: bool
    response_a_labels: ResponseLabels
    response_b_labels: ResponseLabels

    @property
    def preference_value(self) -> float | None:
        """−2…+2 (negative prefers A); None for `unsure`."""
        return PREFERENCE_VALUES[self.preference]

    @classmethod
    def from_dict(cls, raw: dict, check: _Checker, path: str) -> Annotation:
        preference = check.get(raw, "preference", path, str)
        if preference not in PREFERENCE_VALUES:
            raise check.fail(
                f"{path}.preference", f"unknown preference label {preference!r}; valid: {sorted(PREFERENCE_VALUES)}"
            )
        return cls(
            preference=preference,
            explanation=check.get(raw, "explanation", path, str, default="") or "",
            gold=check.get(raw, "gold", path, bool, default=False),
            response_a_labels=ResponseLabels.from_dict(
                check.get(raw, "response_a_labels", path, dict), check, f"{path}.response_a_labels"
            ),
            response_b_labels=ResponseLabels.from_dict(
                check.get(raw, "response_b_labels", path, dict), check, f"{path}.response_b_labels"
            ),
        )


@dataclass(frozen=True)
class ReferenceResponse:
    """A final action written by another model, shown to annotators as response A or B."""

    action_raw: str
    action_type: str
    arguments_json: str
    tool_name: str
    model: str
    model_label: str

    @property
    def arguments(self) -> dict[str, Any]:
        value = json.loads(self.arguments_json)
        return value if isinstance(value, dict) else {}

    @classmethod
    def from_dict(cls, raw: dict, check: _Checker, path: str) -> ReferenceResponse:
        return cls(
            action_raw=check.get(raw, "action_raw", path, str),
            action_type=check.get(raw, "action_type", path, str, default="tool_use"),
            arguments_json=check.json_text(raw, "arguments_json", path),
            tool_name=check.get(raw, "tool_name", path, str),
            model=check.get(raw, "model", path, str, default=""),
            model_label=check.get(raw, "model_label", path, str, default=""),
        )


@dataclass(frozen=True)
class TrajectoryEvent:
    """One prior tool call or tool result, as the structured `trajectory_events` list stores it."""

    event_type: str
    tool_name: str
    payload_json: str
    id: str
    index: int
    tool_use_id: str

    @classmethod
    def from_dict(cls, raw: dict, check: _Checker, path: str) -> TrajectoryEvent:
        return cls(
            event_type=check.get(raw, "event_type", path, str),
            tool_name=check.get(raw, "tool_name", path, str, default=""),
            payload_json=check.json_text(raw, "payload_json", path),
            id=check.get(raw, "id", path, str, default=""),
            index=check.get(raw, "index", path, int),
            tool_use_id=check.get(raw, "tool_use_id", path, str, default="") or "",
        )


_KNOWN_FIELDS = {
    "id",
    "user_name",
    "user_instruction",
    "memories",
    "domains",
    "toolkits",
    "trajectory",
    "trajectory_events",
    "expected_final_action",
    "response_a",
    "response_b",
    "annotations",
    "preference_counts",
    "majority_bucket",
    "sensitive_facts",
    "relevant_facts",
    "recipient",
    "sensitive_surface_forms",
    "split",
}
# Ground truth that only generated rows carry and only the oracle may read (docs/architecture.md §3).
GROUND_TRUTH_FIELDS = ("sensitive_facts", "sensitive_surface_forms", "relevant_facts", "split")


@dataclass(frozen=True)
class ScenarioRow:
    """One PrivacyAlign scenario: what the agent knows, what it must do, and how humans judged two answers.

    `sensitive_facts` / `sensitive_surface_forms` / `relevant_facts` / `split` are the ground truth
    of generated rows (the hub rows leave them empty): only the oracle reads them, and judges get
    :meth:`judge_view`, which blanks them, because a real PrivacyAlign row has none of it.
    `recipient` names who receives the final action.
    """

    id: str
    user_name: str
    user_instruction: str
    memories: tuple[str, ...]
    domains: tuple[str, ...]
    toolkits: tuple[str, ...]
    trajectory: str
    trajectory_events: tuple[TrajectoryEvent, ...]
    expected_final_action: str
    response_a: ReferenceResponse
    response_b: ReferenceResponse
    annotations: tuple[Annotation, ...]
    preference_counts: dict[str, int] = field(default_factory=dict)
    majority_bucket: str = ""
    sensitive_facts: tuple[str, ...] = ()
    relevant_facts: tuple[str, ...] = ()
    recipient: str = ""
    sensitive_surface_forms: tuple[str, ...] = ()
    split: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def references(self) -> tuple[ReferenceResponse, ReferenceResponse]:
        return (self.response_a, self.response_b)

    @property
    def has_ground_truth(self) -> bool:
        """Whether the oracle can grade answers to this row (generated rows; hub rows cannot)."""
        return bool(self.sensitive_surface_forms or self.sensitive_facts or self.relevant_facts)

    def judge_view(self) -> ScenarioRow:
        """This row as a judge may see it: what a real PrivacyAlign row carries, no ground truth."""
        from dataclasses import replace

        return replace(self, **{name: "" if name == "split" else () for name in GROUND_TRUTH_FIELDS})

    @classmethod
    def from_dict(cls, raw: Any, *, source: str = "<memory>", line: int | None = None) -> ScenarioRow:
        """Validate one decoded JSON object; raises RowValidationError naming source, line and field."""
        check = _Checker(source, line)
        if not isinstance(raw, dict):
            raise check.fail("", f"expected a JSON object, got {type(raw).__name__}")
        row_id = check.get(raw, "id", "", str)
        if not row_id:
            raise check.fail("id", "must be a non-empty string")
        events = check.get(raw, "trajectory_events", "", list, default=[])
        annotations = check.get(raw, "annotations", "", list)
        counts = check.get(raw, "preference_counts", "", dict, default={})
        for key, value in counts.items():
            if key not in PREFERENCE_VALUES:
                raise check.fail(
                    f"preference_counts.{key}", f"unknown preference label; valid: {sorted(PREFERENCE_VALUES)}"
                )
            if not isinstance(value, int) or isinstance(value, bool):
                raise check.fail(f"preference_counts.{key}", f"expected int, got {type(value).__name__}")
        trajectory = check.get(raw, "trajectory", "", str)
        return cls(
            id=row_id,
            user_name=check.get(raw, "user_name", "", str),
            user_instruction=check.get(raw, "user_instruction", "", str),
            memories=check.str_list(raw, "memories", default=[]),
            domains=check.str_list(raw, "domains", default=[]),
            toolkits=check.str_list(raw, "toolkits", default=[]),
            trajectory=trajectory,
            trajectory_events=tuple(
                TrajectoryEvent.from_dict(ev, check, f"trajectory_events[{i}]") for i, ev in enumerate(events)
            ),
            expected_final_action=check.get(raw, "expected_final_action", "", str),
            response_a=ReferenceResponse.from_dict(check.get(raw, "response_a", "", dict), check, "response_a"),
            response_b=ReferenceResponse.from_dict(check.get(raw, "response_b", "", dict), check, "response_b"),
            annotations=tuple(
                Annotation.from_dict(ann, check, f"annotations[{i}]") for i, ann in enumerate(annotations)
            ),
            preference_counts=dict(counts),
            majority_bucket=check.get(raw, "majority_bucket", "", str, default="") or "",
            sensitive_facts=check.str_list(raw, "sensitive_facts", default=[]),
            relevant_facts=check.str_list(raw, "relevant_facts", default=[]),
            recipient=check.get(raw, "recipient", "", str, default="") or "",
            sensitive_surface_forms=check.str_list(raw, "sensitive_surface_forms", default=[]),
            split=_split_field(check, raw),
            extras={k: v for k, v in raw.items() if k not in _KNOWN_FIELDS},
        )

    def to_dict(self) -> dict[str, Any]:
        """The row back in dataset form (JSON-serialisable; extras included)."""
        from dataclasses import asdict

        out = {k: v for k, v in asdict(self).items() if k != "extras"}
        for key in ("memories", "domains", "toolkits", "sensitive_facts", "relevant_facts", "sensitive_surface_forms"):
            out[key] = list(out[key])
        out["trajectory_events"] = [dict(ev) for ev in out["trajectory_events"]]
        out["annotations"] = [dict(ann) for ann in out["annotations"]]
        out.update(self.extras)
        return out
