"""PromptSchedule: every id once per epoch, seeded order, and a pure function of the step (exact resume)."""

import pytest

from jobs.training.prompt_schedule import PromptSchedule


def test_each_epoch_covers_every_id_once_and_reshuffles():
    ids = [f"id{i}" for i in range(10)]
    schedule = PromptSchedule(ids, prompts_per_step=5, seed=3)
    epoch0 = schedule.ids_for_step(0) + schedule.ids_for_step(1)
    epoch1 = schedule.ids_for_step(2) + schedule.ids_for_step(3)
    assert sorted(epoch0) == sorted(ids) == sorted(epoch1)
    assert epoch0 != epoch1


def test_steps_straddling_an_epoch_boundary():
    schedule = PromptSchedule(["a", "b", "c"], prompts_per_step=2, seed=0)
    first_two_steps = schedule.ids_for_step(0) + schedule.ids_for_step(1)
    assert sorted(first_two_steps[:3]) == ["a", "b", "c"]
    assert schedule.cursor(7) == 14


def test_a_fresh_schedule_gives_the_same_ids_for_any_step():
    ids = [f"id{i}" for i in range(7)]
    run = PromptSchedule(ids, 3, seed=11)
    seen = [run.ids_for_step(s) for s in range(6)]
    resumed = PromptSchedule(list(reversed(ids)), 3, seed=11)  # input order must not matter
    assert [resumed.ids_for_step(s) for s in range(3, 6)] == seen[3:]
    assert (
        PromptSchedule(ids, 3, seed=12).ids_for_step(0) != seen[0]
        or PromptSchedule(ids, 3, seed=13).ids_for_step(0) != seen[0]
    )


def test_empty_split_is_a_clear_error():
    with pytest.raises(ValueError, match="train split is empty"):
        PromptSchedule([], 4, seed=0)
