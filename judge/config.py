"""Judge and reward configuration (docs/architecture.md §1.2–1.3); the lead composes it into jobs/config.py as `judge`.

Serving options (replicas, autoscaling, HTTP, vllm/openai settings) live in judge/serve_config.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from cluster.config_checks import FieldChecks
from judge.prompts import JUDGE_PROMPT_STYLES

# Reward modes registered in judge/reward.py (docs/architecture.md §1.3).
REWARD_MODES = ("peer_pairwise", "anchor", "pointwise")
# Which reference response the `anchor` mode compares every rollout against.
ANCHOR_REFERENCES = ("a", "b")
# Fields the job reads, not the judge pool: they may differ between a job and the shared pool it attaches to.
JOB_SIDE_FIELDS = ("pool",)


@dataclass
class JudgeConfig:
    """How rollouts are judged and turned into rewards."""

    # Judge backend registry name (judge/backends/__init__.py): offline, vllm, openai.
    backend: str = "offline"
    # App name of a running `serve-judge` pool to judge with instead of starting one (empty = start our own).
    pool: str = ""
    # How rewards are computed: peer_pairwise (all G(G−1)/2 pairs), anchor (vs a reference), pointwise.
    reward_mode: str = "peer_pairwise"
    # Show the human annotator block to the judge (the paper's annotation-conditioned judge).
    enable_annotations: bool = True
    # Judge prompt wording (judge/prompts.py): full (prose, for hub and hosted judges) or compact (the
    # same structure in about half the tokens, the format the tiny judge model is trained on).
    prompt_style: str = "full"
    # Judge each pair in both orders and average s and −s' (cancels position bias; doubles judge calls).
    enable_dual_order: bool = True
    # Candidates are truncated to this many words before judging.
    max_candidate_words: int = 1000
    # Subtracted when a completion is not a well-formed final tool call (docs/architecture.md §1.3).
    format_penalty: float = 1.0
    # Largest short-answer penalty, reached at zero payload words.
    short_answer_penalty: float = 4.0
    # Short-answer floor = this ratio × mean payload words of the two reference responses.
    short_answer_floor_ratio: float = 0.5
    # Pointwise mode: reward = −leak − λ·omit; this is λ (an omission costs less than a leak).
    pointwise_omit_weight: float = 0.5
    # Rewards are clamped to [−reward_clip, reward_clip] after penalties, before the group mean.
    reward_clip: float = 5.0
    # Anchor mode: the reference response ("a" or "b") each rollout is compared against.
    anchor_reference: str = "a"
    # Offline backend: seconds each request takes, as at a remote judge serving requests concurrently.
    offline_latency_s: float = 0.0
    # Judge sampling seed, recorded in every verdict's provenance.
    seed: int = 0

    def __post_init__(self) -> None:
        checks = FieldChecks(self, "judge")
        if not self.backend:
            checks.fail("judge.backend must name a backend, e.g. judge.backend=offline")
        if self.pool != self.pool.strip():
            checks.fail(f"judge.pool must be a Serve app name without surrounding spaces, got {self.pool!r}")
        checks.one_of("reward_mode", REWARD_MODES)
        checks.one_of("prompt_style", tuple(JUDGE_PROMPT_STYLES))
        checks.one_of("anchor_reference", ANCHOR_REFERENCES)
        checks.bounds("max_candidate_words", ge=1)
        subtracted = ("format_penalty", "short_answer_penalty", "pointwise_omit_weight")
        checks.bounds(*subtracted, "offline_latency_s", ge=0, hint=" (it is subtracted / slept)")
        checks.bounds("short_answer_floor_ratio", ge=0, le=1)
        checks.bounds("reward_clip", gt=0)
        checks.done()
