"""`RolloutPool`: R rollout engines behind a work queue; the driver gets ObjectRefs only.

Load balancing is guided self-scheduling (Polychronopoulos & Kuck, 1987): an engine that asks for
work gets ``ceil(remaining / R)`` chunks, capped by what its batch holds. Big shares early keep vLLM's
batches full; shrinking shares late mean a slow engine holds little when the others run dry, so it
does not stall the wave. Each engine returns one TrajectoryBatch per wave with whatever groups it drew.

One :class:`ChunkQueue` actor serves every wave of the pool (waves keyed by id): a queue per wave
would start a worker process per wave, which the engines waited for before sampling.

Failures: engines run with Ray's ``max_restarts`` and unlimited task retries. When an engine dies
mid-wave Ray restarts it and retries its call; the retried call's first take gives the dead attempt's
chunks back to the queue (:meth:`ChunkQueue.take` with ``first``), and every call carries the latest
weight update, so the restarted engine loads it before it samples. Every prompt comes back exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import ray

from actors.chunk_queue import ChunkQueue, PromptChunk
from actors.config import ActorGroupConfig
from actors.group import ActorGroup
from actors.rollout_actor import RolloutActor
from rollout.config import RolloutConfig

logger = logging.getLogger(__name__)


def rollout_group_config(cfg: RolloutConfig) -> ActorGroupConfig:
    """Placement and restart policy of the engines, from the rollout config."""
    return ActorGroupConfig(
        num_actors=cfg.num_engines,
        num_cpus_per_actor=cfg.num_cpus_per_engine,
        num_gpus_per_actor=cfg.num_gpus_per_engine,
        resources_per_actor=dict(cfg.resources_per_engine),
        placement_strategy=cfg.placement_strategy,
        max_restarts=cfg.max_restarts,
        # Retrying a call on the restarted engine is what re-issues a dead engine's chunks.
        max_task_retries=-1 if cfg.max_restarts != 0 else 0,
    )


class RolloutPool:
    """The rollout engines of a job.

    Args:
        cfg: rollout config (`model` set).
        rows: ObjectRef of ``dict[scenario_id, ScenarioRow]`` the engines render prompts from (one
            shared copy), or None when callers pass token ids.
    """

    def __init__(self, cfg: RolloutConfig, rows: ray.ObjectRef | None = None):
        self.cfg = cfg
        # Held for the pool's lifetime: Ray re-runs a restarted actor's constructor with this ref.
        self.rows = rows
        self.group = ActorGroup(RolloutActor, rollout_group_config(cfg), cfg, rows, name="rollout")
        # The newest update (a WeightUpdate or a ref resolving to one); sent along with every wave.
        self.latest_update: Any = None
        self.queue = ChunkQueue.remote(len(self.group))
        self.num_waves = 0

    @property
    def num_engines(self) -> int:
        return len(self.group)

    def async_generate(
        self,
        scenario_ids: Sequence[str],
        policy_version: int = 0,
        seed: int | None = None,
        samples_per_prompt: int | None = None,
        *,
        prompt_token_ids: Sequence[list[int]] | None = None,
        greedy: bool = False,
    ) -> list[ray.ObjectRef]:
        """Start generating for `scenario_ids` (group id = position); one ref per engine.

        Args:
            scenario_ids: the step's prompts; sample groups get ids 0..len-1 in this order.
            policy_version: the version the caller expects; engines behind it catch up from the
                latest update, and samples carry the version that actually produced them.
            seed: per-wave sampling seed (see RolloutEngine.generate).
            samples_per_prompt: G for this wave (default `cfg.samples_per_prompt`).
            prompt_token_ids: ready token ids per prompt instead of rendering scenario rows.
            greedy: one argmax sample per prompt.
        """
        if prompt_token_ids is not None and len(prompt_token_ids) != len(scenario_ids):
            raise ValueError(f"{len(prompt_token_ids)} token prompts for {len(scenario_ids)} scenario ids")
        if self.latest_update is None and policy_version > 0:
            logger.warning("generation asked for policy v%d but no weight update was pushed yet", policy_version)
        size = self.cfg.dispatch_chunk_prompts
        chunks = [
            PromptChunk(
                scenario_ids=list(scenario_ids[i : i + size]),
                group_ids=list(range(i, min(i + size, len(scenario_ids)))),
                prompt_token_ids=None
                if prompt_token_ids is None
                else [list(p) for p in prompt_token_ids[i : i + size]],
            )
            for i in range(0, len(scenario_ids), size)
        ]
        n = 1 if greedy else samples_per_prompt or self.cfg.samples_per_prompt
        per_take = max(1, self.cfg.max_num_seqs // (size * n))
        # Engines get the ref of the wave's id: Ray starts their calls only once the wave is queued.
        wave = self.queue.add_wave.remote(self.num_waves, chunks, per_take)
        self.num_waves += 1
        return self.group.run_all(
            "generate_from_queue",
            self.queue,
            wave,
            self.latest_update,
            seed=seed,
            samples_per_prompt=samples_per_prompt,
            greedy=greedy,
        )

    def async_update_weights(self, update: Any) -> list[ray.ObjectRef]:
        """Send `update` (a WeightUpdate or a ref to one) to every engine; one ref per engine (its version)."""
        self.latest_update = update
        return self.group.run_all("update_weights", update)

    def async_connect_weight_broadcast(self, master_addr: str, master_port: int) -> list[ray.ObjectRef]:
        """Collective transport: engines join the learner's NCCL group as ranks 1.. (learner rank 0)."""
        tp = self.cfg.tensor_parallel_size
        world_size = 1 + self.num_engines * tp
        return [
            self.group.run_on(rank, "connect_weight_broadcast", master_addr, master_port, 1 + rank * tp, world_size)
            for rank in range(self.num_engines)
        ]

    def health(self, timeout_s: float = 120.0) -> list[dict[str, Any]]:
        """One report per engine; a dead or unreachable actor reports ``alive: False`` with the error."""
        refs = self.group.run_all("health")
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        reports = []
        for rank, ref in enumerate(refs):
            if ref not in ready:
                reports.append({"rank": rank, "alive": False, "error": f"no answer within {timeout_s:g}s"})
                continue
            try:
                reports.append(ray.get(ref))
            except ray.exceptions.RayError as exc:
                reports.append({"rank": rank, "alive": False, "error": f"{type(exc).__name__}: {exc}"})
        return reports

    def shutdown(self) -> None:
        """Stop the engines cleanly, then release the actors and their placement group."""
        ray.wait(self.group.run_all("shutdown"), num_returns=len(self.group), timeout=60)
        self.group.shutdown()
        ray.kill(self.queue)
