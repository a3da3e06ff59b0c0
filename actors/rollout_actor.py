"""`RolloutActor`: a thin Ray actor around one :class:`rollout.engine.RolloutEngine`.

Results leave as the method's return value, i.e. as an ObjectRef in the caller: the driver never
holds a payload. The actor renders prompts itself from the scenario rows it was built with, so work
items are just scenario ids and group ids.

Restarts: Ray re-runs the constructor (base weights from disk, version 0). Every generation call
carries the pool's latest :class:`WeightUpdate`, and an actor behind it loads it first, so a
restarted engine catches up before it samples; see actors/rollout_pool.py for re-issued work.
"""

from __future__ import annotations

import logging
from typing import Any

import ray
from ray.actor import ActorHandle

from actors.chunk_queue import PromptChunk
from records.trajectory_batch import TrajectoryBatch
from rollout.config import RolloutConfig
from rollout.engine import RolloutEngine
from rollout.prompts import render_messages
from rollout.weight_sync import WeightUpdate, make_receiver
from scenarios.schema import ScenarioRow

logger = logging.getLogger(__name__)


@ray.remote
class RolloutActor:
    """One vLLM engine; one call at a time, so a weight update never races a generation.

    Args:
        cfg: the rollout config.
        rows: scenario id → row, for rendering prompts (the caller passes one shared ref).
        rank: index in the pool (ActorGroup).
        world_size: number of engines.
    """

    def __init__(
        self, cfg: RolloutConfig, rows: dict[str, ScenarioRow] | None = None, *, rank: int = 0, world_size: int = 1
    ):
        self.cfg = cfg
        self.rank = rank
        self.rows = rows or {}
        self.engine = RolloutEngine(cfg)
        self.receiver = make_receiver(cfg.weight_sync, self.engine, fetch=ray.get)
        self.version = 0
        self.restarted = ray.get_runtime_context().was_current_actor_reconstructed
        self._prompt_cache: dict[str, list[int]] = {}
        # Waves whose `generate_from_queue` call ended since the last one; the queue then ends their leases.
        self._finished_waves: list[int] = []
        logger.info("rollout actor %d/%d ready (restarted: %s)", rank, world_size, self.restarted)

    # ---- weights ---------------------------------------------------------------------------------
    def update_weights(self, update: WeightUpdate) -> int:
        """Load `update` if it is newer than what the engine holds; returns the held version.

        Version 0 is the checkpoint the engine started from, so pushing it is a no-op.
        """
        if update.version > self.version:
            self.receiver.receive(update)
            self.version = update.version
            logger.info("rollout actor %d: weights v%d loaded", self.rank, self.version)
        return self.version

    def connect_weight_broadcast(self, master_addr: str, master_port: int, rank_offset: int, world_size: int) -> None:
        """Collective transport: join the learner's NCCL weight group (the learner joins concurrently)."""
        self.receiver.connect(master_addr, master_port, rank_offset, world_size)

    # ---- generation ------------------------------------------------------------------------------
    def _prompt_ids(self, scenario_id: str) -> list[int]:
        ids = self._prompt_cache.get(scenario_id)
        if ids is None:
            if scenario_id not in self.rows:
                raise ValueError(f"scenario {scenario_id!r} is not among the {len(self.rows)} rows this actor holds")
            tokenizer = self.engine.tokenizer
            text = tokenizer.apply_chat_template(
                render_messages(self.rows[scenario_id], self.cfg.prompt_style),
                tokenize=False,
                add_generation_prompt=True,
            )
            ids = self._prompt_cache[scenario_id] = tokenizer.encode(text, add_special_tokens=False)
        return ids

    def generate(
        self,
        chunk: PromptChunk,
        weights: WeightUpdate | None = None,
        *,
        seed: int | None = None,
        samples_per_prompt: int | None = None,
        greedy: bool = False,
    ) -> TrajectoryBatch:
        """Samples for one chunk, after catching up to `weights` if this engine is behind."""
        if weights is not None:
            self.update_weights(weights)
        prompts = chunk.prompt_token_ids or [self._prompt_ids(sid) for sid in chunk.scenario_ids]
        return self.engine.generate(
            prompts,
            chunk.scenario_ids,
            chunk.group_ids,
            self.version,
            seed=seed,
            samples_per_prompt=samples_per_prompt,
            greedy=greedy,
        )

    def generate_from_queue(
        self,
        queue: ActorHandle,
        wave: int,
        weights: WeightUpdate | None = None,
        *,
        seed: int | None = None,
        samples_per_prompt: int | None = None,
        greedy: bool = False,
    ) -> TrajectoryBatch:
        """Take chunks of `wave` from `queue` until none is left; one batch of everything this attempt generated.

        The first take hands back chunks an earlier, dead attempt of this call had taken (its result
        was lost with it), so after a restart and Ray's task retry every prompt is generated exactly once.
        """
        if weights is not None:
            self.update_weights(weights)
        finished, self._finished_waves = self._finished_waves, []
        parts: list[TrajectoryBatch] = []
        try:
            chunks, more = ray.get(queue.take.remote(wave, self.rank, True, finished))
            while chunks:
                merged = PromptChunk(
                    scenario_ids=[s for c in chunks for s in c.scenario_ids],
                    group_ids=[g for c in chunks for g in c.group_ids],
                    prompt_token_ids=None
                    if chunks[0].prompt_token_ids is None
                    else [p for c in chunks for p in c.prompt_token_ids],
                )
                parts.append(self.generate(merged, seed=seed, samples_per_prompt=samples_per_prompt, greedy=greedy))
                # `more` is False once the queue is empty, which saves a last round trip for nothing.
                chunks, more = ray.get(queue.take.remote(wave, self.rank)) if more else ([], False)
        finally:
            self._finished_waves.append(wave)
        return TrajectoryBatch.concat(parts) if parts else _empty_batch(self.version)

    # ---- lifecycle -------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Engine liveness plus rank, held weights version and whether Ray restarted this actor."""
        return {"rank": self.rank, "version": self.version, "restarted": self.restarted, **self.engine.health()}

    def shutdown(self) -> None:
        self.engine.shutdown()


def _empty_batch(version: int) -> TrajectoryBatch:
    return TrajectoryBatch([], [], [], [], [], [], [], policy_version=version)
