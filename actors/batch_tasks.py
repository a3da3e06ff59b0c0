"""Small Ray tasks that reshape trajectory batches where they live, so the driver only moves refs.

They take zero CPUs: they are bookkeeping next to long-lived actors that hold every core, and must
never wait for one.
"""

from __future__ import annotations

from collections import Counter

import ray

from records.trajectory_batch import TrajectoryBatch


@ray.remote(num_cpus=0)
def reshard(num_shards: int, *batches: TrajectoryBatch) -> tuple[TrajectoryBatch, ...] | TrajectoryBatch:
    """Concatenate scored batches and cut them into one shard per learner rank, each group whole on one rank.

    Call as `reshard.options(num_returns=n).remote(n, *refs)`: each shard is its own object, so
    rank i fetches only shard i.
    """
    shards = TrajectoryBatch.concat(batches).shard_by_group(num_shards)
    return shards[0] if num_shards == 1 else tuple(shards)


@ray.remote(num_cpus=0)
def summarize(*batches: TrajectoryBatch, num_prompts: int) -> dict[str, float]:
    """Scalar statistics of a step's scored samples: what the driver logs instead of the payload.

    `num_prompts` is how many prompts the step asked for; groups missing from the batches are
    prompts the engines skipped (longer than the model window), reported as `rollout/skipped_prompts`.
    """
    batch = TrajectoryBatch.concat(batches)
    n = len(batch)
    valid = batch.valid or [False] * n
    rewards = [r for r, ok in zip(batch.rewards or [0.0] * n, valid, strict=True) if ok]
    statuses = Counter(batch.judge_statuses or [])
    lengths = [len(ids) for ids in batch.completion_ids]
    stats: dict[str, float] = {
        "samples": float(n),
        "valid_fraction": sum(valid) / n if n else 0.0,
        "reward/mean": sum(rewards) / len(rewards) if rewards else 0.0,
        "reward/min": min(rewards) if rewards else 0.0,
        "reward/max": max(rewards) if rewards else 0.0,
        "response_tokens/mean": sum(lengths) / n if n else 0.0,
        "truncated_fraction": sum(r == "length" for r in batch.finish_reasons) / n if n else 0.0,
        "action_tokens": float(batch.num_action_tokens),
        "policy_version": float(batch.policy_version),
        "rollout/skipped_prompts": float(num_prompts - len(set(batch.group_ids))),
    }
    for status, count in statuses.items():
        stats[f"judge/status_{status}"] = float(count)
    stats["judge/invalid_fraction"] = 1.0 - stats["valid_fraction"]
    return stats
