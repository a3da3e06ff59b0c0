"""Shared-prefix layout: a hand-checked small layout, group-aware micro-batching, the support check, and
equivalence with one sample per row (logprobs, full KL, loss, gradients) on a plain torch Qwen2.

Run with `-s` to see the largest relative differences (the numbers quoted in docs/architecture.md §1.4).
"""

from __future__ import annotations

import copy
import random

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from learner.config import LearnerConfig
from learner.kl import full_reverse_kl
from learner.losses import policy_loss
from learner.micro_batch import pad_micro_batch, prompt_rows, split_by_token_budget, token_logprobs
from learner.model_forward import completion_logits, resolve_shared_prefix, shared_prefix_unsupported
from records.trajectory_batch import TrajectoryBatch

VOCAB = 96
KL_COEF = 0.05


def grouped_batch(seed: int, groups: int = 4) -> TrajectoryBatch:
    """GRPO-shaped: groups of 1–4 samples sharing a prompt of 2–11 tokens, completions of 1–9 tokens,
    every 5th sample invalid, behaviour logprobs near a uniform policy's."""
    rng = random.Random(seed)
    prompts, completions, gids = [], [], []
    for gid in range(groups):
        prompt = [rng.randrange(1, VOCAB) for _ in range(rng.randint(2, 11))]
        for _ in range(rng.randint(1, 4)):
            prompts.append(prompt)
            completions.append([rng.randrange(1, VOCAB) for _ in range(rng.randint(1, 9))])
            gids.append(gid)
    n = len(prompts)
    logprobs = [[-4.56 + rng.uniform(-0.3, 0.3) for _ in c] for c in completions]
    texts = [f"t{i}" for i in range(n)]  # unique: lets a test map micro-batch samples back to batch indices
    batch = TrajectoryBatch([f"s{g}" for g in gids], gids, prompts, completions, logprobs, texts, ["stop"] * n)
    advantages = [rng.uniform(-1.5, 1.5) for _ in range(n)]
    return batch.with_scores([0.0] * n, advantages, [i % 5 != 4 for i in range(n)], ["ok"] * n)


def tiny_models(attention: str) -> tuple[Qwen2ForCausalLM, Qwen2ForCausalLM]:
    """A random Qwen2 (2 query heads over 1 KV head, like the grouped-query checkpoints) and a perturbed copy
    as the frozen reference, so the KL is far from zero."""
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=128,
                      attn_implementation=attention)  # fmt: skip
    policy = Qwen2ForCausalLM(cfg)
    ref = copy.deepcopy(policy).requires_grad_(False)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return policy, ref


def per_sample(batch: TrajectoryBatch, tensor: torch.Tensor, share: bool) -> list[torch.Tensor]:
    """A [rows, S·C] micro-batch tensor cut back into each sample's completion-token values."""
    rows = prompt_rows(batch, share)
    c_len = tensor.shape[1] // max(len(r) for r in rows)
    out: list[torch.Tensor] = [torch.empty(0)] * len(batch)
    for r, samples in enumerate(rows):
        for k, i in enumerate(samples):
            out[i] = tensor[r, k * c_len : k * c_len + len(batch.completion_ids[i])]
    return out


def run_step(policy, ref, batch: TrajectoryBatch, share: bool, budget: int) -> dict:
    """What the learner's micro-step loop computes, on the policy's device: per-token logprobs and KL, summed
    loss, gradients (returned on the CPU)."""
    device = next(policy.parameters()).device
    policy.zero_grad(set_to_none=True)
    logprobs, kls, loss_total = [None] * len(batch), [None] * len(batch), 0.0
    for part_ids in _parts(batch, budget, share):
        part = batch.select(part_ids)
        mb = pad_micro_batch(part, device, share_prefix=share)
        logits = completion_logits(policy, mb)
        lp = token_logprobs(logits, mb.targets)
        with torch.no_grad():
            ref_logits = completion_logits(ref, mb)
        kl = full_reverse_kl(logits, ref_logits, position_chunk=7, vocab_chunk=40)
        out = policy_loss("sapo", lp, mb.old_logprobs, mb.advantages, mb.mask)
        loss = out.loss_sum + KL_COEF * (kl * mb.mask).sum()
        loss.backward()
        loss_total += loss.item()
        token_lp, token_kl = per_sample(part, lp.detach().cpu(), share), per_sample(part, kl.detach().cpu(), share)
        for j, i in enumerate(part_ids):
            logprobs[i], kls[i] = token_lp[j], token_kl[j]
    grads = {n: p.grad.float().cpu() for n, p in policy.named_parameters()}
    return {"logprobs": torch.cat(logprobs), "kl": torch.cat(kls), "loss": loss_total, "grads": grads}


