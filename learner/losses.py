"""Policy-gradient losses on padded token tensors (docs/architecture.md §1.4), registered by exact name.

Every loss sees the importance ratio r = exp(logπ − logπ_old), where logπ_old are the behaviour
logprobs vLLM returned for the sampled tokens, and returns the *summed* loss over action tokens.
Normalising by the global action-token count is the engine's job: only it knows the count across
micro-batches and data-parallel ranks (so 2 ranks × B equals 1 rank × 2B).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

# SAPO temperatures (docs/architecture.md §1.4): a slightly sharper gate for negative advantages.
SAPO_TAU_POS = 1.0
SAPO_TAU_NEG = 1.05


@dataclass(frozen=True)
class LossParams:
    """Hyper-parameters a loss may read; unused ones are ignored."""

    # PPO/GRPO clip range below 1: the ratio is clipped at 1 − clip_eps_low.
    clip_eps_low: float = 0.2
    # PPO/GRPO clip range above 1: the ratio is clipped at 1 + clip_eps_high (DAPO's "clip higher").
    clip_eps_high: float = 0.2


@dataclass(frozen=True)
class PolicyLossOutput:
    """Summed loss and summed statistics, so the engine can add them over micro-batches and ranks.

    Attributes:
        loss_sum: Σ over action tokens of the per-token loss (carries the graph).
        ratio_sum: Σ r over action tokens (detached).
        clipped_tokens: action tokens whose gradient the loss cut off (PPO clip; 0 for others).
        num_tokens: action tokens counted (mask sum).
    """

    loss_sum: torch.Tensor
    ratio_sum: torch.Tensor
    clipped_tokens: torch.Tensor
    num_tokens: torch.Tensor


# A per-token loss: (ratio, advantages, params) -> (per-token loss, per-token "clipped" bool).
TokenLoss = Callable[[torch.Tensor, torch.Tensor, LossParams], tuple[torch.Tensor, torch.Tensor]]


def _sapo(ratio: torch.Tensor, adv: torch.Tensor, params: LossParams) -> tuple[torch.Tensor, torch.Tensor]:
    # −σ(τ(r−1))·(4/τ)·A: d/dr at r = 1 is −4·σ'(0)·A = −A, the vanilla gradient; far from r = 1 the
    # sigmoid gate fades the gradient smoothly instead of PPO's hard cut.
    tau = torch.where(adv >= 0, torch.full_like(adv, SAPO_TAU_POS), torch.full_like(adv, SAPO_TAU_NEG))
    loss = -torch.sigmoid(tau * (ratio - 1.0)) * (4.0 / tau) * adv
    return loss, torch.zeros_like(ratio, dtype=torch.bool)


def _vanilla(ratio: torch.Tensor, adv: torch.Tensor, params: LossParams) -> tuple[torch.Tensor, torch.Tensor]:
    return -ratio * adv, torch.zeros_like(ratio, dtype=torch.bool)


def _clipped(ratio: torch.Tensor, adv: torch.Tensor, params: LossParams) -> tuple[torch.Tensor, torch.Tensor]:
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - params.clip_eps_low, 1.0 + params.clip_eps_high) * adv
    # max of the negated surrogates = −min(r·A, clip(r)·A); the clipped branch has zero gradient.
    return -torch.minimum(unclipped, clipped), clipped < unclipped


POLICY_LOSSES: dict[str, TokenLoss] = {"sapo": _sapo, "vanilla": _vanilla, "clipped": _clipped}


def get_policy_loss(name: str) -> TokenLoss:
    """The per-token loss registered under `name`; ValueError listing valid names otherwise."""
    if name not in POLICY_LOSSES:
        raise ValueError(f"unknown policy loss {name!r}; valid: {sorted(POLICY_LOSSES)}")
    return POLICY_LOSSES[name]


def policy_loss(
    name: str,
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    params: LossParams | None = None,
) -> PolicyLossOutput:
    """Summed policy loss over the action tokens selected by `mask`.

    Args:
        name: registered loss (`sapo`, `vanilla`, `clipped`).
        logprobs: [B, T] current-policy logprobs of the sampled tokens (with grad).
        old_logprobs: [B, T] behaviour logprobs (logπ_old); no gradient flows into them.
        advantages: [B, T] per-token advantages, or [B] per-sample ones broadcast to every token.
        mask: [B, T] 1 for action tokens of valid samples, 0 for padding and invalid samples.
        params: clip ranges for `clipped`.

    Returns:
        Summed loss and summed statistics (see PolicyLossOutput).
    """
    token_loss = get_policy_loss(name)
    params = params or LossParams()
    if advantages.dim() == 1:
        advantages = advantages[:, None].expand_as(logprobs)
    mask = mask.to(logprobs.dtype)
    # Padding may hold arbitrary logprobs: zero the log-ratio there so exp() cannot overflow to inf·0.
    log_ratio = (logprobs - old_logprobs.detach()) * mask
    ratio = torch.exp(log_ratio)
    per_token, clipped = token_loss(ratio, advantages.to(logprobs.dtype), params)
    return PolicyLossOutput(
        loss_sum=(per_token * mask).sum(),
        ratio_sum=(ratio.detach() * mask).sum(),
        clipped_tokens=(clipped.to(mask.dtype) * mask).sum(),
        num_tokens=mask.sum(),
    )
