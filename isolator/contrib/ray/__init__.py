"""One isolator per node under Ray: an ``Agent`` actor pinned to each node (``[ray]`` extra).

An isolator belongs to one node, as in Mesos or kubelet: its checkpoints, its plugin and the
mounts it makes are that node's. So a cluster runs one agent per node, and the cluster
engine (here Ray) places, pins and restarts them; the agent embeds the isolator and recovers
it after each restart.

- ``agent``: ``Agent`` (a plain class with async methods), ``AgentConfig``;
- ``remote``: ``start_agent`` (the Ray actor and its options), ``AgentHandle``,
  ``local_cluster`` (a simulated cluster on one machine); the only module importing Ray;
- ``tasks``: the values it takes and gives (``TaskSpec``, ``TaskResult``...);
- ``state``: its node-local state file; ``recovery``: survivors and orphans after a restart;
- ``processes`` and ``shim``: tasks and the plugin as processes that outlive the agent.

The names below load their modules on first use, so that the shim (started once per task)
imports neither Ray nor the actor runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from isolator.contrib.ray.agent import Agent, AgentConfig
    from isolator.contrib.ray.remote import (
        AgentHandle,
        LocalCluster,
        alive_nodes,
        local_cluster,
        start_agent,
    )
    from isolator.contrib.ray.tasks import (
        AgentError,
        AgentInfo,
        Counters,
        RecoveryReport,
        TaskInfo,
        TaskResult,
        TaskSpec,
        VolumeMount,
    )

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentError",
    "AgentHandle",
    "AgentInfo",
    "Counters",
    "LocalCluster",
    "RecoveryReport",
    "TaskInfo",
    "TaskResult",
    "TaskSpec",
    "VolumeMount",
    "alive_nodes",
    "local_cluster",
    "start_agent",
]

_MODULES = {
    "Agent": "agent",
    "AgentConfig": "agent",
    "AgentHandle": "remote",
    "LocalCluster": "remote",
    "alive_nodes": "remote",
    "local_cluster": "remote",
    "start_agent": "remote",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'isolator.contrib.ray' has no attribute {name!r}")
    module = importlib.import_module(f"isolator.contrib.ray.{_MODULES.get(name, 'tasks')}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
