"""TrajectoryBatch: validation at construction, split/concat round trips, Arrow round trip."""

import pytest

from rollout.batch import TrajectoryBatch


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


def test_chunk_then_concat_is_identity_and_sizes_differ_by_at_most_one():
    batch = make_batch(5).with_scores([1, 2, 3, 4, 5], [0.1] * 5, [True, False, True, True, True], ["ok"] * 5)
    parts = batch.chunk(3)
    assert [len(p) for p in parts] == [2, 2, 1]
    assert TrajectoryBatch.concat(parts) == batch


def test_chunk_more_parts_than_samples_gives_empty_tail():
    parts = make_batch(2).chunk(3)
    assert [len(p) for p in parts] == [1, 1, 0]
    assert parts[2].num_action_tokens == 0


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


def test_arrow_round_trip_scored_and_unscored():
    unscored = make_batch(4)
    assert TrajectoryBatch.from_arrow(unscored.to_arrow()) == unscored
    scored = unscored.with_scores([1.5, -2, 0, 0], [0.5, -1, 0, 0], [True, True, False, True], ["ok"] * 4)
    table = scored.to_arrow()
    assert table.num_rows == 4 and "advantages" in table.column_names
    assert TrajectoryBatch.from_arrow(table) == scored
