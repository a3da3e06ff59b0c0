"""Rewards and advantages from judge verdicts (docs/architecture.md §1.3); pure functions, no Ray.

The pipeline is split so the Serve app can run its middle on judge replicas:
:func:`plan_requests` (batch → JudgeRequests) → backend `complete` → :func:`parse_outputs`
(text → verdicts) → :func:`compute_rewards` (verdicts → rewards, advantages, valid, statuses).
:func:`score_batch` runs all four in-process.

Reward modes, registered by exact name:

* `peer_pairwise`: all G(G−1)/2 pairs of a group (both orders with dual order). A pair's score is the
  mean of its valid orders (s and −s'); a rollout's judge reward is the mean over its valid pairs of its
  signed score (+s when it was response 2, −s when response 1); no valid pair → invalid.
* `anchor`: each rollout against one reference response (JudgeConfig.anchor_reference), same signing.
* `pointwise`: −leak − λ·omit from the pointwise verdict.

Then −format_penalty for a malformed final call, the short-answer penalty, a clamp, and the group
mean over valid rollouts is subtracted (no std normalisation). Invalid rollouts get reward 0,
advantage 0 and valid=False, so the learner masks them; never a silent zero reward for a valid one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from judge.backends.base import JudgeBackend, JudgeRequest
from judge.config import JudgeConfig
from judge.parsing import PairwiseVerdict, PointwiseVerdict, Verdict, verdict_of
from judge.prompts import pairwise_messages, pointwise_messages, truncate_words
from records.trajectory_batch import JUDGE_STATUSES, TrajectoryBatch
from rollout.answers import parse_answer, payload_words, strip_thinking
from rollout.prompts import reference_answer
from scenarios.schema import ScenarioRow

logger = logging.getLogger(__name__)

# A slot is a batch sample index, or ANCHOR for the reference response in `anchor` mode.
ANCHOR = -1
# Which failure a sample reports when none of its judge calls is usable: the most severe one.
SEVERITY = {status: rank for rank, status in enumerate(("ok", "empty_response", "parse_error", "judge_error"))}


@dataclass(frozen=True)
class PlannedCall:
    """One judge request and the samples it judges: `slots[k]` is the batch index of candidate k."""

    request: JudgeRequest
    slots: tuple[int, ...]


@dataclass(frozen=True)
class RewardResult:
    """Per-sample output of the reward stage, aligned with the batch."""

    rewards: list[float]
    advantages: list[float]
    valid: list[bool]
    statuses: list[str]


def _peer_slots(group: Sequence[int], dual: bool) -> list[tuple[int, ...]]:
    pairs = [(i, j) for k, i in enumerate(group) for j in group[k + 1 :]]
    return [p for i, j in pairs for p in ([(i, j), (j, i)] if dual else [(i, j)])]


def _anchor_slots(group: Sequence[int], dual: bool) -> list[tuple[int, ...]]:
    return [p for i in group for p in ([(ANCHOR, i), (i, ANCHOR)] if dual else [(ANCHOR, i)])]


def _pointwise_slots(group: Sequence[int], dual: bool) -> list[tuple[int, ...]]:
    return [(i,) for i in group]


# mode name → (request kind, planner(group sample indices, dual order) → candidate slots per call).
REWARD_MODES: dict[str, tuple[str, Callable[[Sequence[int], bool], list[tuple[int, ...]]]]] = {
    "peer_pairwise": ("pairwise", _peer_slots),
    "anchor": ("pairwise", _anchor_slots),
    "pointwise": ("pointwise", _pointwise_slots),
}


def _mode(name: str) -> tuple[str, Callable[[Sequence[int], bool], list[tuple[int, ...]]]]:
    if name not in REWARD_MODES:
        raise ValueError(f"unknown reward mode {name!r}; valid: {sorted(REWARD_MODES)}")
    return REWARD_MODES[name]


def _row(rows: Mapping[str, ScenarioRow], scenario_id: str) -> ScenarioRow:
    if scenario_id not in rows:
        raise KeyError(f"reward: no scenario row for id {scenario_id!r} (rows must cover every sample's scenario)")
    return rows[scenario_id]


def candidate_text(completion: str, max_words: int) -> str:
    """What the judge reads of a completion: thinking stripped, truncated to `max_words`."""
    return truncate_words(strip_thinking(completion), max_words)


def plan_requests(batch: TrajectoryBatch, rows: Mapping[str, ScenarioRow], cfg: JudgeConfig) -> list[PlannedCall]:
    """The judge calls `cfg.reward_mode` needs for `batch`, grouped by `batch.group_ids`.

    Request ids are unique within the plan (`g<group>:<slot>v<slot>`, `ref` for the anchor), so a
    backend's results can be re-associated; pairs appear in both orders when dual order is on.
    """
    kind, planner = _mode(cfg.reward_mode)
    anchor_index = 0 if cfg.anchor_reference == "a" else 1
    calls = []
    for gid, group in batch.groups().items():
        row = _row(rows, batch.scenario_ids[group[0]])
        if cfg.reward_mode == "peer_pairwise" and len(group) < 2:
            logger.warning("reward: group %s has one sample; peer_pairwise cannot judge it (judge_error)", gid)
        texts = {i: candidate_text(batch.completion_texts[i], cfg.max_candidate_words) for i in group}
        if cfg.reward_mode == "anchor":
            texts[ANCHOR] = truncate_words(reference_answer(row, anchor_index), cfg.max_candidate_words)
        for slots in planner(group, cfg.enable_dual_order):
            request_id = f"g{gid}:" + "v".join("ref" if s == ANCHOR else str(s) for s in slots)
            request = judge_request(request_id, kind, row, tuple(texts[s] for s in slots), cfg)
            calls.append(PlannedCall(request=request, slots=slots))
    return calls


def judge_request(
    request_id: str, kind: str, row: ScenarioRow, candidates: tuple[str, ...], cfg: JudgeConfig
) -> JudgeRequest:
    """A `kind` request on already truncated `candidates`, rendered with `cfg`'s annotation setting and seed."""
    if kind == "pointwise":
        messages = pointwise_messages(
            row, candidates[0], use_annotations=cfg.enable_annotations, style=cfg.prompt_style
        )
    else:
        messages = pairwise_messages(row, *candidates, use_annotations=cfg.enable_annotations, style=cfg.prompt_style)
    return JudgeRequest(
        request_id=request_id,
        kind=kind,
        messages=messages,
        row=row,
        candidates=candidates,
        use_annotations=cfg.enable_annotations,
        seed=cfg.seed,
    )


