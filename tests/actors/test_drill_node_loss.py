"""Drill: a node is lost in a 3-node cluster (rollout / learner / judge nodes tagged by custom resources).

Three raylets on this machine (`ray.cluster_utils.Cluster`) stand in for three machines. Every
component is pinned by its own config setting: `rollout.resources_per_engine`,
`learner.resources_per_rank` and `judge_pool.resources_per_replica`. The judge pool is the real Ray
Serve application (offline backend); rollout engines and learner ranks are placed through the real
group configs (`rollout_group_config`, `learner_group_config`) with a trivial actor class in place of
vLLM / DeepSpeed, which three 1-CPU raylets cannot host. Losing the rollout node must either move the
rollout actors to a replacement node (restart policy, in-flight calls retried) or, with no node
offering `rollout_node`, fail with an error that names that resource, never hang silently.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
import ray
from ray.cluster_utils import Cluster
from ray.util.state import list_actors

from actors.group import ActorGroup
from actors.learner_actor import learner_group_config
from actors.rollout_pool import rollout_group_config
from judge.config import JudgeConfig
from judge.pool import JudgePool
from judge.serve_config import JudgePoolConfig
from learner.config import LearnerConfig
from rollout.config import RolloutConfig

pytestmark = pytest.mark.e2e

PIN = 0.01


@ray.remote
class Worker:
    """Stand-in for RolloutActor / LearnerActor: reports where it runs (accepts the rendezvous kwargs)."""

    def __init__(self, role: str, *, rank: int, world_size: int, **rendezvous: object):
        self.role, self.rank = role, rank

    def where(self) -> tuple[str, int, str, bool]:
        ctx = ray.get_runtime_context()
        return self.role, self.rank, ctx.get_node_id(), ctx.was_current_actor_reconstructed


def rollout_cfg(num_engines: int = 2) -> RolloutConfig:
    return RolloutConfig(
        num_engines=num_engines, num_cpus_per_engine=0.25, resources_per_engine={"rollout_node": PIN}, max_restarts=-1
    )


def judge_replicas() -> dict[str, str]:
    """Actor id → node id of every live judge replica and the judge router."""
    actors = list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
    return {
        a.actor_id: a.node_id for a in actors if "JudgeDeployment" in a.class_name or "JudgeIngress" in a.class_name
    }


def remove_node(ray_cluster: Cluster, node) -> None:
    """Kill a raylet and return once the GCS has marked it dead (slower on a busy box), so what
    follows sees the cluster without it rather than racing the failure detector."""
    ray_cluster.remove_node(node)
    deadline = time.monotonic() + 60
    while any(n["NodeID"] == node.node_id and n["Alive"] for n in ray.nodes()):
        assert time.monotonic() < deadline, f"node {node.node_id} still alive 60 s after removal"
        time.sleep(0.1)


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
def components(cluster):
    rollout = ActorGroup(Worker, rollout_group_config(rollout_cfg()), "rollout", name="rollout")
    learner_cfg = LearnerConfig(num_ranks=2, resources_per_rank={"learner_node": PIN})
    learner = ActorGroup(Worker, learner_group_config(learner_cfg, num_cpus_per_rank=0.25), "learner", name="learner")
    pool_cfg = JudgePoolConfig(
        enable_http=False,
        min_replicas=2,
        initial_replicas=2,
        max_replicas=2,
        num_cpus_per_replica=0.25,
        resources_per_replica={"judge_node": PIN},
    )
    judge = JudgePool.start(JudgeConfig(backend="offline"), pool_cfg, {})
    yield {"rollout": rollout, "learner": learner, "judge": judge}
    judge.shutdown()
    rollout.shutdown()
    learner.shutdown()


def test_each_component_runs_on_the_node_its_config_names(cluster, components):
    _, nodes = cluster
    for role in ("rollout", "learner"):
        reports = ray.get(components[role].run_all("where"), timeout=60)
        assert [(r, rank) for r, rank, _, _ in reports] == [(role, 0), (role, 1)]
        assert {node for _, _, node, _ in reports} == {nodes[f"{role}_node"].node_id}, role
    judge = judge_replicas()
    assert components["judge"].num_replicas() == 2
    assert len(judge) == 3  # two replicas and the router
    assert set(judge.values()) == {nodes["judge_node"].node_id}


def test_lost_rollout_node_reschedules_onto_replacement_then_fails_clearly_without_one(cluster, components):
    ray_cluster, nodes = cluster
    rollout = components["rollout"]
    ray.get(rollout.run_all("where"), timeout=60)
    judge_before = judge_replicas()

    remove_node(ray_cluster, nodes["rollout_node"])
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

    # The other nodes' components were untouched: same node, never reconstructed / same replicas.
    reports = ray.get(components["learner"].run_all("where"), timeout=60)
    assert {(node, restarted) for _, _, node, restarted in reports} == {(nodes["learner_node"].node_id, False)}
    assert judge_replicas() == judge_before

    # Lose the replacement too: no capacity left, so a new group (e.g. a restarted job) fails fast
    # naming the resource, and the existing group's wait does the same.
    remove_node(ray_cluster, replacement)
    again = dataclasses.replace(rollout_group_config(rollout_cfg(num_engines=1)), placement_timeout_s=2)
    with pytest.raises(TimeoutError, match=r"missing rollout_node: need 0\.01, cluster has 0"):
        ActorGroup(Worker, again, "rollout", name="again")
    with pytest.raises(TimeoutError, match=r"rollout_node: need 0\.02, cluster has 0"):
        rollout.wait_placed(timeout_s=2)
