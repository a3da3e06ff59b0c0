"""Which scenario ids each training step uses: a seeded reshuffle per epoch, addressed by step.

Being a pure function of (ids, seed, step) is what makes resume exact: the checkpoint stores the
number of prompts consumed, and the resumed run asks for the same ids the killed one would have.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


class PromptSchedule:
    """Deals `prompts_per_step` ids per step, epoch after epoch, each epoch in a fresh seeded order."""

    def __init__(self, ids: Sequence[str], prompts_per_step: int, seed: int):
        if not ids:
            raise ValueError("no training scenarios: the train split is empty (check data.source / data.split)")
        if prompts_per_step < 1:
            raise ValueError(f"prompts_per_step must be >= 1, got {prompts_per_step}")
        self.ids = sorted(ids)
        self.prompts_per_step = prompts_per_step
        self.seed = seed
        self._epochs: dict[int, list[str]] = {}

    def _epoch_order(self, epoch: int) -> list[str]:
        if epoch not in self._epochs:
            order = list(self.ids)
            random.Random(f"{self.seed}:{epoch}").shuffle(order)
            self._epochs = {epoch: order}  # only the current epoch is ever needed again
        return self._epochs[epoch]

    def cursor(self, step: int) -> int:
        """Prompts consumed before `step` (the data cursor saved in checkpoints)."""
        return step * self.prompts_per_step

    def ids_for_step(self, step: int) -> list[str]:
        start = self.cursor(step)
        out = []
        for position in range(start, start + self.prompts_per_step):
            epoch, offset = divmod(position, len(self.ids))
            out.append(self._epoch_order(epoch)[offset])
        return out
