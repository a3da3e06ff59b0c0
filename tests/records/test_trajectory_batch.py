"""TrajectoryBatch: validation at construction, split/concat round trips, Arrow round trip."""

import pytest

from records.trajectory_batch import TrajectoryBatch


def make_batch(n: int = 5, version: int = 3) -> TrajectoryBatch:
    return TrajectoryBatch(
        scenario_ids=[f"s{i // 2}" for i in range(n)],
        group_ids=[i // 2 for i in range(n)],
        prompt_ids=[[1, 2, i] for i in range(n)],
        completion_ids=[[7] * (i + 1) for i in range(n)],
        completion_logprobs=[[-0.5] * (i + 1) for i in range(n)],
        completion_texts=[f"t{i}" for i in range(n)],
        finish_reasons=["stop"] * n,
        policy_version=version,
    )


def test_rejects_mismatched_lengths_naming_the_field():
    with pytest.raises(ValueError, match="group_ids has 1 entries, expected 2"):
        TrajectoryBatch(
            scenario_ids=["a", "b"],
            group_ids=[0],
            prompt_ids=[[1], [1]],
            completion_ids=[[1], [1]],
            completion_logprobs=[[0.0], [0.0]],
            completion_texts=["x", "y"],
            finish_reasons=["stop", "stop"],
        )


def test_rejects_logprobs_not_matching_tokens():
    with pytest.raises(ValueError, match="sample 0: 2 completion ids but 1 logprobs"):
        TrajectoryBatch(["a"], [0], [[1]], [[1, 2]], [[0.0]], ["x"], ["stop"])


def test_rejects_unknown_judge_status():
    batch = make_batch(2)
    with pytest.raises(ValueError, match="unknown judge statuses"):
        batch.with_scores([0, 0], [0, 0], [True, True], ["ok", "weird"])


def test_shard_by_group_keeps_groups_whole_and_concat_restores_every_sample():
    batch = make_batch(5).with_scores([1, 2, 3, 4, 5], [0.1] * 5, [True, False, True, True, True], ["ok"] * 5)
    parts = batch.shard_by_group(3)
    # Groups {0,1} (3+1+2 = 6 tokens), {2,3} (3+3+4 = 10), {4} (3+5 = 8): largest first, one per shard.
    assert [p.group_ids for p in parts] == [[1, 1], [2], [0, 0]]
    joined = TrajectoryBatch.concat(parts)
    order = [int(t[1:]) for t in joined.completion_texts]
    assert sorted(order) == list(range(5))
    assert joined == batch.select(order)


def test_shard_by_group_more_parts_than_groups_gives_empty_tail():
    parts = make_batch(2).shard_by_group(3)
    assert [len(p) for p in parts] == [2, 0, 0]
    assert parts[2].num_action_tokens == 0


def test_shard_by_group_balances_tokens_across_ranks():
    # 8 groups of 4 samples with prompt lengths 250–268 and 64-token completions (W1's shape), plus
    # uneven completion lengths: every rank gets whole groups and the loads differ by at most one group.
    n, g = 32, 4
    prompts = [[1] * (250 + 2 * (i // g)) for i in range(n)]
    completions = [[7] * (16 * (1 + (i * 7) % 5)) for i in range(n)]
    batch = TrajectoryBatch([f"s{i // g}" for i in range(n)], [i // g for i in range(n)], prompts, completions,
                            [[-0.5] * len(c) for c in completions], [""] * n, ["stop"] * n)  # fmt: skip
    for ranks in (2, 3):
        parts = batch.shard_by_group(ranks)
        assert sorted(gid for p in parts for gid in set(p.group_ids)) == list(range(n // g))
        assert all(len(p.groups()) == len(set(p.group_ids)) and all(len(v) == g for v in p.groups().values())
                   for p in parts)  # fmt: skip
        loads = [len(p.groups()) and sum(len(p.prompt_ids[v[0]]) + sum(len(p.completion_ids[i]) for i in v)
                                         for v in p.groups().values()) for p in parts]  # fmt: skip
        largest_group = max(len(prompts[i]) + sum(len(completions[j]) for j in range(i, i + g)) for i in range(0, n, g))
        assert max(loads) - min(loads) <= largest_group, loads


def test_action_tokens_count_only_valid_samples():
    batch = make_batch(3)  # completion lengths 1, 2, 3
    assert batch.num_action_tokens == 6
    scored = batch.with_scores([0] * 3, [0] * 3, [True, False, True], ["ok", "parse_error", "ok"])
    assert scored.num_action_tokens == 4


def test_concat_drops_scores_unless_all_parts_have_them_and_keeps_oldest_version():
    scored = make_batch(2, version=5).with_scores([1, 1], [0, 0], [True, True], ["ok", "ok"])
    joined = TrajectoryBatch.concat([scored, make_batch(1, version=4)])
    assert joined.rewards is None and joined.policy_version == 4 and len(joined) == 3


def test_groups_map_group_ids_to_indices():
    assert make_batch(5).groups() == {0: [0, 1], 1: [2, 3], 2: [4]}
