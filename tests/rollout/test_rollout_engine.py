"""RolloutEngine on the tiny model against `transformers` (one vLLM engine for the whole module)."""

from __future__ import annotations

import logging

import pytest
import torch

from records.trajectory_batch import TrajectoryBatch
from rollout.config import RolloutConfig
from rollout.weight_sync import ObjectStoreReceiver, WeightUpdate, encode_bucket, iter_buckets, manifest_entry

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

G = 3
MAX_TOKENS = 12


@pytest.fixture(scope="module")
def hf_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    return model.eval()


@pytest.fixture(scope="module")
def prompts(tiny_model_dir) -> list[list[int]]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = ["send an email to alice", "the quick brown fox", "about the meeting"]
    chats = [
        tok.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True, tokenize=False)
        for t in texts
    ]
    return [tok.encode(chat, add_special_tokens=False) for chat in chats]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from rollout.engine import RolloutEngine

    cfg = RolloutConfig(
        model=str(tiny_model_dir),
        max_model_len=96,
        max_tokens=MAX_TOKENS,
        samples_per_prompt=G,
        kv_cache_gib=1,
        max_num_seqs=16,
        enable_ignore_eos=True,
    )
    eng = RolloutEngine(cfg)
    yield eng
    eng.shutdown()
    assert eng.health()["alive"] is False


def _hf_completion_logprobs(model, prompt: list[int], completion: list[int]) -> torch.Tensor:
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(ids).logits[0].float()
    logprobs = torch.log_softmax(logits[len(prompt) - 1 : -1], dim=-1)
    return logprobs.gather(1, torch.tensor(completion)[:, None])[:, 0]


def _hf_greedy(model, prompt: list[int]) -> list[int]:
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(MAX_TOKENS):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt) :]


def test_sampled_logprobs_match_transformers(engine, hf_model, prompts):
    batch = engine.generate(prompts, ["s0", "s1", "s2"], [10, 11, 12], policy_version=7)
    assert isinstance(batch, TrajectoryBatch)
    assert len(batch) == len(prompts) * G and batch.policy_version == 7
    assert batch.groups() == {10: [0, 1, 2], 11: [3, 4, 5], 12: [6, 7, 8]}
    assert batch.scenario_ids == ["s0"] * G + ["s1"] * G + ["s2"] * G
    assert all(len(c) == MAX_TOKENS for c in batch.completion_ids)
    assert set(batch.finish_reasons) == {"length"}
    # Sampled at temperature 1 from a near-uniform random model: the G samples of a prompt differ.
    assert len({tuple(batch.completion_ids[i]) for i in range(G)}) > 1
    diffs = [
        (torch.tensor(lp) - _hf_completion_logprobs(hf_model, p, c)).abs().max().item()
        for p, c, lp in zip(batch.prompt_ids, batch.completion_ids, batch.completion_logprobs, strict=True)
    ]
    logger.warning("vLLM vs transformers sampled-token logprobs: max abs diff %.3g", max(diffs))
    assert max(diffs) < 1e-3


def test_object_store_update_changes_greedy_to_transformers_greedy(engine, hf_model, prompts):
    before = engine.generate(prompts, ["a", "b", "c"], [0, 1, 2], policy_version=0, greedy=True)
    assert [c for c in before.completion_ids] == [_hf_greedy(hf_model, p) for p in prompts]

    # Perturb every matrix and amplify the residual branches: greedy paths change and stay away from ties.
    gen = torch.Generator().manual_seed(1)
    state = hf_model.state_dict()
    if hf_model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # tied: loading the embedding must move the head too
    for name, value in state.items():
        if value.dim() == 2:
            value = value + 3 * value.std() * torch.randn(value.shape, generator=gen)
            state[name] = value * 4 if ("o_proj" in name or "down_proj" in name) else value
    hf_model.load_state_dict(state, strict=False)
    named = list(state.items())
    buckets = [encode_bucket(b) for b in iter_buckets(named, 64 * 1024)]
    assert len(buckets) > 3  # small buckets: fused q/k/v and gate/up rows span bucket boundaries
    update = WeightUpdate(version=1, bucket_refs=buckets, manifest=[manifest_entry(k, v) for k, v in named])
    ObjectStoreReceiver(engine, fetch=lambda data: data).receive(update)

    after = engine.generate(prompts, ["a", "b", "c"], [0, 1, 2], policy_version=1, greedy=True)
    expected = [_hf_greedy(hf_model, p) for p in prompts]
    assert after.completion_ids == expected
    assert after.completion_ids != before.completion_ids


def test_overflowing_prompts_are_skipped_and_counted(engine, prompts):
    too_long = [5] * 90  # 90 + MAX_TOKENS > max_model_len 96
    batch = engine.generate([too_long, prompts[0]], ["long", "ok"], [0, 1], policy_version=1)
    assert batch.scenario_ids == ["ok"] * G
    health = engine.health()
    assert health["alive"] is True and health["skipped_prompts"] == 1


def test_manifest_mismatch_is_reported(engine, hf_model):
    named = list(hf_model.state_dict().items())[:2]
    update = WeightUpdate(version=2, bucket_refs=[encode_bucket(dict(named[:1]))], manifest=[manifest_entry(*named[1])])
    with pytest.raises(ValueError, match="do not match the manifest"):
        ObjectStoreReceiver(engine, fetch=lambda data: data).receive(update)
