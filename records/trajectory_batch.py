"""The one record type that flows rollout → judge → learner (docs/architecture.md §2.2).

A :class:`TrajectoryBatch` holds one row per *sample* (G samples per prompt share a ``group_id``).
Token sequences are ragged Python lists, not padded tensors: they travel through the Ray object store
as-is, and the learner pads per micro-batch. Judge and reward fields start empty
(``None``) and are filled with :meth:`TrajectoryBatch.with_scores`; every constructor validates
lengths so a malformed batch fails where it was built, not three actors later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

# Per-sample judge statuses (docs/architecture.md §1.2). Anything but `ok` means the sample's reward is invalid.
JUDGE_STATUSES = ("ok", "parse_error", "empty_response", "judge_error")

_PER_SAMPLE = (
    "scenario_ids",
    "group_ids",
    "prompt_ids",
    "completion_ids",
    "completion_logprobs",
    "completion_texts",
    "finish_reasons",
)
_SCORED = ("rewards", "advantages", "valid", "judge_statuses")


@dataclass(frozen=True)
class TrajectoryBatch:
    """Samples from one or more prompts, optionally scored.

    Attributes:
        scenario_ids: ScenarioRow.id each sample answers.
        group_ids: prompt index within the step; the G samples of one prompt share it.
        prompt_ids: prompt token ids (chat template applied).
        completion_ids: sampled token ids.
        completion_logprobs: behaviour-policy logprob of each sampled token (from vLLM); the
            learner's importance ratio uses these as logπ_old (docs/architecture.md §1.4).
        completion_texts: decoded completions, what the judge reads.
        finish_reasons: vLLM finish reason per sample (`stop`, `length`, …).
        policy_version: learner step whose weights generated these samples (async staleness).
        rewards / advantages / valid / judge_statuses: filled by the reward stage; `valid=False`
            samples get zero advantage and are masked out of the loss.
    """

    scenario_ids: list[str]
    group_ids: list[int]
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    completion_logprobs: list[list[float]]
    completion_texts: list[str]
    finish_reasons: list[str]
    policy_version: int = 0
    rewards: list[float] | None = None
    advantages: list[float] | None = None
    valid: list[bool] | None = None
    judge_statuses: list[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.scenario_ids)
        for name in _PER_SAMPLE + _SCORED:
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"TrajectoryBatch.{name} has {len(value)} entries, expected {n} (one per sample)")
        for i, (ids, lps) in enumerate(zip(self.completion_ids, self.completion_logprobs, strict=True)):
            if len(ids) != len(lps):
                raise ValueError(f"TrajectoryBatch sample {i}: {len(ids)} completion ids but {len(lps)} logprobs")
        if self.judge_statuses is not None:
            unknown = sorted(set(self.judge_statuses) - set(JUDGE_STATUSES))
            if unknown:
                raise ValueError(f"TrajectoryBatch: unknown judge statuses {unknown}; valid: {list(JUDGE_STATUSES)}")

    # ---- size -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.scenario_ids)

    @property
    def num_action_tokens(self) -> int:
        """Completion tokens of valid samples (all samples before scoring): the loss normaliser."""
        valid = self.valid if self.valid is not None else [True] * len(self)
        return sum(len(ids) for ids, ok in zip(self.completion_ids, valid, strict=True) if ok)

    @property
    def is_scored(self) -> bool:
        return self.advantages is not None

    # ---- building ---------------------------------------------------------------------------------
    def with_scores(
        self,
        rewards: Sequence[float],
        advantages: Sequence[float],
        valid: Sequence[bool],
        judge_statuses: Sequence[str],
    ) -> TrajectoryBatch:
        """A copy carrying the reward stage's output (validated like any other batch)."""
        return replace(
            self,
            rewards=[float(r) for r in rewards],
            advantages=[float(a) for a in advantages],
            valid=[bool(v) for v in valid],
            judge_statuses=list(judge_statuses),
        )

    def select(self, indices: Sequence[int]) -> TrajectoryBatch:
        """The samples at `indices`, in that order."""
        kwargs: dict[str, Any] = {"policy_version": self.policy_version}
        for name in _PER_SAMPLE + _SCORED:
            value = getattr(self, name)
            kwargs[name] = None if value is None else [value[i] for i in indices]
        return TrajectoryBatch(**kwargs)

    def shard_by_group(self, n: int) -> list[TrajectoryBatch]:
        """Split into `n` shards, one per data-parallel learner rank, keeping every group on one rank.

        The G samples of a group share a prompt, which the learner computes once per group and rank
        (learner/micro_batch.py), so a split group would pay for its prompt twice. Groups go largest
        first to the shard with the fewest tokens so far (a group costs its prompt once plus its
        completions), which keeps shards within one group of each other; each shard keeps the batch's
        sample order. With fewer groups than shards the extra shards are empty, which the learner
        handles (it still joins the collective ops).
        """
        if n < 1:
            raise ValueError(f"shard_by_group: n must be >= 1, got {n}")
        groups = list(self.groups().values())
        cost = [len(self.prompt_ids[g[0]]) + sum(len(self.completion_ids[i]) for i in g) for g in groups]
        loads, members = [0] * n, [[] for _ in range(n)]
        for j in sorted(range(len(groups)), key=lambda j: -cost[j]):  # stable: ties keep batch order
            rank = loads.index(min(loads))
            loads[rank] += cost[j]
            members[rank].extend(groups[j])
        return [self.select(sorted(m)) for m in members]

    def groups(self) -> dict[int, list[int]]:
        """group_id → sample indices, in first-seen order (the judge scores within groups)."""
        out: dict[int, list[int]] = {}
        for i, gid in enumerate(self.group_ids):
            out.setdefault(gid, []).append(i)
        return out

    @staticmethod
    def concat(batches: Sequence[TrajectoryBatch]) -> TrajectoryBatch:
        """Join batches sample-wise; scored fields survive only if every part has them.

        `policy_version` of the result is the oldest part's, the conservative choice for staleness.
        """
        if not batches:
            raise ValueError("concat needs at least one batch")
        kwargs: dict[str, Any] = {"policy_version": min(b.policy_version for b in batches)}
        for name in _PER_SAMPLE:
            kwargs[name] = [x for b in batches for x in getattr(b, name)]
        for name in _SCORED:
            parts = [getattr(b, name) for b in batches]
            kwargs[name] = None if any(p is None for p in parts) else [x for p in parts for x in p]
        return TrajectoryBatch(**kwargs)
