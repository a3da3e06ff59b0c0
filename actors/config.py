"""How a group of identical actors is placed and restarted (rollout engines, learner ranks, judges)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cluster.config_checks import check_finite
from cluster.resources import check_custom_resources

# Ray placement-group strategies; STRICT_* fail instead of falling back.
PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


@dataclass
class ActorGroupConfig:
    """Resources, placement and restart policy for one :class:`actors.group.ActorGroup`.

    Each actor gets one placement-group bundle of `num_cpus_per_actor` / `num_gpus_per_actor` plus
    `resources_per_actor`; custom resources (e.g. ``{"rollout_node": 0.001}``) pin a group to the
    nodes that advertise them, so rollout, learner and judge can live on different machines.
    """

    # Number of actors (= world size for torch.distributed groups).
    num_actors: int = 1
    # CPUs reserved per actor (its bundle); fractional values allowed.
    num_cpus_per_actor: float = 1.0
    # GPUs reserved per actor (tensor-parallel engines: tensor_parallel_size here).
    num_gpus_per_actor: float = 0.0
    # Extra custom resources per bundle, e.g. {"learner_node": 0.001} to pin the group to tagged nodes.
    resources_per_actor: dict[str, float] = field(default_factory=dict)
    # Placement-group strategy: PACK (fewest nodes), SPREAD (most nodes), or the STRICT_ variants.
    placement_strategy: str = "PACK"
    # How often Ray recreates a dead actor (-1 = forever, 0 = never).
    max_restarts: int = 0
    # How often Ray retries a method whose actor died mid-call (-1 = forever; needs max_restarts != 0).
    max_task_retries: int = 0
    # Seconds to wait for the placement group before failing with the missing resource named.
    placement_timeout_s: float = 60.0
    # Pass master_addr/master_port (a free port on rank 0's node) to every constructor for torch.distributed.
    enable_rendezvous: bool = False

    def __post_init__(self) -> None:
        check_finite(self, "actor_group")
        if self.num_actors < 1:
            raise ValueError(f"num_actors must be >= 1, got {self.num_actors}")
        if self.num_cpus_per_actor < 0 or self.num_gpus_per_actor < 0:
            raise ValueError(
                f"num_cpus_per_actor/num_gpus_per_actor must be >= 0, got "
                f"{self.num_cpus_per_actor}/{self.num_gpus_per_actor}"
            )
        if self.placement_strategy not in PLACEMENT_STRATEGIES:
            raise ValueError(
                f"placement_strategy {self.placement_strategy!r} unknown; valid: {list(PLACEMENT_STRATEGIES)}"
            )
        if self.max_restarts < -1 or self.max_task_retries < -1:
            raise ValueError("max_restarts/max_task_retries must be >= -1 (-1 = unlimited)")
        if self.placement_timeout_s <= 0:
            raise ValueError(f"placement_timeout_s must be > 0, got {self.placement_timeout_s}")
        if self.num_cpus_per_actor + self.num_gpus_per_actor + sum(self.resources_per_actor.values()) <= 0:
            raise ValueError("an actor needs some resource: set num_cpus_per_actor, num_gpus_per_actor or resources")
        check_custom_resources("resources_per_actor", self.resources_per_actor)
