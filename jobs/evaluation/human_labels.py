"""Human labels of PrivacyAlign rows and the judge inputs of `judge-eval` (docs/architecture.md §1.5).

The only responses with human labels are a row's two references, so the judge is scored on those.
Showing it the row's full annotations would let it copy the very labels it is scored against; the
*with annotations* variant therefore keeps, for the response being judged, only what annotators said
about the **other** reference (its flags), and drops preferences and free-text explanations, which
compare the two responses and would reveal the judged one's labels indirectly. The *without*
variant shows no annotations at all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from jobs.evaluation.metrics import majority_label
from scenarios.schema import Annotation, ResponseLabels, ScenarioRow

SIDES = ("a", "b")
VARIANTS = ("with_annotations", "without_annotations")
_NO_FLAGS = ResponseLabels(leaks=False, leaks_details="", omits=False, omits_details="")


@dataclass(frozen=True)
class HumanLabel:
    """Majority human verdict on one reference response."""

    leaks: bool
    omits: bool


def human_labels(row: ScenarioRow) -> dict[str, HumanLabel]:
    """Per side ("a", "b"): strict majority of annotators for leaks and for omits."""
    out = {}
    for side in SIDES:
        labels = [getattr(ann, f"response_{side}_labels") for ann in row.annotations]
        out[side] = HumanLabel(
            leaks=majority_label([lab.leaks for lab in labels]), omits=majority_label([lab.omits for lab in labels])
        )
    return out


def mean_preference(row: ScenarioRow) -> float | None:
    """Mean annotator preference in −2 (A) … +2 (B), `unsure` excluded; None without a valued vote."""
    values = [ann.preference_value for ann in row.annotations if ann.preference_value is not None]
    return sum(values) / len(values) if values else None


def other_side_only(row: ScenarioRow, judged: str) -> ScenarioRow:
    """The row as the *with annotations* judge of response `judged` sees it.

    Each annotator keeps only their flags on the other response; their flags on the judged response
    are cleared, the preference becomes `unsure` and the explanation is dropped.
    """
    if judged not in SIDES:
        raise ValueError(f"judged must be one of {list(SIDES)}, got {judged!r}")

    def strip(ann: Annotation) -> Annotation:
        return replace(ann, preference="unsure", explanation="", **{f"response_{judged}_labels": _NO_FLAGS})

    return replace(row, annotations=tuple(strip(a) for a in row.annotations))


def without_annotations(row: ScenarioRow) -> ScenarioRow:
    return replace(row, annotations=())


def judge_view(row: ScenarioRow, judged: str, variant: str) -> ScenarioRow:
    """The row the pointwise judge gets when judging reference `judged` under `variant`."""
    if variant == "with_annotations":
        return other_side_only(row, judged)
    if variant == "without_annotations":
        return without_annotations(row)
    raise ValueError(f"unknown judge-eval variant {variant!r}; valid: {list(VARIANTS)}")


def labelled_rows(rows: list[ScenarioRow]) -> list[ScenarioRow]:
    """Rows usable for judge-eval: at least one annotation (PrivacyLens-converted rows have none)."""
    return [row for row in rows if row.annotations]