def _parts(batch: TrajectoryBatch, budget: int, share: bool) -> list[list[int]]:
    """Sample indices of each micro-batch (split_by_token_budget returns sub-batches; map them back by text)."""
    index = {text: i for i, text in enumerate(batch.completion_texts)}
    return [[index[t] for t in p.completion_texts] for p in split_by_token_budget(batch, budget, share)]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def largest_differences(shared: dict, base: dict) -> dict[str, float]:
    """Largest relative differences of the shared-prefix step from the per-sample one."""
    grad_norm = [torch.stack([g.norm() for g in r["grads"].values()]).norm() for r in (shared, base)]
    return {
        "logprobs": ((shared["logprobs"] - base["logprobs"]).abs() / base["logprobs"].abs()).max().item(),
        "kl": rel(shared["kl"], base["kl"]),
        "loss": abs(shared["loss"] - base["loss"]) / abs(base["loss"]),
        "grad_norm": abs(grad_norm[0] / grad_norm[1] - 1).item(),
        "grads": max(rel(shared["grads"][n], g) for n, g in base["grads"].items()),
    }


def test_layout_of_one_group_by_hand() -> None:
    batch = TrajectoryBatch(["a"] * 2 + ["b"], [0, 0, 1], [[5, 6, 7], [5, 6, 7], [8, 9]], [[1, 2], [3], [4, 4]],
                            [[-0.1, -0.2], [-0.3], [-0.4, -0.5]], [""] * 3, ["stop"] * 3)  # fmt: skip
    batch = batch.with_scores([0.0] * 3, [1.0, -1.0, 0.5], [True, True, False], ["ok"] * 3)
    mb = pad_micro_batch(batch, share_prefix=True)
    # Rows: prompt once, then slots of C = 2 columns. Row 1 has one sample, so its second slot is padding.
    assert mb.input_ids.tolist() == [[5, 6, 7, 1, 2, 3, 0], [0, 8, 9, 4, 4, 0, 0]]
    assert mb.position_ids.tolist() == [[0, 1, 2, 3, 4, 3, 0], [0, 0, 1, 2, 3, 0, 0]]
    assert mb.logit_index.tolist() == [2, 3, 2, 5]  # slot 1's first token is predicted by the prompt's end
    assert mb.targets.tolist() == [[1, 2, 3, 0], [4, 4, 0, 0]]
    assert mb.mask.tolist() == [[1, 1, 1, 0], [0, 0, 0, 0]]  # sample 2 is invalid
    assert mb.advantages.tolist() == [[1.0, 1.0, -1.0, -1.0], [0.5, 0.5, 0.0, 0.0]]
    torch.testing.assert_close(mb.old_logprobs, torch.tensor([[-0.1, -0.2, -0.3, 0], [-0.4, -0.5, 0, 0]]))
    assert mb.num_tokens == 3 + 2 + 1 + 2 + 2
    t, f = True, False
    assert mb.attention_mask[0, 0].tolist() == [
        [t, f, f, f, f, f, f],
        [t, t, f, f, f, f, f],
        [t, t, t, f, f, f, f],
        [t, t, t, t, f, f, f],  # completion 0 sees the prompt and itself …
        [t, t, t, t, t, f, f],
        [t, t, t, f, f, t, f],  # … completion 1 sees the prompt and itself, never completion 0
        [f, f, f, f, f, f, t],  # padding sees only itself (no NaN row) and nothing sees it
    ]
    assert mb.attention_mask[1, 0, 1].tolist() == [f, t, f, f, f, f, f]  # left padding is never attended