def parse_outputs(calls: Sequence[PlannedCall], outputs: Sequence[str | BaseException]) -> list[Verdict]:
    """Parse one backend output per call; an exception in place of text (a failed call) is `judge_error`."""
    if len(outputs) != len(calls):
        raise ValueError(f"parse_outputs: {len(outputs)} judge outputs for {len(calls)} requests")
    return [verdict_of(call.request.kind, out) for call, out in zip(calls, outputs, strict=True)]


def _judge_rewards(
    n: int, calls: Sequence[PlannedCall], verdicts: Sequence[Verdict], cfg: JudgeConfig
) -> tuple[list[float | None], list[str]]:
    """Per sample: the judge part of the reward (None = invalid) and its status."""
    worst = ["ok"] * n
    judged = [False] * n
    pair_scores: dict[tuple[int, int], list[float]] = {}
    point: list[float | None] = [None] * n
    for call, verdict in zip(calls, verdicts, strict=True):
        for s in call.slots:
            if s != ANCHOR:
                judged[s] = True
                if verdict.status != "ok" and SEVERITY[verdict.status] > SEVERITY[worst[s]]:
                    worst[s] = verdict.status
        if verdict.status != "ok":
            continue
        if isinstance(verdict, PointwiseVerdict):
            (s,) = call.slots
            point[s] = -float(verdict.leaks) - cfg.pointwise_omit_weight * float(verdict.omits)
        elif isinstance(verdict, PairwiseVerdict):
            # Keyed by the sorted pair; the value is how much the higher slot beats the lower one.
            first, second = call.slots
            key = (min(first, second), max(first, second))
            pair_scores.setdefault(key, []).append(verdict.score if key == (first, second) else -verdict.score)
    sums, counts = [0.0] * n, [0] * n
    for (low, high), values in pair_scores.items():
        score = sum(values) / len(values)  # dual order: mean of s and −s' (or the one valid order)
        for s, signed in ((low, -score), (high, score)):
            if s != ANCHOR:
                sums[s] += signed
                counts[s] += 1
    rewards = [point[i] if point[i] is not None else (sums[i] / counts[i] if counts[i] else None) for i in range(n)]
    statuses = [
        "ok" if rewards[i] is not None else (worst[i] if judged[i] and worst[i] != "ok" else "judge_error")
        for i in range(n)
    ]
    return rewards, statuses


