"""One helper to spawn N identical Ray actors into a placement group and call them explicitly.

Modelled on OpenRLHF's ``RayActorGroup`` but without generated methods: callers say which actors run
a method (`run_all`, `run_rank0`, `run_on`, `scatter`) and always get ObjectRefs back, so the driver
never blocks on or holds a payload. `scatter` puts each shard into the object store separately
*before* calling, so actor i fetches shard i only, never the whole batch.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import ray
from ray.actor import ActorClass, ActorHandle
from ray.util.placement_group import PlacementGroup, placement_group, placement_group_table, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from actors.config import ActorGroupConfig

logger = logging.getLogger(__name__)


@ray.remote(num_cpus=0)
def _free_address() -> tuple[str, int]:
    """ip and a free TCP port of the node this task lands on (scheduled into rank 0's bundle)."""
    with socket.socket() as sock:
        sock.bind(("", 0))
        port = sock.getsockname()[1]
    return ray.util.get_node_ip_address(), port


class ActorGroup:
    """N actors of one `@ray.remote` class, one placement-group bundle each, ranks 0..N-1.

    Every constructor receives ``rank=i, world_size=N`` as keyword arguments (plus ``master_addr`` and
    ``master_port`` when `cfg.enable_rendezvous`), after the caller's own `*args/**kwargs`.

    Args:
        actor_cls: a class decorated with `@ray.remote`.
        cfg: resources, placement strategy and restart policy.
        *args: positional constructor arguments shared by all ranks.
        name: label for logs and the placement group.
        **kwargs: keyword constructor arguments shared by all ranks.

    Raises:
        TimeoutError: the placement group was not ready within `cfg.placement_timeout_s`; the message
            names the resources the cluster lacks.
    """

    def __init__(self, actor_cls: ActorClass, cfg: ActorGroupConfig, *args: Any, name: str = "group", **kwargs: Any):
        self.cfg = cfg
        self.name = name
        # Ray rejects zero-amount bundle entries, so only nonzero ones enter the bundle.
        wanted = {"CPU": cfg.num_cpus_per_actor, "GPU": cfg.num_gpus_per_actor, **cfg.resources_per_actor}
        bundle = {key: amount for key, amount in wanted.items() if amount > 0}
        self._bundles = [dict(bundle) for _ in range(cfg.num_actors)]
        self.placement_group: PlacementGroup = placement_group(
            self._bundles, strategy=cfg.placement_strategy, name=f"{name}-pg"
        )
        if not self.placement_group.wait(timeout_seconds=cfg.placement_timeout_s):
            message = _unsatisfied_message(name, self._bundles, cfg, cfg.placement_timeout_s)
            remove_placement_group(self.placement_group)
            raise TimeoutError(message)

        self.master_addr: str | None = None
        self.master_port: int | None = None
        extra: dict[str, Any] = {}
        if cfg.enable_rendezvous:
            probe = _free_address.options(scheduling_strategy=self._strategy(0)).remote()
            self.master_addr, self.master_port = ray.get(probe, timeout=cfg.placement_timeout_s)
            extra = {"master_addr": self.master_addr, "master_port": self.master_port}

        self.actors: list[ActorHandle] = [
            actor_cls.options(
                num_cpus=cfg.num_cpus_per_actor,
                num_gpus=cfg.num_gpus_per_actor,
                resources=dict(cfg.resources_per_actor),
                max_restarts=cfg.max_restarts,
                max_task_retries=cfg.max_task_retries,
                scheduling_strategy=self._strategy(rank),
            ).remote(*args, rank=rank, world_size=cfg.num_actors, **extra, **kwargs)
            for rank in range(cfg.num_actors)
        ]
        logger.info(
            "%s: %d actors, bundle %s, strategy %s, max_restarts %d",
            name,
            cfg.num_actors,
            bundle,
            cfg.placement_strategy,
            cfg.max_restarts,
        )

    def wait_placed(self, timeout_s: float | None = None) -> None:
        """Block until every bundle is placed again, e.g. after a node was lost and Ray reschedules the group.

        Without this, calls on actors whose node died wait silently for capacity that may never come.

        Raises:
            TimeoutError: not placed within `timeout_s` (default `cfg.placement_timeout_s`); the message
                names the resources the cluster lacks.
        """
        assert self.placement_group is not None, "wait_placed after shutdown"
        timeout_s = self.cfg.placement_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        while placement_group_table(self.placement_group)["state"] != "CREATED":
            if time.monotonic() > deadline:
                raise TimeoutError(_unsatisfied_message(self.name, self._bundles, self.cfg, timeout_s))
            time.sleep(0.1)

    def _strategy(self, rank: int) -> PlacementGroupSchedulingStrategy:
        return PlacementGroupSchedulingStrategy(
            placement_group=self.placement_group,
            placement_group_bundle_index=rank,
        )

    def __len__(self) -> int:
        return len(self.actors)

    @property
    def world_size(self) -> int:
        return len(self.actors)

    # ---- explicit calls ---------------------------------------------------------------------
    def run_on(self, rank: int, method: str, *args: Any, **kwargs: Any) -> ray.ObjectRef:
        """Call `method` on the actor of `rank`; returns its ObjectRef."""
        return getattr(self.actors[rank], method).remote(*args, **kwargs)

    def run_rank0(self, method: str, *args: Any, **kwargs: Any) -> ray.ObjectRef:
        """Call `method` on rank 0 only (e.g. save a checkpoint, report metrics)."""
        return self.run_on(0, method, *args, **kwargs)

    def run_all(self, method: str, *args: Any, **kwargs: Any) -> list[ray.ObjectRef]:
        """Call `method` with the same arguments on every rank; one ref per rank, in rank order.

        Large shared arguments should be `ray.put` once by the caller and passed as a ref, so they are
        serialized once rather than once per rank.
        """
        return [self.run_on(rank, method, *args, **kwargs) for rank in range(len(self.actors))]

    def scatter(self, method: str, shards: Sequence[Any], *args: Any, **kwargs: Any) -> list[ray.ObjectRef]:
        """Call `method(shard_i, *args, **kwargs)` on rank i, each shard put separately.

        Each shard becomes its own object (already-put refs are passed through), so rank i's node
        fetches shard i only. A top-level ref argument is resolved by Ray before the method runs.
        """
        if len(shards) != len(self.actors):
            raise ValueError(f"{self.name}.scatter: {len(shards)} shards for {len(self.actors)} actors; slice first")
        refs = [s if isinstance(s, ray.ObjectRef) else ray.put(s) for s in shards]
        return [self.run_on(rank, method, ref, *args, **kwargs) for rank, ref in enumerate(refs)]

    def shutdown(self) -> None:
        """Kill every actor (no restart) and release the placement group; safe to call twice."""
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
        if self.placement_group is not None:
            remove_placement_group(self.placement_group)
            self.placement_group = None
        logger.info("%s: shut down", self.name)


class ActorCallError(RuntimeError):
    """An actor call failed or missed its deadline; the message names the actor (e.g. "learner rank 1")."""


def fetch_checked(ref: ray.ObjectRef, label: str, fetch: Callable[[ray.ObjectRef], Any] = ray.get) -> Any:
    """`fetch(ref)` of a ready ref; a failed call raises ActorCallError naming `label`."""
    try:
        return fetch(ref)
    except ray.exceptions.RayError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ActorCallError(f"{label} failed: {type(exc).__name__}: {first_line}") from exc


def get_all(
    refs: Sequence[ray.ObjectRef],
    labels: Sequence[str],
    timeout_s: float,
    fetch: Callable[[ray.ObjectRef], Any] = ray.get,
) -> list[Any]:
    """Every ref's value, failing at the first failed call or at the deadline, with the actor named.

    `ray.get` on a list waits for the slowest ref before raising. For a collective call that is
    fatal: when one learner rank dies, the others block in torch.distributed until its timeout
    (10 min in DeepSpeed), so the dead rank's error would surface only then.

    Args:
        refs: one ref per call, e.g. `group.run_all(...)`.
        labels: what each ref is, for the error ("learner rank 1 (save_checkpoint)").
        timeout_s: seconds all refs together may take.
        fetch: how a ready ref is read (`DriverFetcher.get` to count the bytes).

    Raises:
        ActorCallError: a call failed, or some were not done within `timeout_s` (all of those named).
    """
    deadline = time.monotonic() + timeout_s
    pending = dict(zip(refs, labels, strict=True))
    values: dict[ray.ObjectRef, Any] = {}
    while pending:
        ready, _ = ray.wait(
            list(pending), num_returns=1, timeout=max(0.0, deadline - time.monotonic()), fetch_local=False
        )
        if not ready:
            raise ActorCallError(f"{', '.join(pending.values())} did not finish within {timeout_s:g} s")
        for ref in ready:
            values[ref] = fetch_checked(ref, pending.pop(ref), fetch)
    return [values[ref] for ref in refs]


def _unsatisfied_message(name: str, bundles: list[dict[str, float]], cfg: ActorGroupConfig, waited_s: float) -> str:
    """Explain which resource is missing: a total the cluster lacks, or a bundle no single node fits."""
    needed: dict[str, float] = {}
    for bundle in bundles:
        for key, amount in bundle.items():
            needed[key] = needed.get(key, 0.0) + amount
    total = ray.cluster_resources()
    free = ray.available_resources()
    short = [
        f"{key}: need {amount:g}, cluster has {total.get(key, 0.0):g} ({free.get(key, 0.0):g} free)"
        for key, amount in needed.items()
        if amount > free.get(key, 0.0) + 1e-9
    ]
    if not short:
        short = [f"no node fits one bundle {bundles[0]} under strategy {cfg.placement_strategy}"]
    return (
        f"{name}: placement group of {len(bundles)} x {bundles[0]} not ready after "
        f"{waited_s:g}s; missing {'; '.join(short)}. Lower the group's num_actors or per-actor "
        f"resources, or add nodes that provide them."
    )
