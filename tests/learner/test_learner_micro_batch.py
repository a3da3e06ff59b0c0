"""Micro-batching and padding: padded, batched logprobs equal per-sample unpadded ones; checkpoint listing."""

from __future__ import annotations

import json
import random

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from cluster.storage import RunStorage
from learner.checkpoint import STATE_FILE, latest_checkpoint, list_checkpoints
from learner.config import LearnerConfig
from learner.micro_batch import dummy_sample, pad_micro_batch, split_by_token_budget, token_logprobs
from learner.model_forward import completion_logits
from records.trajectory_batch import TrajectoryBatch


def _batch(n: int, seed: int = 0, vocab: int = 64) -> TrajectoryBatch:
    rng = random.Random(seed)
    prompts = [[rng.randrange(1, vocab) for _ in range(rng.randint(1, 7))] for _ in range(n)]
    completions = [[rng.randrange(1, vocab) for _ in range(rng.randint(0, 6))] for _ in range(n)]
    logprobs = [[-rng.random() for _ in c] for c in completions]
    batch = TrajectoryBatch(
        [f"s{i}" for i in range(n)], list(range(n)), prompts, completions, logprobs, [""] * n, ["stop"] * n
    )
    return batch.with_scores(
        [0.0] * n, [rng.uniform(-1, 1) for _ in range(n)], [i % 4 != 3 for i in range(n)], ["ok"] * n
    )


def test_padded_logprobs_equal_unpadded_per_sample() -> None:
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=1,
                      num_key_value_heads=1, head_dim=64, max_position_embeddings=64)  # fmt: skip
    model = Qwen2ForCausalLM(cfg).eval()
    batch = _batch(6)
    mb = pad_micro_batch(batch)
    with torch.no_grad():
        padded = token_logprobs(completion_logits(model, mb), mb.targets)
        for i in range(len(batch)):
            prompt, completion = batch.prompt_ids[i], batch.completion_ids[i]
            ids = torch.tensor([prompt + completion])
            full = model(input_ids=ids).logits[0].log_softmax(-1)
            expected = [full[len(prompt) - 1 + j, tok].item() for j, tok in enumerate(completion)]
            got = padded[i, : len(completion)].tolist()
            assert got == pytest.approx(expected, abs=1e-5)
            valid = batch.valid[i]
            assert mb.mask[i].tolist() == [float(valid and j < len(completion)) for j in range(mb.mask.shape[1])]
            assert mb.old_logprobs[i, : len(completion)].tolist() == pytest.approx(batch.completion_logprobs[i])
            assert mb.advantages[i].tolist() == pytest.approx([batch.advantages[i]] * mb.advantages.shape[1])


def test_split_by_token_budget_keeps_order_and_budget() -> None:
    batch = _batch(20, seed=3)
    parts = split_by_token_budget(batch, budget=24)
    assert [s for p in parts for s in p.scenario_ids] == batch.scenario_ids
    for part in parts:
        size = len(part) * (max(map(len, part.prompt_ids)) + max(map(len, part.completion_ids)))
        assert size <= 24 or len(part) == 1
    # A budget smaller than any sample still makes progress: one sample per micro-batch.
    assert [len(p) for p in split_by_token_budget(batch, budget=1)] == [1] * 20


def test_dummy_sample_has_no_action_tokens() -> None:
    mb = pad_micro_batch(dummy_sample())
    assert mb.mask.sum().item() == 0 and mb.input_ids.shape == (1, 2)


def test_empty_prompt_is_rejected() -> None:
    batch = TrajectoryBatch(["a"], [0], [[]], [[1]], [[-0.1]], [""], ["stop"])
    with pytest.raises(ValueError, match="empty prompt"):
        pad_micro_batch(batch)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_latest_checkpoint_skips_temporaries_and_incomplete(where, tmp_path, request) -> None:
    if where == "local":
        storage = RunStorage.resolve(str(tmp_path))
    else:  # an object store: a killed upload leaves a prefix of files without the state file
        storage = RunStorage.resolve(f"s3://{request.getfixturevalue('s3_bucket')}/{tmp_path.name}")
    for step in (2, 10, 7):
        storage.write_text(f"step_{step:06d}/{STATE_FILE}", json.dumps({"step": step}))
    storage.write_text(f".step_000020.tmp-abcd/{STATE_FILE}", json.dumps({"step": 20}))  # being written
    storage.write_text("step_000030/config.json", "{}")  # no state file: not a checkpoint
    storage.write_text(f"step_000040/{STATE_FILE}", '{"step": 4')  # torn state file: not a checkpoint
    assert latest_checkpoint(storage.uri) == storage.child("step_000010").uri
    assert [s for s, _ in list_checkpoints(storage.uri)] == [2, 7, 10]
    assert latest_checkpoint(storage.child("missing").uri) is None


def test_learner_config_checks() -> None:
    with pytest.raises(ValueError, match="zero_stage"):
        LearnerConfig(zero_stage=1)
    with pytest.raises(ValueError, match="sapo"):
        LearnerConfig(loss="grpo")
    with pytest.raises(ValueError, match="full"):
        LearnerConfig(kl_estimator="k1")
    with pytest.raises(ValueError, match="clip_eps_low"):
        LearnerConfig(clip_eps_low=1.5)
    assert LearnerConfig(backend="auto").resolved_backend(cuda_available=False) == "gloo"
    assert LearnerConfig(backend="auto").resolved_backend(cuda_available=True) == "nccl"