def reference_payload_words(row: ScenarioRow) -> float:
    """Mean payload words of the row's two reference responses (the short-answer yardstick)."""
    return sum(payload_words(ref.arguments) for ref in row.references) / 2


def answer_penalty(completion: str, row: ScenarioRow, cfg: JudgeConfig) -> float:
    """Format plus short-answer penalty of one completion (≥ 0, subtracted from the reward).

    A malformed answer counts as zero payload words, so it is never cheaper than a short valid one.
    """
    parsed = parse_answer(completion, row.expected_final_action)
    penalty = 0.0 if parsed.ok else cfg.format_penalty
    words = payload_words(parsed.arguments) if parsed.ok and parsed.arguments is not None else 0
    floor = cfg.short_answer_floor_ratio * reference_payload_words(row)
    if floor > 0 and words < floor:
        penalty += cfg.short_answer_penalty * min(1.0, (floor - words) / floor)
    return penalty


def group_advantages(batch: TrajectoryBatch, rewards: Sequence[float], valid: Sequence[bool]) -> list[float]:
    """Reward minus the mean over the group's valid samples; invalid samples get 0 (no std division)."""
    advantages = [0.0] * len(batch)
    for group in batch.groups().values():
        members = [i for i in group if valid[i]]
        if not members:
            continue
        mean = sum(rewards[i] for i in members) / len(members)
        for i in members:
            advantages[i] = rewards[i] - mean
    return advantages


def compute_rewards(
    batch: TrajectoryBatch,
    rows: Mapping[str, ScenarioRow],
    cfg: JudgeConfig,
    calls: Sequence[PlannedCall],
    verdicts: Sequence[Verdict],
) -> RewardResult:
    """Judge rewards + penalties, clamped, and group-mean advantages (module docstring)."""
    judge_rewards, statuses = _judge_rewards(len(batch), calls, verdicts, cfg)
    rewards, valid = [], []
    for i, judge_reward in enumerate(judge_rewards):
        if judge_reward is None:
            rewards.append(0.0)
            valid.append(False)
            continue
        row = _row(rows, batch.scenario_ids[i])
        reward = judge_reward - answer_penalty(batch.completion_texts[i], row, cfg)
        rewards.append(max(-cfg.reward_clip, min(cfg.reward_clip, reward)))
        valid.append(True)
    advantages = group_advantages(batch, rewards, valid)
    invalid = valid.count(False)
    if invalid:
        logger.info("reward: %d/%d samples invalid (statuses %s)", invalid, len(batch), _counts(statuses))
    return RewardResult(rewards=rewards, advantages=advantages, valid=valid, statuses=statuses)


def _counts(statuses: Sequence[str]) -> dict[str, int]:
    return {s: statuses.count(s) for s in JUDGE_STATUSES if s in statuses}


def score_batch(
    batch: TrajectoryBatch, rows: Mapping[str, ScenarioRow], cfg: JudgeConfig, backend: JudgeBackend
) -> TrajectoryBatch:
    """Plan → judge → parse → reward in one process; returns the batch with scores filled in."""
    calls = plan_requests(batch, rows, cfg)
    outputs = backend.complete([c.request for c in calls]) if calls else []
    verdicts = parse_outputs(calls, outputs)
    result = compute_rewards(batch, rows, cfg, calls, verdicts)
    logger.debug("scored %d samples with %d judge calls", len(batch), len(calls))
    return batch.with_scores(result.rewards, result.advantages, result.valid, result.statuses)
