"""Micro-batching by token budget and padding of TrajectoryBatch samples into model inputs (pure torch).

A micro-batch is a few *rows*; a row is one prompt followed by S completion slots of C columns each:

    [pad … prompt | completion 0, pad | completion 1, pad | … ]   (P + S·C columns)

Prompts are left-padded to P and completions right-padded to C, so every row shares one column
layout and the model computes logits only for the columns that predict completion tokens
(`logit_index`, passed as `logits_to_keep`), never for the rest of the prompt.

Two ways to fill the rows (docs/architecture.md §1.4):

- per sample (S = 1): each sample repeats its prompt; a 2-D padding mask, any attention backend.
- shared prefix: the G samples of a GRPO group share one prompt, so it is computed once and the
  G completions follow it in one row, each attending to the prompt and to itself only (a 4-D
  block mask) with positions continuing from the prompt. On W1 (P ≈ 260, C = 64, G = 4) a group
  costs P + G·C ≈ 520 tokens instead of G·(P + C) ≈ 1,300, and every logit is the same function of
  the same inputs as per sample (the approach of verl's PrefixGrouper).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from records.trajectory_batch import TrajectoryBatch


@dataclass(frozen=True)
class MicroBatch:
    """Padded tensors of a few rows; column `logit_index[t]`'s logits predict target column t of every row."""

    input_ids: torch.Tensor  # [b, L] with L = P + S·C
    # [b, L] 1 on real tokens (per sample), or [b, 1, L, L] bool, True where query may attend key (shared prefix).
    attention_mask: torch.Tensor
    position_ids: torch.Tensor  # [b, L]
    logit_index: torch.Tensor  # [S·C] column predicting each target column (the same in every row)
    targets: torch.Tensor  # [b, S·C] completion token ids
    old_logprobs: torch.Tensor  # [b, S·C]
    advantages: torch.Tensor  # [b, S·C] each completion token carries its sample's advantage
    mask: torch.Tensor  # [b, S·C] 1 on action tokens of valid samples
    num_tokens: int  # real (non-padding) tokens the model runs: prompts once per row plus completions


def prompt_rows(batch: TrajectoryBatch, share_prefix: bool) -> list[list[int]]:
    """Sample indices of each row: one sample per row, or (shared prefix) all samples with an identical
    prompt, in first-seen order. Identical prompt tokens, not group ids, decide: only they make sharing exact."""
    if not share_prefix:
        return [[i] for i in range(len(batch))]
    rows: dict[tuple[int, ...], list[int]] = {}
    for i, prompt in enumerate(batch.prompt_ids):
        rows.setdefault(tuple(prompt), []).append(i)
    return list(rows.values())


