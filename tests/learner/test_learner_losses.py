"""Policy losses and KL: hand-computed values, loop-vs-vectorised equivalence, gradient identities."""

from __future__ import annotations

import math

import pytest
import torch

from learner.kl import check_kl_estimator, full_reverse_kl, k3_kl
from learner.losses import LossParams, get_policy_loss, policy_loss


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# Two samples, three token slots; sample 1 has one padding slot.
LOGP = torch.tensor([[-1.0, -2.0, -0.5], [-1.5, -0.2, 9.0]], dtype=torch.float64)
OLD = torch.tensor([[-1.2, -1.9, -0.5], [-1.0, -0.7, 0.0]], dtype=torch.float64)
ADV = torch.tensor([1.5, -0.5], dtype=torch.float64)
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.float64)


def _hand_loss(name: str, eps_low: float = 0.2, eps_high: float = 0.28) -> tuple[float, int]:
    """Per-token loss written out with Python floats, one token at a time."""
    total, clipped = 0.0, 0
    for b in range(2):
        a = float(ADV[b])
        for t in range(3):
            if not MASK[b, t]:
                continue
            r = math.exp(float(LOGP[b, t]) - float(OLD[b, t]))
            if name == "vanilla":
                total += -r * a
            elif name == "sapo":
                tau = 1.0 if a >= 0 else 1.05
                total += -_sigmoid(tau * (r - 1.0)) * (4.0 / tau) * a
            else:
                rc = min(max(r, 1.0 - eps_low), 1.0 + eps_high)
                total += -min(r * a, rc * a)
                clipped += rc * a < r * a
    return total, clipped


@pytest.mark.parametrize("name", ["sapo", "vanilla", "clipped"])
def test_loss_matches_token_loop(name: str) -> None:
    out = policy_loss(name, LOGP, OLD, ADV, MASK, LossParams(clip_eps_low=0.2, clip_eps_high=0.28))
    expected, clipped = _hand_loss(name)
    assert out.loss_sum.item() == pytest.approx(expected, rel=1e-12)
    assert out.num_tokens.item() == 5
    assert out.clipped_tokens.item() == clipped


def test_hand_computed_values() -> None:
    # One token, r = e^0.2 ≈ 1.2214, A = 2: vanilla −2.4428; clipped at 1.2 → −2.4; sapo −σ(0.2214)·4·2.
    lp, old, adv, mask = (torch.tensor([[v]], dtype=torch.float64) for v in (0.0, -0.2, 2.0, 1.0))
    adv = adv[0]
    r = math.exp(0.2)
    assert policy_loss("vanilla", lp, old, adv, mask).loss_sum.item() == pytest.approx(-2 * r)
    clipped = policy_loss("clipped", lp, old, adv, mask, LossParams(0.2, 0.2))
    assert clipped.loss_sum.item() == pytest.approx(-2.4)
    assert clipped.clipped_tokens.item() == 1
    assert policy_loss("sapo", lp, old, adv, mask).loss_sum.item() == pytest.approx(-8 * _sigmoid(r - 1), rel=1e-12)
    # Negative advantage uses τ = 1.05: −σ(1.05·(r−1))·(4/1.05)·(−2).
    neg = policy_loss("sapo", lp, old, -adv, mask).loss_sum.item()
    assert neg == pytest.approx(8 / 1.05 * _sigmoid(1.05 * (r - 1)), rel=1e-12)


def test_sapo_gradient_equals_vanilla_at_ratio_one() -> None:
    torch.manual_seed(0)
    old = torch.randn(3, 5, dtype=torch.float64)
    adv = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    mask = torch.ones(3, 5, dtype=torch.float64)
    grads = {}
    for name in ("sapo", "vanilla"):
        lp = old.clone().requires_grad_(True)  # r = 1 everywhere
        policy_loss(name, lp, old, adv, mask).loss_sum.backward()
        grads[name] = lp.grad
    torch.testing.assert_close(grads["sapo"], grads["vanilla"], rtol=1e-12, atol=1e-12)
    # And away from r = 1 they differ (the test can fail).
    lp = (old + 0.5).requires_grad_(True)
    policy_loss("sapo", lp, old, adv, mask).loss_sum.backward()
    assert not torch.allclose(lp.grad, grads["vanilla"])


def test_padding_with_extreme_logprobs_is_ignored() -> None:
    logp = LOGP.clone()
    logp[1, 2] = 1e4  # exp() would overflow without masking the log-ratio
    out = policy_loss("vanilla", logp, OLD, ADV, MASK)
    assert torch.isfinite(out.loss_sum)
    assert out.loss_sum.item() == pytest.approx(_hand_loss("vanilla")[0])


def test_unknown_names_list_valid_ones() -> None:
    with pytest.raises(ValueError, match="sapo"):
        get_policy_loss("ppo")
    with pytest.raises(ValueError, match="k3"):
        check_kl_estimator("k2")


def _naive_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    logp, logq = logits.log_softmax(-1), ref_logits.log_softmax(-1)
    return (logp.exp() * (logp - logq)).sum(-1)


@pytest.mark.parametrize("position_chunk,vocab_chunk", [(1, 7), (4, 64), (1000, 100000), (3, 1)])
def test_chunked_full_kl_equals_unchunked(position_chunk: int, vocab_chunk: int) -> None:
    torch.manual_seed(1)
    logits = (3 * torch.randn(2, 5, 50, dtype=torch.float64)).requires_grad_(True)
    ref = 3 * torch.randn(2, 5, 50, dtype=torch.float64)
    weights = torch.randn(2, 5, dtype=torch.float64)
    chunked = full_reverse_kl(logits, ref, position_chunk, vocab_chunk)
    (chunked * weights).sum().backward()
    grad_chunked = logits.grad.clone()
    logits.grad = None
    naive = _naive_kl(logits, ref)
    (naive * weights).sum().backward()
    torch.testing.assert_close(chunked, naive, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_chunked, logits.grad, rtol=1e-10, atol=1e-12)
    assert chunked.dtype == torch.float64
    assert (chunked >= -1e-6).all()


def test_full_kl_is_zero_for_identical_models_and_matches_two_token_example() -> None:
    logits = torch.randn(4, 9)
    assert full_reverse_kl(logits, logits.clone()).abs().max().item() < 1e-6
    # p = (0.5, 0.5), q = (0.8, 0.2): KL = 0.5·ln(0.5/0.8) + 0.5·ln(0.5/0.2).
    p_logits = torch.zeros(1, 2)
    q_logits = torch.tensor([[math.log(0.8), math.log(0.2)]])
    expected = 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)
    assert full_reverse_kl(p_logits, q_logits, 1, 1).item() == pytest.approx(expected, rel=1e-6)


def test_k3_hand_value_and_mean_approximates_kl() -> None:
    # δ = ln 2 → e^δ − δ − 1 = 1 − ln 2.
    assert k3_kl(torch.tensor([0.0]), torch.tensor([math.log(2.0)])).item() == pytest.approx(1 - math.log(2))
    torch.manual_seed(2)
    logits, ref = torch.randn(16), torch.randn(16)
    samples = torch.distributions.Categorical(logits=logits).sample((200000,))
    est = k3_kl(logits.log_softmax(-1)[samples], ref.log_softmax(-1)[samples]).mean()
    assert est.item() == pytest.approx(_naive_kl(logits, ref).item(), rel=0.03)
