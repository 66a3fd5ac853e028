"""A restarted agent's first decision: which recorded task survived, which is an orphan.

Mesos's agent recovery, on the agent's own records: a task whose shim still runs survived
the agent and stays a known container (its volumes stay mounted) unless it does not
checkpoint, in which case it is killed now; a task whose shim is gone ended while no agent
watched. Those two kinds are the orphans whose volumes the agent cleans up.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from isolator.contrib.ray.processes import exited, read_pids, send_signal
from isolator.contrib.ray.state import TaskRecord
from isolator.messages import container_id
from isolator.protos import ContainerID, ContainerState

__all__ = ["Fates", "sort_out"]


@dataclass
class Fates:
    """Task names by what became of them while the agent was away."""

    survivors: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)

    def states(self, tasks: Mapping[str, TaskRecord]) -> list[ContainerState]:
        """The survivors as the isolator's ``recover`` takes known containers."""
        states = []
        for name in self.survivors:
            record = tasks[name]
            assert record.processes is not None
            states.append(
                ContainerState(
                    container_id=container_id(record.container_id),
                    pid=record.processes.child.pid,
                    directory=record.sandbox,
                )
            )
        return states

    def orphans(self, tasks: Mapping[str, TaskRecord]) -> list[ContainerID]:
        """The containers of the tasks that ended or were killed: to be cleaned up."""
        return [container_id(tasks[name].container_id) for name in self.ended + self.killed]


async def sort_out(tasks: Mapping[str, TaskRecord], timeout: float) -> Fates:
    """Decide each recorded task's fate, killing (and waiting for) those that do not
    checkpoint; fills in processes the shims wrote down but the agent never heard of."""
    fates = Fates()
    for name, record in tasks.items():
        # The shim writes its pids before it reports them: an agent that died in between
        # finds them in its run directory.
        record.processes = record.processes or read_pids(Path(record.run_dir))
        processes = record.processes
        if processes is None or not processes.shim.running():
            fates.ended.append(name)
        elif record.spec.checkpoint:
            fates.survivors.append(name)
        else:
            send_signal(processes.child, signal.SIGKILL, group=True)
            await asyncio.wait_for(exited(processes.shim), timeout)
            fates.killed.append(name)
    return fates
