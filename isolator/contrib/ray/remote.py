"""The agent as a Ray actor: one per node, pinned to it, restarted on it by Ray.

Why each actor option (``start_agent``):

- ``NodeAffinitySchedulingStrategy(node_id, soft=False)``: the agent's checkpoints, plugin
  and tasks are on its node; an agent restarted elsewhere would find none of them.
- ``max_restarts`` (default -1, no limit): Ray starts a dead agent again on its node, with
  the same ``AgentConfig``; its constructor recovers what the dead one left.
- ``max_task_retries`` per method: 0 for ``launch`` (after a crash in the middle, a retry
  would prepare and start the task a second time, so the caller gets ``RayActorError``
  instead and decides), 0 for ``ended`` (its failure *is* the news), -1 for the idempotent
  calls, which thus ride over a restart: a ``wait`` in flight when the agent died is
  answered by its successor.
- ``num_cpus=0``: the agent mostly waits; its tasks run outside Ray's accounting, as the
  processes of a node daemon do.

Ray must leave the agent's grandchildren alone when it kills the agent (its default; not with
``RAY_kill_child_processes_on_worker_exit_with_raylet_subreaper`` or process-group cleanup
of sessions, which the shims leave anyway). Only public Ray APIs are used;
``ray.cluster_utils.Cluster`` (a developer API) only by ``local_cluster``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import ray
from ray.actor import ActorHandle
from ray.cluster_utils import Cluster
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from isolator.contrib.ray.agent import Agent, AgentConfig
from isolator.contrib.ray.processes import reap_children, set_subreaper
from isolator.contrib.ray.tasks import AgentInfo, TaskInfo, TaskResult, TaskSpec

__all__ = ["AgentHandle", "LocalCluster", "alive_nodes", "local_cluster", "start_agent"]

NODE_OBJECT_STORE = 80 * 1024 * 1024
"""Object store per simulated node: the agents exchange small values only."""

REAP_TIMEOUT = 30.0
"""Seconds ``local_cluster`` waits, after the shutdown, for processes it adopted to exit."""

_RemoteAgent = ray.remote(Agent)


class AgentHandle:
    """A typed handle on one agent actor: each call returns an ``ObjectRef`` at once."""

    def __init__(self, actor: ActorHandle[Agent], node_id: str) -> None:
        self.actor = actor
        self.node_id = node_id

    def launch(self, spec: TaskSpec) -> ray.ObjectRef[TaskInfo]:
        return self._call("launch", 0, spec)

    def wait(self, name: str) -> ray.ObjectRef[TaskResult]:
        return self._call("wait", -1, name)

    def kill(self, name: str) -> ray.ObjectRef[bool]:
        return self._call("kill", -1, name)

    def info(self) -> ray.ObjectRef[AgentInfo]:
        return self._call("info", -1)

    def holders(self) -> ray.ObjectRef[dict[str, int]]:
        return self._call("holders", -1)

    def leftovers(self) -> ray.ObjectRef[list[str]]:
        return self._call("leftovers", -1)

    def mount_points(self) -> ray.ObjectRef[set[str]]:
        return self._call("mount_points", -1)

    def ended(self) -> ray.ObjectRef[int]:
        """Ready at ``shutdown``; fails with ``RayActorError`` when this incarnation dies."""
        return self._call("ended", 0)

    def shutdown(self, *, kill_tasks: bool = False) -> ray.ObjectRef[None]:
        return self._call("shutdown", -1, kill_tasks=kill_tasks)

    def _call(self, method: str, retries: int, *args: Any, **kwargs: Any) -> ray.ObjectRef[Any]:
        bound = getattr(self.actor, method)
        ref: ray.ObjectRef[Any] = bound.options(max_task_retries=retries).remote(*args, **kwargs)
        return ref


def start_agent(node_id: str, config: AgentConfig, *, max_restarts: int = -1) -> AgentHandle:
    """Start an agent on node ``node_id`` (its hex ID), restartable there."""
    actor = _RemoteAgent.options(
        num_cpus=0,
        max_restarts=max_restarts,
        max_task_retries=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote(config)
    return AgentHandle(cast("ActorHandle[Agent]", actor), node_id)


def alive_nodes() -> list[str]:
    """The IDs of the cluster's live nodes, in the order Ray lists them."""
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return [node["NodeID"] for node in nodes if node["Alive"]]


@dataclass
class LocalCluster:
    """A simulated cluster on this machine, as ``local_cluster`` yields it."""

    address: str
    nodes: list[str]
    leftover_processes: list[str] = field(default_factory=list)
    """Filled at the end: processes below the cluster still running after its shutdown."""


@contextmanager
def local_cluster(nodes: int) -> Iterator[LocalCluster]:
    """Start ``nodes`` small Ray nodes on this machine and connect to them; always shut down.

    This process becomes the subreaper of everything below it for the block (the shims
    the agents leave on their "nodes" are reparented here, not to init), and reaps it all
    at the end; what still runs then is listed in ``leftover_processes``.
    """
    set_subreaper(True)
    node_args: dict[str, Any] = {"num_cpus": 1, "object_store_memory": NODE_OBJECT_STORE}
    head_args = {**node_args, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=head_args)
    local = LocalCluster(cluster.address, [])
    try:
        for _ in range(nodes - 1):
            cluster.add_node(**node_args)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False)
        local.nodes = alive_nodes()
        yield local
    finally:
        ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]
        local.leftover_processes = reap_children(REAP_TIMEOUT)
        set_subreaper(False)