def pad_micro_batch(
    batch: TrajectoryBatch, device: torch.device | str = "cpu", pad_id: int = 0, share_prefix: bool = False
) -> MicroBatch:
    """Lay `batch` out as rows (see the module docstring); completion tokens of invalid samples get mask 0."""
    prompts, completions = batch.prompt_ids, batch.completion_ids
    if any(not p for p in prompts):
        raise ValueError("a sample has an empty prompt: the first completion token needs a preceding position")
    rows = prompt_rows(batch, share_prefix)
    b, p_len, slots = len(rows), max(len(p) for p in prompts), max(len(r) for r in rows)
    c_len = max(max(len(c) for c in completions), 1)
    width = p_len + slots * c_len
    input_ids = torch.full((b, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((b, width), dtype=torch.long)
    # Slot of every column: -1 prompt, k completion k, -2 padding. It alone decides the 4-D mask.
    slot_of = torch.full((b, width), -2, dtype=torch.long)
    old = torch.zeros((b, slots * c_len), dtype=torch.float32)
    advantages = torch.zeros_like(old)
    mask = torch.zeros_like(old)
    valid = batch.valid if batch.valid is not None else [True] * len(batch)
    sample_advantages = batch.advantages or [0.0] * len(batch)
    for r, samples in enumerate(rows):
        prompt = prompts[samples[0]]
        start = p_len - len(prompt)
        input_ids[r, start:p_len] = torch.tensor(prompt, dtype=torch.long)
        position_ids[r, start:p_len] = torch.arange(len(prompt))
        slot_of[r, start:p_len] = -1
        for k, i in enumerate(samples):
            n, col, out = len(completions[i]), p_len + k * c_len, k * c_len
            input_ids[r, col : col + n] = torch.tensor(completions[i], dtype=torch.long)
            position_ids[r, col : col + n] = torch.arange(len(prompt), len(prompt) + n)
            slot_of[r, col : col + n] = k
            old[r, out : out + n] = torch.tensor(batch.completion_logprobs[i], dtype=torch.float32)
            advantages[r, out : out + c_len] = sample_advantages[i]
            mask[r, out : out + n] = float(valid[i])
    # Slot k's first token is predicted by the last prompt column, the others by the column before them.
    logit_index = torch.tensor(
        [p_len - 1 if j == 0 else p_len + k * c_len + j - 1 for k in range(slots) for j in range(c_len)]
    )
    real = slot_of > -2
    # Built where it is used: the mask is rows × L² booleans, the largest tensor of the layout.
    attention = _prefix_block_mask(slot_of.to(device)) if share_prefix else real.long()
    return MicroBatch(
        input_ids=input_ids.to(device),
        attention_mask=attention.to(device),
        position_ids=position_ids.to(device),
        logit_index=logit_index.to(device),
        targets=input_ids[:, p_len:].to(device),  # slot k's tokens sit right after slot k−1's
        old_logprobs=old.to(device),
        advantages=advantages.to(device),
        mask=mask.to(device),
        num_tokens=int(real.sum()),
    )


def _prefix_block_mask(slot_of: torch.Tensor) -> torch.Tensor:
    """[b, 1, L, L] bool: a column attends causally to the prompt and to earlier columns of its own slot.

    Padding columns attend to themselves only: a query row with no allowed key would turn softmax into
    NaN, and a NaN in an unused column still poisons the backward (NaN · 0). Nothing attends to them.
    """
    width = slot_of.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool, device=slot_of.device).tril()
    query, key = slot_of[:, :, None], slot_of[:, None, :]
    allowed = causal & (key > -2) & ((key == -1) | (key == query)) & (query > -2)
    return (allowed | torch.eye(width, dtype=torch.bool, device=slot_of.device))[:, None]


def split_by_token_budget(batch: TrajectoryBatch, budget: int, share_prefix: bool = False) -> list[TrajectoryBatch]:
    """Micro-batches of whole rows whose padded size (rows × (longest prompt + slots × longest completion))
    stays within `budget`; a row longer than the budget goes alone.

    With `share_prefix`, a prompt's samples split into several rows only when one row of all of them
    would exceed the budget, so memory stays bounded for any group size.
    """
    rows = [piece for row in prompt_rows(batch, share_prefix) for piece in _fit_row(batch, row, budget)]
    parts: list[list[int]] = []
    p_max = c_max = s_max = 0
    for row in rows:
        new_p = max(p_max, len(batch.prompt_ids[row[0]]))
        new_c = max(c_max, *(len(batch.completion_ids[i]) for i in row))
        new_s = max(s_max, len(row))
        if parts and (len(parts[-1]) + 1) * (new_p + new_s * new_c) <= budget:
            parts[-1].append(row)
            p_max, c_max, s_max = new_p, new_c, new_s
        else:
            parts.append([row])
            p_max, c_max, s_max = new_p, max(len(batch.completion_ids[i]) for i in row), len(row)
    return [batch.select([i for row in part for i in row]) for part in parts]


def _fit_row(batch: TrajectoryBatch, row: Sequence[int], budget: int) -> list[list[int]]:
    """`row` cut into consecutive pieces of at most k samples, P + k·C ≤ budget (k ≥ 1)."""
    p_len = len(batch.prompt_ids[row[0]])
    c_len = max(max(len(batch.completion_ids[i]) for i in row), 1)
    k = max(1, (budget - p_len) // c_len)
    return [list(row[j : j + k]) for j in range(0, len(row), k)]


def dummy_sample() -> TrajectoryBatch:
    """A one-token sample with zero weight: lets a rank with fewer micro-batches join the collectives."""
    return TrajectoryBatch(["<dummy>"], [0], [[0]], [[0]], [[0.0]], [""], ["stop"]).with_scores(
        [0.0], [0.0], [False], ["ok"]
    )


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target] without materialising the full log-softmax."""
    logits = logits.float()
    return logits.gather(-1, targets[..., None]).squeeze(-1) - logits.logsumexp(-1)