# One micro-batch each, and (SDPA, the default backend) a budget that splits groups across micro-batches and rows.
@pytest.mark.parametrize(("attention", "budget"), [("sdpa", 4096), ("sdpa", 24), ("eager", 4096)])
def test_shared_prefix_equals_one_sample_per_row(attention: str, budget: int) -> None:
    policy, ref = tiny_models(attention)
    batch = grouped_batch(seed=1)
    assert len(prompt_rows(batch, share_prefix=True)) < len(batch), "the batch must contain real groups"
    base = run_step(policy, ref, batch, share=False, budget=budget)
    shared = run_step(policy, ref, batch, share=True, budget=budget)
    diffs = largest_differences(shared, base)
    print(f"\n{attention} budget={budget} largest relative differences: "
          + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))  # fmt: skip
    assert base["kl"].max() > 1e-3, "the reference must differ, or the KL comparison proves nothing"
    for name, diff in diffs.items():
        assert diff < 1e-5, (name, diff)
    if budget == 4096:
        # Both layouts share the packer, so also hold the shared one to each sample run alone, unpadded.
        with torch.no_grad():
            alone = torch.cat([
                token_logprobs(policy(input_ids=torch.tensor([p + c])).logits[0, len(p) - 1 : -1], torch.tensor(c))
                for p, c in zip(batch.prompt_ids, batch.completion_ids, strict=True)
            ])  # fmt: skip
        torch.testing.assert_close(shared["logprobs"], alone, rtol=1e-5, atol=1e-6)


def test_split_by_token_budget_keeps_groups_together_within_budget() -> None:
    batch = grouped_batch(seed=3, groups=8)
    for budget in (4096, 40, 12):
        parts = split_by_token_budget(batch, budget, share_prefix=True)
        assert sorted(t for p in parts for t in p.completion_texts) == sorted(batch.completion_texts)
        for part in parts:
            mb = pad_micro_batch(part, share_prefix=True)
            rows, width = mb.input_ids.shape
            assert rows * width <= budget or (rows == 1 and len(part) == 1), (budget, rows, width)
    # A large budget keeps each group in one row and never splits a group across micro-batches.
    for part in split_by_token_budget(batch, 4096, share_prefix=True):
        assert len(prompt_rows(part, share_prefix=True)) == len(set(part.group_ids))
    # A budget too small for a whole group splits it into rows that each fit: P + k·C <= budget.
    big = grouped_batch(seed=5, groups=1)
    pieces = split_by_token_budget(big, 14, share_prefix=True)
    assert len(pieces) > 1 or len(big) == 1


def test_support_check_and_fallback() -> None:
    def cfg(**kw):
        return Qwen2Config(vocab_size=8, hidden_size=8, num_attention_heads=1, num_key_value_heads=1, **kw)

    assert shared_prefix_unsupported(cfg(attn_implementation="sdpa")) is None
    assert resolve_shared_prefix("auto", cfg(attn_implementation="eager")) is True
    assert resolve_shared_prefix("off", cfg(attn_implementation="sdpa")) is False
    flash = cfg()
    flash._attn_implementation = "flash_attention_2"  # settable without flash-attn installed
    assert "ignores custom 4-D masks" in shared_prefix_unsupported(flash)
    assert resolve_shared_prefix("auto", flash) is False
    with pytest.raises(ValueError, match="shared_prefix=on but attention implementation 'flash_attention_2'"):
        resolve_shared_prefix("on", flash)
    sliding = cfg(attn_implementation="sdpa", use_sliding_window=True, sliding_window=4, max_window_layers=0)
    assert "sliding-window" in shared_prefix_unsupported(sliding)
    with pytest.raises(ValueError, match=r"learner.shared_prefix 'yes'; valid: \['auto', 'on', 'off'\]"):
        LearnerConfig(shared_prefix="yes")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_shared_prefix_on_cuda_through_the_memory_efficient_kernel() -> None:
    """The GPU path: SDPA's memory-efficient kernel (the CUDA kernel that takes an arbitrary mask) runs the
    shared layout, in float32 at the CPU test's tolerance and in bf16 (the GPU presets' precision) at bf16's."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    batch = grouped_batch(seed=1)
    policy, ref = (m.cuda() for m in tiny_models("sdpa"))
    # Forcing the one backend makes SDPA raise instead of silently falling back to the math kernel.
    with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
        base = run_step(policy, ref, batch, share=False, budget=4096)
        shared = run_step(policy, ref, batch, share=True, budget=4096)
        diffs = largest_differences(shared, base)
        print("\ncuda float32 largest relative differences: " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
        assert all(diff < 1e-5 for diff in diffs.values()), diffs
        policy, ref = policy.bfloat16(), ref.bfloat16()
        base = run_step(policy, ref, batch, share=False, budget=4096)
        shared = run_step(policy, ref, batch, share=True, budget=4096)
    # bf16 rounds differently per layout (different reduction lengths): held to bf16's resolution only.
    torch.testing.assert_close(shared["logprobs"], base["logprobs"], rtol=2e-2, atol=5e-2)
