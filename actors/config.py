"""How a group of identical actors is placed and restarted (rollout engines, learner ranks, judges)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cluster.config_checks import FieldChecks
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
        checks = FieldChecks(self, "actor_group")
        checks.bounds("num_actors", ge=1)
        checks.bounds("num_cpus_per_actor", "num_gpus_per_actor", ge=0)
        checks.one_of("placement_strategy", PLACEMENT_STRATEGIES)
        checks.bounds("max_restarts", "max_task_retries", ge=-1, hint=" (-1 = unlimited)")
        checks.bounds("placement_timeout_s", gt=0)
        if self.num_cpus_per_actor + self.num_gpus_per_actor + sum(self.resources_per_actor.values()) <= 0:
            checks.fail("an actor needs some resource: set num_cpus_per_actor, num_gpus_per_actor or resources")
        checks.run(check_custom_resources, "resources_per_actor", self.resources_per_actor)
        checks.done()
