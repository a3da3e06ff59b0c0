"""Drill: a node is lost in a 3-node cluster (rollout / learner / judge nodes tagged by custom resources).

Three raylets on this machine (`ray.cluster_utils.Cluster`) stand in for three machines. Each
ActorGroup is pinned to its node by a custom resource; losing the rollout node must either move the
rollout actors to a replacement node (restart policy, in-flight calls retried) or, with no node
offering `rollout_node`, fail with an error that names that resource, never hang silently.
"""

from __future__ import annotations

import pytest
import ray
from ray.cluster_utils import Cluster

from actors.config import ActorGroupConfig
from actors.group import ActorGroup

pytestmark = pytest.mark.slow

TAGS = ("rollout_node", "learner_node", "judge_node")


@ray.remote
class Worker:
    """Trivial stand-in for RolloutActor / LearnerActor / judge replicas: reports where it runs."""

    def __init__(self, role: str, *, rank: int, world_size: int):
        self.role, self.rank = role, rank

    def where(self) -> tuple[str, int, str, bool]:
        ctx = ray.get_runtime_context()
        return self.role, self.rank, ctx.get_node_id(), ctx.was_current_actor_reconstructed


def group_cfg(tag: str, num_actors: int = 2, placement_timeout_s: float = 20) -> ActorGroupConfig:
    return ActorGroupConfig(
        num_actors=num_actors,
        num_cpus_per_actor=0.25,
        resources_per_actor={tag: 0.01},
        max_restarts=-1,
        max_task_retries=-1,
        placement_timeout_s=placement_timeout_s,
    )


@pytest.fixture(scope="module")
def cluster():
    """Head = learner node; two more raylets tagged rollout_node and judge_node (1 CPU each)."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"learner_node": 1}})
    nodes = {"learner_node": cluster.head_node}
    nodes["rollout_node"] = cluster.add_node(num_cpus=1, resources={"rollout_node": 1})
    nodes["judge_node"] = cluster.add_node(num_cpus=1, resources={"judge_node": 1})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False)
    yield cluster, nodes
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def groups(cluster):
    made = {tag: ActorGroup(Worker, group_cfg(tag), tag.split("_")[0], name=tag.split("_")[0]) for tag in TAGS}
    yield made
    for group in made.values():
        group.shutdown()


def test_each_group_runs_on_its_tagged_node(cluster, groups):
    _, nodes = cluster
    for tag, group in groups.items():
        reports = ray.get(group.run_all("where"), timeout=60)
        assert [(role, rank) for role, rank, _, _ in reports] == [(tag.split("_")[0], 0), (tag.split("_")[0], 1)]
        assert {node for _, _, node, _ in reports} == {nodes[tag].node_id}, tag


def test_lost_rollout_node_reschedules_onto_replacement_then_fails_clearly_without_one(cluster, groups):
    ray_cluster, nodes = cluster
    rollout = groups["rollout_node"]
    ray.get(rollout.run_all("where"), timeout=60)

    ray_cluster.remove_node(nodes["rollout_node"])
    # While no node offers rollout_node, the group reports exactly that instead of waiting forever.
    with pytest.raises(TimeoutError, match=r"rollout: placement group of 2 x .*missing .*rollout_node: need 0\.02"):
        rollout.wait_placed(timeout_s=3)
    # A call issued now is not lost: it is retried on the restarted actor once capacity returns.
    in_flight = rollout.run_on(1, "where")

    replacement = ray_cluster.add_node(num_cpus=1, resources={"rollout_node": 1})
    rollout.wait_placed(timeout_s=60)
    reports = ray.get(rollout.run_all("where"), timeout=120)
    assert [(rank, node, restarted) for _, rank, node, restarted in reports] == [
        (0, replacement.node_id, True),
        (1, replacement.node_id, True),
    ]
    assert ray.get(in_flight, timeout=60)[1:3] == (1, replacement.node_id)

    # The other nodes' groups were untouched: same node, never reconstructed.
    for tag in ("learner_node", "judge_node"):
        reports = ray.get(groups[tag].run_all("where"), timeout=60)
        assert {(node, restarted) for _, _, node, restarted in reports} == {(nodes[tag].node_id, False)}

    # Lose the replacement too: no capacity left, so a new group (e.g. a restarted job) fails fast
    # naming the resource, and the existing group's wait does the same.
    ray_cluster.remove_node(replacement)
    with pytest.raises(TimeoutError, match=r"missing rollout_node: need 0\.01, cluster has 0"):
        ActorGroup(Worker, group_cfg("rollout_node", num_actors=1, placement_timeout_s=2), "rollout", name="again")
    with pytest.raises(TimeoutError, match=r"rollout_node: need 0\.02, cluster has 0"):
        rollout.wait_placed(timeout_s=2)
