"""Judge canaries (docs/architecture.md §1.6): requests whose verdicts are known, sent with every wave.

The reward is only as good as the judge, and a judge can go wrong mid-run without failing a single
call: a replica restarted on other weights, an endpoint that swapped the model behind its name, a
broken engine that still answers in the right format. The invalid-verdict check cannot see that, so
every wave also asks the judge about a few rows whose answer is clear from the annotations alone:
one reference response a majority of annotators flag as leaking, the other flagged by none. A healthy
judge must prefer the clean reference (pairwise, in both orders) or flag the leak on the leaky one and
not on the clean one (pointwise). The verdicts are graded here, never turned into rewards.

Pure functions: `JudgePool.async_canaries` (judge/pool.py) sends the probes through the Serve pool.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from judge.backends.base import JudgeRequest
from judge.config import JudgeConfig
from judge.parsing import PairwiseVerdict, PointwiseVerdict, verdict_of
from judge.prompts import truncate_words
from judge.reward import REWARD_MODES, judge_request
from rollout.prompts import reference_answer
from scenarios.schema import ScenarioRow


@dataclass(frozen=True)
class CanaryProbe:
    """One canary judge request and the truth about its candidates.

    Attributes:
        request: what the judge is asked (a pairwise or pointwise request, as the reward mode sends).
        leaks: per candidate, whether it is the leaking reference.
    """

    request: JudgeRequest
    leaks: tuple[bool, ...]


@dataclass(frozen=True)
class CanaryReport:
    """One wave's canary verdicts, graded: what the driver fetches and logs.

    Attributes:
        verdicts: canary requests sent.
        correct: verdicts that agreed with the known answer.
        unparsable: verdicts without a usable answer (parse_error, empty_response or judge_error);
            they count as wrong.
        judge_models: the judge models that answered (from the verdicts' provenance), sorted.
    """

    verdicts: int
    correct: int
    unparsable: int
    judge_models: tuple[str, ...]

    @property
    def accuracy(self) -> float:
        return self.correct / self.verdicts

    def metrics(self) -> dict[str, float]:
        return {
            "judge/canary_accuracy": self.accuracy,
            "judge/canary_verdicts": float(self.verdicts),
            "judge/canary_unparsable": float(self.unparsable),
        }


def leaky_reference(row: ScenarioRow) -> int | None:
    """Index (0 = A, 1 = B) of the reference that clearly leaks by the annotator flags; None when unclear.

    Clear means: a strict majority of the annotators flag a leak in it, none flags a leak in the other,
    and none flags the other for omitting a needed detail (the pairwise rubric scores leak-versus-omit
    as a tie, so such a pair has no known winner).
    """
    if not row.annotations:
        return None
    labels = [(a.response_a_labels, a.response_b_labels) for a in row.annotations]
    leak_votes = [sum(pair[i].leaks for pair in labels) for i in (0, 1)]
    for leaky, clean in ((0, 1), (1, 0)):
        majority = 2 * leak_votes[leaky] > len(labels)
        if majority and leak_votes[clean] == 0 and not any(pair[clean].omits for pair in labels):
            return leaky
    return None


def select_canary_rows(rows: Iterable[ScenarioRow]) -> list[ScenarioRow]:
    """The rows fit to be canaries (`leaky_reference` is clear), sorted by id so every run picks alike."""
    return sorted((row for row in rows if leaky_reference(row) is not None), key=lambda row: row.id)


def canary_probes(rows: Sequence[ScenarioRow], step: int, pairs: int, cfg: JudgeConfig) -> list[CanaryProbe]:
    """The canary requests of step `step`: `pairs` rows (rotating through `rows`), two requests each.

    Pairwise reward modes (`peer_pairwise`, `anchor`) judge the two references against each other in
    both orders, whatever `enable_dual_order` says: position bias is a failure canaries must catch.
    `pointwise` judges each reference alone. Prompts are rendered exactly as for rollouts (annotations,
    truncation, seed). Each request's row carries the id `<row id>#canary<step>`: the pool's verdict
    cache keys on it, so no step is answered from an earlier step's verdicts; a remembered verdict
    says nothing about the judge now.
    """
    if not rows or pairs < 1:
        raise ValueError(f"canary_probes: need canary rows and pairs >= 1, got {len(rows)} rows, pairs={pairs}")
    kind, _ = REWARD_MODES[cfg.reward_mode]
    start = step * pairs
    probes = []
    for offset in range(min(pairs, len(rows))):
        source = rows[(start + offset) % len(rows)]
        leaky = leaky_reference(source)
        assert leaky is not None, f"row {source.id} is not a canary row (select_canary_rows picks them)"
        row = dataclasses.replace(source, id=f"{source.id}#canary{step}")
        texts = [truncate_words(reference_answer(row, i), cfg.max_candidate_words) for i in (0, 1)]
        orders = [(0, 1), (1, 0)] if kind == "pairwise" else [(0,), (1,)]
        for order in orders:
            request_id = f"canary{step}:{source.id}:" + "v".join("ab"[i] for i in order)
            request = judge_request(request_id, kind, row, tuple(texts[i] for i in order), cfg)
            probes.append(CanaryProbe(request, tuple(i == leaky for i in order)))
    return probes


def is_correct(probe: CanaryProbe, verdict: PairwiseVerdict | PointwiseVerdict) -> bool:
    """Whether a usable verdict gives the known answer.

    Pairwise: the clean candidate wins (score > 0 when the first leaks, < 0 when the second does; a tie
    misses the leak). Pointwise: `leaks` matches the truth (the omit flag is not graded).
    """
    if verdict.status != "ok":
        return False
    if isinstance(verdict, PointwiseVerdict):
        return verdict.leaks == probe.leaks[0]
    assert verdict.score is not None
    first_leaks = probe.leaks[0]
    return verdict.score > 0 if first_leaks else verdict.score < 0


def grade_canaries(
    probes: Sequence[CanaryProbe], outputs: Sequence[str | BaseException], judge_models: Sequence[str]
) -> CanaryReport:
    """Grade one backend output per probe (an exception in place of text is a failed call, i.e. wrong)."""
    if len(outputs) != len(probes) or not probes:
        raise ValueError(f"grade_canaries: {len(outputs)} judge outputs for {len(probes)} canary requests")
    verdicts = [verdict_of(probe.request.kind, out) for probe, out in zip(probes, outputs, strict=True)]
    return CanaryReport(
        verdicts=len(probes),
        correct=sum(is_correct(p, v) for p, v in zip(probes, verdicts, strict=True)),
        unparsable=sum(v.status != "ok" for v in verdicts),
        judge_models=tuple(sorted({m for m in judge_models if m})),
    )
