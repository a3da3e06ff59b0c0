"""Micro-batching by token budget and padding of TrajectoryBatch samples into model inputs (pure torch).

Prompts are left-padded and completions right-padded, so every completion starts at the same column
P: the model then computes logits only for columns P−1 … P+C−2 (`logits_to_keep`), the ones that
predict completion tokens, instead of for the whole prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rollout.batch import TrajectoryBatch


@dataclass(frozen=True)
class MicroBatch:
    """Padded tensors of a few samples: prompts left-padded, completions right-padded, so every
    completion starts at the same column and only those columns' logits are computed."""

    input_ids: torch.Tensor  # [b, P + C]
    attention_mask: torch.Tensor  # [b, P + C]
    position_ids: torch.Tensor  # [b, P + C]
    targets: torch.Tensor  # [b, C] completion token ids
    old_logprobs: torch.Tensor  # [b, C]
    advantages: torch.Tensor  # [b]
    mask: torch.Tensor  # [b, C] 1 on action tokens
    prompt_len: int  # P

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())


def pad_micro_batch(batch: TrajectoryBatch, device: torch.device | str = "cpu", pad_id: int = 0) -> MicroBatch:
    """Pad `batch` into a MicroBatch; completion tokens of samples marked invalid get mask 0."""
    prompts, completions = batch.prompt_ids, batch.completion_ids
    if any(not p for p in prompts):
        raise ValueError("a sample has an empty prompt: the first completion token needs a preceding position")
    p_len = max(len(p) for p in prompts)
    c_len = max(max(len(c) for c in completions), 1)
    b = len(batch)
    input_ids = torch.full((b, p_len + c_len), pad_id, dtype=torch.long)
    attention = torch.zeros((b, p_len + c_len), dtype=torch.long)
    old = torch.zeros((b, c_len), dtype=torch.float32)
    for i, (prompt, completion, logprobs) in enumerate(
        zip(prompts, completions, batch.completion_logprobs, strict=True)
    ):
        start, stop = p_len - len(prompt), p_len + len(completion)
        input_ids[i, start:p_len] = torch.tensor(prompt, dtype=torch.long)
        input_ids[i, p_len:stop] = torch.tensor(completion, dtype=torch.long)
        attention[i, start:stop] = 1
        old[i, : len(completion)] = torch.tensor(logprobs, dtype=torch.float32)
    valid = torch.tensor(batch.valid if batch.valid is not None else [True] * b, dtype=torch.float32)
    mask = attention[:, p_len:].to(torch.float32) * valid[:, None]
    advantages = torch.tensor(batch.advantages or [0.0] * b, dtype=torch.float32)
    position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
    return MicroBatch(
        input_ids=input_ids.to(device),
        attention_mask=attention.to(device),
        position_ids=position_ids.to(device),
        targets=input_ids[:, p_len:].to(device),
        old_logprobs=old.to(device),
        advantages=advantages.to(device),
        mask=mask.to(device),
        prompt_len=p_len,
    )


def split_by_token_budget(batch: TrajectoryBatch, budget: int) -> list[TrajectoryBatch]:
    """Consecutive groups of samples whose padded size (rows × longest prompt + longest completion)
    stays within `budget`; a sample longer than the budget goes alone."""
    groups: list[list[int]] = []
    p_max = c_max = 0
    for i, (p, c) in enumerate(zip(batch.prompt_ids, batch.completion_ids, strict=True)):
        new_p, new_c = max(p_max, len(p)), max(c_max, len(c))
        if groups and (len(groups[-1]) + 1) * (new_p + new_c) <= budget:
            groups[-1].append(i)
            p_max, c_max = new_p, new_c
        else:
            groups.append([i])
            p_max, c_max = len(p), len(c)
    return [batch.select(g) for g in groups]


def dummy_sample() -> TrajectoryBatch:
    """A one-token sample with zero weight: lets a rank with fewer micro-batches join the collectives."""
    return TrajectoryBatch(["<dummy>"], [0], [[0]], [[0]], [[0.0]], [""], ["stop"]).with_scores(
        [0.0], [0.0], [False], ["ok"]
    )


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target] without materialising the full log-softmax."""
    logits = logits.float()
    return logits.gather(-1, targets[..., None]).squeeze(-1) - logits.logsumexp(-1)
