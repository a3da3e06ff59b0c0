"""LearnerActor groups on a real local Ray cluster with DeepSpeed on CPU (gloo).

Data-parallel equivalence (ZeRO-2 and ZeRO-3): one group of 2 ranks, each given half of the global
batch, must take the same optimizer steps as 1 rank given all of it, and the shared-prefix layout the
same steps as one sample per row (learner.shared_prefix=off). Checkpoint round trip: resuming from a
save reproduces the losses and parameters of an uninterrupted run exactly; one training group saves
each checkpoint both to a shared directory and to an object store (a real S3-compatible server on
127.0.0.1), and fresh groups resume from each.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import ray
import torch

from actors.group import ActorGroup
from actors.learner_actor import LearnerActor, learner_group_config
from cluster.storage import RunStorage
from learner.checkpoint import latest_checkpoint
from learner.config import LearnerConfig
from records.trajectory_batch import TrajectoryBatch
from rollout.weight_sync import decode_bucket

pytestmark = pytest.mark.integration
VOCAB = 256


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A random Qwen2 (hidden 128, 2 heads × 64, 2 layers) saved in HF format."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=128,
        tie_word_embeddings=True,
    )
    path = tmp_path_factory.mktemp("qwen2-random")
    Qwen2ForCausalLM(cfg).save_pretrained(path)
    (path / "tokenizer_config.json").write_text("{}")  # stands in for tokenizer files the checkpoint copies
    return path


@pytest.fixture(scope="module", autouse=True)
def ray_cluster(s3_server):
    # The learner ranks reach the local S3 server through the same environment as this process.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": s3_server})
    yield
    ray.shutdown()


def scored_batch(n: int, seed: int) -> TrajectoryBatch:
    """n samples of random lengths in GRPO groups of 4 sharing a prompt; every 5th is invalid; behaviour
    logprobs near the model's (~ −ln V)."""
    rng = random.Random(seed)
    group_prompts = [[rng.randrange(VOCAB) for _ in range(rng.randint(2, 9))] for _ in range(0, n, 4)]
    prompts = [group_prompts[i // 4] for i in range(n)]
    completions = [[rng.randrange(VOCAB) for _ in range(rng.randint(1, 12))] for _ in range(n)]
    logprobs = [[-5.55 + rng.uniform(-0.2, 0.2) for _ in c] for c in completions]
    batch = TrajectoryBatch([f"s{i}" for i in range(n)], [i // 4 for i in range(n)], prompts, completions, logprobs,
                            [""] * n, ["stop"] * n)  # fmt: skip
    advantages = [rng.uniform(-1.5, 1.5) for _ in range(n)]
    return batch.with_scores([0.0] * n, advantages, [i % 5 != 4 for i in range(n)], ["ok"] * n)


def make_group(model_dir: Path, num_ranks: int, **overrides) -> ActorGroup:
    # Adam's first steps are ≈ lr·g/(|g|+eps): with the default eps a gradient entry near zero turns a
    # 1e-7 summation-order difference into an O(lr) update difference. A larger eps keeps the update
    # a smooth function of the gradient, so 1 vs 2 ranks can be compared at 1e-5.
    settings = dict(
        model_path=str(model_dir), num_ranks=num_ranks, lr=1e-3, eps=1e-3, kl_coef=0.05, micro_batch_tokens=48
    )
    cfg = LearnerConfig(**{**settings, **overrides})
    return ActorGroup(LearnerActor, learner_group_config(cfg), cfg, 1.0, name=f"learner{num_ranks}")


def train(group: ActorGroup, batch: TrajectoryBatch) -> dict[str, float]:
    metrics = ray.get(group.scatter("train_step", batch.shard_by_group(group.world_size)))
    assert all(m == metrics[0] for m in metrics), "every rank must report the same global metrics"
    return metrics[0]


def weights(group: ActorGroup, version: int = 0) -> dict[str, torch.Tensor]:
    updates = ray.get(group.run_all("export_weights", version))
    update = updates[0]
    assert all(u is None for u in updates[1:])
    out: dict[str, torch.Tensor] = {}
    for ref in update.bucket_refs:
        out.update(decode_bucket(ray.get(ref)))
    assert sorted(out) == sorted(name for name, _, _ in update.manifest)
    return out


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_two_ranks_equal_one_rank_on_the_global_batch(model_dir: Path, zero_stage: int) -> None:
    # Step 1: 10 samples in groups of 4, 4, 2 split by group (6/4) with different micro-batch counts;
    # step 2: 1 sample, rank 1 empty. The default layout shares each group's prompt (learner.shared_prefix
    # auto); one sample per row on 1 rank (`off`) must give the same steps: issue 15's equivalence.
    batches = [scored_batch(10, seed=1), scored_batch(1, seed=2)]
    results = {}
    for name, num_ranks, layout in (("1", 1, "auto"), ("2", 2, "auto"), ("1-off", 1, "off")):
        group = make_group(model_dir, num_ranks, zero_stage=zero_stage, shared_prefix=layout)
        try:
            initial = weights(group)
            results[name] = ([train(group, b) for b in batches], weights(group, version=2))
        finally:
            group.shutdown()
    (metrics1, final1), (metrics2, final2), (metrics_off, final_off) = results["1"], results["2"], results["1-off"]
    first = batches[0]
    sample_tokens = sum(
        len(p) + len(c) for p, c, ok in zip(first.prompt_ids, first.completion_ids, first.valid, strict=True) if ok
    )
    assert metrics_off[0]["learner/computed_tokens"] == sample_tokens
    assert metrics1[0]["learner/computed_tokens"] < sample_tokens, "the shared layout must have been used"
    largest: dict[str, float] = {}
    for m_off, m1 in zip(metrics_off, metrics1, strict=True):
        for key in ("learner/loss", "learner/policy_loss", "learner/kl", "learner/grad_norm", "learner/ratio_mean"):
            if abs(m_off[key]) > 1e-9:  # step 1's KL is 0: the policy starts as the reference
                largest[key] = max(largest.get(key, 0.0), abs(m1[key] - m_off[key]) / abs(m_off[key]))
            # Step 2's KL is quadratic in step 1's rounding-level parameter differences, as for 1 vs 2 ranks below.
            rel = 2e-3 if key == "learner/kl" else 1e-5
            assert m1[key] == pytest.approx(m_off[key], rel=rel, abs=1e-9), key
    print(f"\nZeRO-{zero_stage} shared vs per-sample rows, largest relative differences:",
          ", ".join(f"{k} {v:.1e}" for k, v in largest.items()))  # fmt: skip
    for name in final1:
        torch.testing.assert_close(final1[name], final_off[name], rtol=0, atol=1e-5, msg=name)
    for m1, m2 in zip(metrics1, metrics2, strict=True):
        assert m1["learner/action_tokens"] == m2["learner/action_tokens"]
        for key in ("learner/loss", "learner/policy_loss", "learner/grad_norm", "learner/ratio_mean"):
            assert m2[key] == pytest.approx(m1[key], rel=1e-5, abs=1e-7), key
        # KL to the reference is quadratic in the step's parameter change, so it carries twice that
        # change's relative rounding: 1 vs 2 ranks differed by 2e-4 and 4.7e-4 (relative) of a ~3.6e-4 KL
        # in measured runs, i.e. at the old absolute 1e-7. The parameters are held to 1e-5 of ~1e-3 moves below.
        assert m2["learner/kl"] == pytest.approx(m1["learner/kl"], rel=2e-3, abs=1e-9)
    assert metrics1[1]["learner/kl"] > 0  # the second step sees a policy that moved away from the reference
    moved = max((final1[n] - initial[n]).abs().max().item() for n in final1)
    assert moved > 1e-4, "the step must change the parameters, or the comparison proves nothing"
    for name in final1:
        torch.testing.assert_close(final2[name], final1[name], rtol=0, atol=1e-5, msg=name)


def test_checkpoint_round_trip_resumes_exactly_from_a_directory_and_an_object_store(
    model_dir: Path, tmp_path: Path, s3_bucket: str
) -> None:
    """One training group saves every checkpoint to a shared directory and to a real S3 server."""
    from transformers import AutoModelForCausalLM

    batches = [scored_batch(6, seed=10 + i) for i in range(5)]
    # Warm-up spans the save, so the scheduler state must be restored too.
    overrides = dict(zero_stage=3, warmup_steps=5, kl_estimator="full", checkpoint_keep_last=2)
    uri = f"s3://{s3_bucket}/learner-round-trip"
    cursor, config = {"next_step": 3, "epoch": 0}, {"learner": {"lr": 1e-3}}

    def save(group: ActorGroup) -> tuple[list[str], list[str]]:
        # In the store each rank stages its own files and uploads them; rank 0 writes the state file once all are in.
        return tuple(ray.get(group.run_all("save_checkpoint", where, cursor, config)) for where in (str(tmp_path), uri))

    group = make_group(model_dir, 2, **overrides)
    try:
        train(group, batches[0])
        assert save(group) == ([str(tmp_path / "step_000001")] * 2, [f"{uri}/step_000001"] * 2)
        for b in batches[1:3]:
            train(group, b)
        save(group)
        at_save = weights(group)
        tail = [train(group, batches[3])]
        after_step_4 = weights(group)
        tail.append(train(group, batches[4]))
        final = weights(group)
        _, saved = save(group)  # keep_last=2 prunes step 1
    finally:
        group.shutdown()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000003", "step_000005"]
    assert latest_checkpoint(tmp_path) == str(tmp_path / "step_000005")
    ckpt = tmp_path / "step_000003"
    assert ckpt.stat().st_mode & 0o777 == 0o700
    assert (ckpt / "tokenizer_config.json").exists()

    storage = RunStorage.resolve(uri)
    assert saved == [f"{uri}/step_000005"] * 2 and latest_checkpoint(uri) == saved[0]
    assert storage.list_dirs() == ["step_000003", "step_000005"], "keep_last=2 deletes step 1 once step 5 is complete"
    checkpoint = storage.child("step_000003")
    assert checkpoint.exists("rng", "rank_0.pt") and checkpoint.exists("rng", "rank_1.pt")
    assert checkpoint.exists("model.safetensors") and checkpoint.exists("tokenizer_config.json")
    files = storage.fs.get_file_info(pafs.FileSelector(checkpoint.path(), recursive=True))
    zero_files = {f.base_name.split("_mp_rank")[0] for f in files if f.base_name.startswith("zero_pp_rank_")}
    assert zero_files == {"zero_pp_rank_0", "zero_pp_rank_1"}, "both ranks' ZeRO partitions must be uploaded"

    # The HF part alone is a loadable model holding exactly the trained weights.
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "step_000005", dtype=torch.float32)
    hf_params = dict(hf.named_parameters())
    for name, tensor in final.items():
        assert torch.equal(hf_params[name].detach(), tensor), name

    # Fresh processes, resumed from step 3 in the directory, replay steps 4-5: same losses and parameters, bit for bit.
    group = make_group(model_dir, 2, **overrides)
    try:
        states = ray.get(group.run_all("load_checkpoint", str(ckpt)))
        assert all(s["step"] == 3 and s["cursor"] == cursor and s["config"] == config for s in states)
        replay = [train(group, b) for b in batches[3:]]
        resumed = weights(group)
    finally:
        group.shutdown()
    for original, again in zip(tail, replay, strict=True):
        for key in ("learner/loss", "learner/kl", "learner/grad_norm", "learner/lr", "learner/ratio_mean"):
            assert again[key] == original[key], key
    # Warm-up spans the resume: step 4 uses 4/5 of the peak rate, step 5 the peak.
    assert [m["learner/lr"] for m in replay] == pytest.approx([0.8e-3, 1e-3], rel=1e-12)
    for name, tensor in final.items():
        assert torch.equal(resumed[name], tensor), name

    # Fresh processes, resumed from step 3 in the store, hold the saved weights and replay step 4.
    group = make_group(model_dir, 2, **overrides)
    try:
        states = ray.get(group.run_all("load_checkpoint", f"{uri}/step_000003"))
        assert all(s["step"] == 3 and s["cursor"] == cursor for s in states)
        loaded = weights(group)
        again = train(group, batches[3])
        resumed = weights(group)
    finally:
        group.shutdown()
    for name, tensor in at_save.items():
        assert torch.equal(loaded[name], tensor), name
    for key in ("learner/loss", "learner/kl", "learner/grad_norm", "learner/lr"):
        assert again[key] == tail[0][key], key
    # The next update needs the restored Adam moments and step: lost ones would move it by ~lr (1e-3).
    # Re-summed after the reload it may differ in the last bit (measured: up to 6e-8).
    for name, tensor in after_step_4.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=1e-6, msg=name)
