"""KL(π‖π_ref) to the frozen reference policy (docs/architecture.md §1.4): exact full-vocabulary, or sampled k3.

The exact form is what the paper uses. A naive `log_softmax` of both logit tensors plus their
product allocates several [tokens, vocab] float tensors and keeps them for backward; for a 150k
vocabulary that dwarfs the model. Here the forward pass walks (position chunk × vocabulary chunk)
tiles, keeping only per-position log-normalisers, and a custom backward recomputes the tiles, so the
extra memory is one tile plus the gradient of the logits (which autograd needs anyway).
"""

from __future__ import annotations

import torch

KL_ESTIMATORS = ("full", "k3")


def check_kl_estimator(name: str) -> str:
    """`name` if it is a known estimator; ValueError listing valid names otherwise."""
    if name not in KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {name!r}; valid: {list(KL_ESTIMATORS)}")
    return name


def _acc_dtype(logits: torch.Tensor) -> torch.dtype:
    """Accumulate in float32 at least: bf16 logsumexp over a large vocabulary loses whole nats."""
    return torch.promote_types(logits.dtype, torch.float32)


def _chunked_logsumexp(logits: torch.Tensor, vocab_chunk: int) -> torch.Tensor:
    """logsumexp over the last dim of [N, V] `logits`, one vocabulary chunk at a time."""
    acc = _acc_dtype(logits)
    out = torch.full(logits.shape[:-1], float("-inf"), dtype=acc, device=logits.device)
    for v0 in range(0, logits.shape[-1], vocab_chunk):
        out = torch.logaddexp(out, logits[:, v0 : v0 + vocab_chunk].to(acc).logsumexp(-1))
    return out


class _FullReverseKL(torch.autograd.Function):
    """Per-position Σ_v p_v (log p_v − log q_v) over [N, V] logits, memory-bounded both ways."""

    @staticmethod
    def forward(ctx, logits, ref_logits, position_chunk: int, vocab_chunk: int):  # type: ignore[override]
        n, vocab = logits.shape
        acc = _acc_dtype(logits)
        lse_p = torch.empty(n, dtype=acc, device=logits.device)
        lse_q = torch.empty_like(lse_p)
        kl = torch.zeros_like(lse_p)
        for n0 in range(0, n, position_chunk):
            z, y = logits[n0 : n0 + position_chunk], ref_logits[n0 : n0 + position_chunk]
            lp, lq = _chunked_logsumexp(z, vocab_chunk), _chunked_logsumexp(y, vocab_chunk)
            lse_p[n0 : n0 + position_chunk], lse_q[n0 : n0 + position_chunk] = lp, lq
            for v0 in range(0, vocab, vocab_chunk):
                logp = z[:, v0 : v0 + vocab_chunk].to(acc) - lp[:, None]
                logq = y[:, v0 : v0 + vocab_chunk].to(acc) - lq[:, None]
                kl[n0 : n0 + position_chunk] += (logp.exp() * (logp - logq)).sum(-1)
        ctx.save_for_backward(logits, ref_logits, lse_p, lse_q, kl)
        ctx.chunks = (position_chunk, vocab_chunk)
        return kl

    @staticmethod
    def backward(ctx, grad_kl):  # type: ignore[override]
        logits, ref_logits, lse_p, lse_q, kl = ctx.saved_tensors
        position_chunk, vocab_chunk = ctx.chunks
        grad = torch.empty_like(logits)
        # ∂KL/∂z_j = p_j·((log p_j − log q_j) − KL): recomputed tile by tile from the saved normalisers.
        for n0 in range(0, logits.shape[0], position_chunk):
            rows = slice(n0, n0 + position_chunk)
            g, k = grad_kl[rows].to(kl.dtype)[:, None], kl[rows][:, None]
            for v0 in range(0, logits.shape[1], vocab_chunk):
                cols = slice(v0, v0 + vocab_chunk)
                logp = logits[rows, cols].to(kl.dtype) - lse_p[rows, None]
                logq = ref_logits[rows, cols].to(kl.dtype) - lse_q[rows, None]
                grad[rows, cols] = (g * logp.exp() * (logp - logq - k)).to(grad.dtype)
        return grad, None, None, None


def full_reverse_kl(
    logits: torch.Tensor,
    ref_logits: torch.Tensor,
    position_chunk: int = 1024,
    vocab_chunk: int = 16384,
) -> torch.Tensor:
    """Exact KL(π‖π_ref) at every position, from the two models' logits.

    Args:
        logits: [..., V] policy logits (gradient flows into them).
        ref_logits: [..., V] reference logits (treated as constants).
        position_chunk: positions per tile.
        vocab_chunk: vocabulary entries per tile.

    Returns:
        [...] KL per position (≥ 0), in float32 or the logits' dtype if wider.
    """
    if position_chunk < 1 or vocab_chunk < 1:
        raise ValueError(f"KL chunk sizes must be >= 1, got position_chunk={position_chunk}, vocab_chunk={vocab_chunk}")
    if logits.shape != ref_logits.shape:
        raise ValueError(f"policy logits {tuple(logits.shape)} and reference logits {tuple(ref_logits.shape)} differ")
    lead = logits.shape[:-1]
    flat = logits.reshape(-1, logits.shape[-1])
    ref_flat = ref_logits.detach().reshape(-1, logits.shape[-1])
    return _FullReverseKL.apply(flat, ref_flat, position_chunk, vocab_chunk).reshape(lead)


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(π‖π_ref) from sampled-token logprobs: e^δ − δ − 1, δ = logπ_ref − logπ.

    Unbiased for tokens sampled from π and always ≥ 0; cheap, but noisy compared with `full_reverse_kl`.
    """
    delta = ref_logprobs.detach().float() - logprobs.float()
    return torch.expm1(delta) - delta
