"""Thin Ray wrapper around one learner rank; spawn L of them with `actors.group.ActorGroup`.

Every method is collective over the group (torch.distributed inside), so the driver calls it on all
ranks at once: `group.scatter("train_step", shards)`, `group.run_all("save_checkpoint", ...)`,
`group.run_all("export_weights", version)` (rank 0's ref carries the WeightUpdate).
"""

from __future__ import annotations

import logging
from typing import Any

import ray

from actors.config import ActorGroupConfig
from cluster.storage import RunStorage
from learner.config import LearnerConfig
from records.trajectory_batch import TrajectoryBatch
from rollout.weight_sync import WeightUpdate

logger = logging.getLogger(__name__)


@ray.remote
class LearnerActor:
    """One data-parallel learner rank (DeepSpeed engine + frozen reference model).

    Args:
        cfg: the learner section of the run config.
        sampling_temperature: the rollout engines' temperature (see LearnerEngine).
        rank, world_size, master_addr, master_port: supplied by ActorGroup (enable_rendezvous=True).
    """

    def __init__(
        self,
        cfg: LearnerConfig,
        sampling_temperature: float,
        *,
        rank: int,
        world_size: int,
        master_addr: str,
        master_port: int,
    ):
        logging.basicConfig(level=logging.INFO)
        # Imported here so that importing this module (for the class) does not import DeepSpeed.
        from learner.engine import LearnerEngine

        self.learner = LearnerEngine(
            cfg, rank, world_size, master_addr, master_port, sampling_temperature=sampling_temperature
        )

    def train_step(self, shard: TrajectoryBatch) -> dict[str, float]:
        """One optimizer step on this rank's shard (a top-level ObjectRef argument, resolved by Ray)."""
        return self.learner.train_step(shard)

    def save_checkpoint(self, directory: str, cursor: dict[str, Any], config: dict[str, Any]) -> str:
        """Write a checkpoint of the whole group atomically; returns its path or URI.

        Args:
            directory: where checkpoints live (`<directory>/step_<learner step>`), an absolute path or an
                object-store URI; "" = cfg.checkpoint_dir.
            cursor: the trainer's data position, handed back by `load_checkpoint`.
            config: the resolved run config, stored with the checkpoint.
        """
        from learner.checkpoint import save_checkpoint

        cfg = self.learner.cfg
        directory = directory or cfg.checkpoint_dir
        if not directory:
            raise ValueError("save_checkpoint: no directory given and learner.checkpoint_dir is empty; set one")
        return save_checkpoint(self.learner, directory, cursor, config, cfg.checkpoint_keep_last)

    def check_storage(self, storage: RunStorage, token: str) -> str | None:
        """None if this rank reads the driver's sentinel `token`, else a message naming the rank and its node."""
        node = f"node {ray.get_runtime_context().get_node_id()} ({ray.util.get_node_ip_address()})"
        return storage.check_sentinel(token, f"learner rank {self.learner.rank} on {node}")

    def load_checkpoint(self, path: str) -> dict[str, Any]:
        """Restore the group from `path` (a path or URI); returns the stored step, cursor and config."""
        from learner.checkpoint import load_checkpoint

        return load_checkpoint(self.learner, path)

    def export_weights(self, version: int) -> WeightUpdate | None:
        """Gather the full weights and, on rank 0, `ray.put` them as safetensors buckets.

        Returns:
            The WeightUpdate on rank 0 (bucket ObjectRefs owned by this actor), None on other ranks.
        """
        from learner.weight_export import export_weights

        return export_weights(
            self.learner.engine.module,
            self.learner.cfg.zero_stage,
            version,
            self.learner.cfg.export_bucket_mb,
            is_rank0=self.learner.rank == 0,
            put=ray.put,
        )

    def state_fingerprint(self) -> list[float]:
        """[Σp, Σp², Σ|p|] over the full parameters (float64): equality checks in tests."""
        return self.learner.state_fingerprint()

    def step(self) -> int:
        """Optimizer steps taken (restored by load_checkpoint)."""
        return self.learner.step


def learner_group_config(
    cfg: LearnerConfig, num_cpus_per_rank: float = 1.0, num_gpus_per_rank: float = 0.0
) -> ActorGroupConfig:
    """The ActorGroup settings a learner group needs: one bundle per rank, rendezvous on rank 0."""
    return ActorGroupConfig(
        num_actors=cfg.num_ranks,
        num_cpus_per_actor=num_cpus_per_rank,
        num_gpus_per_actor=num_gpus_per_rank,
        resources_per_actor=dict(cfg.resources_per_rank),
        enable_rendezvous=True,
    )
