"""Beyond one machine: one agent per node on Ray, and an agent killed mid-run.

A simulated cluster of 3 nodes (``ray.cluster_utils.Cluster``; ``--address`` joins a running
one instead) runs one ``isolator.contrib.ray`` agent per node, pinned to it and restartable.
Each agent owns its node's isolator, checkpoints and reference plugin. Volumes are local to
a node (as local-persist volumes are), so each task runs where its volumes live. The workload:

1. writers put files into every volume, several into one volume at once;
2. readers read them back through read-only mounts; a read-only task finds it cannot write;
3. a service starts on every node and holds a volume; on the last node a task that does not
   checkpoint shares that volume and holds another;
4. that node's agent is killed (``ray.kill(agent, no_restart=False)``) while its tasks hold
   volumes; Ray starts it again on its node, where it recovers: the service survives and
   keeps its volume mounted, the task that does not checkpoint is killed and its volumes are
   cleaned up as an orphan's;
5. the services are stopped, and every node is checked: no checkpoint, no plugin holder, no
   new host mount, no process left (and, for a cluster started here, none on the machine).

Exit status 0 means every check held. Needs the ``[ray]`` extra.

Run: ``.venv/bin/python examples/ray_cluster.py [--tasks N] [--quiet] [--address ADDR]``
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import ray
from ray.exceptions import RayActorError
from scheduler import Log, can_mount

from isolator.contrib.ray import (
    AgentConfig,
    AgentHandle,
    Counters,
    TaskResult,
    TaskSpec,
    VolumeMount,
    alive_nodes,
    local_cluster,
    start_agent,
)

NODES = 3
WAIT = 120.0
"""Seconds to wait on any one answer; the whole run takes a few of them."""


@dataclass(frozen=True)
class Planned:
    """A task, the node its volumes live on, and how it should end."""

    spec: TaskSpec
    node: int
    expect: str
    check: Callable[[str], bool] | None = None


@dataclass
class Run:
    """The agents and what came back from them."""

    agents: list[AgentHandle]
    log: Log
    mounts: bool = True
    results: list[tuple[int, TaskResult]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def label(self, node: int) -> str:
        return f"node-{node} ({self.agents[node].node_id[:8]})"

    def launch(self, tasks: list[Planned]) -> None:
        infos = ray.get([self.agents[t.node].launch(t.spec) for t in tasks], timeout=WAIT)
        for task, info in zip(tasks, infos, strict=True):
            volumes = ", ".join(
                f"{m.volume}{' (ro)' if m.read_only else ''}" for m in task.spec.volumes
            )
            self.log(
                f"{self.label(task.node)}: task {info.name} started (pid {info.pid}) on {volumes}"
            )

    def finish(self, tasks: list[Planned]) -> None:
        """Wait for each task's result (its volumes cleaned up) and check it."""
        results = ray.get([self.agents[t.node].wait(t.spec.name) for t in tasks], timeout=WAIT)
        for task, result in zip(tasks, results, strict=True):
            self.results.append((task.node, result))
            wrong = result.status != task.expect or (
                task.check is not None and not task.check(result.output)
            )
            if wrong:
                self.problems.append(
                    f"task {result.name}: expected {task.expect}, got "
                    f"{result.status} (exit {result.exit_code}): "
                    f"{result.output.strip()!r}"
                )
            note = f" ({result.note})" if result.note else ""
            self.log(
                f"task {result.name}: {result.status}{note}"
                f"{' - UNEXPECTED' if wrong else ''} | {result.output.strip()[:80]!r}"
            )

    def holders(self, node: int) -> dict[str, int]:
        return ray.get(self.agents[node].holders(), timeout=WAIT)


def volumes_of(node: int) -> list[str]:
    return [f"n{node}-a", f"n{node}-b"]


def writers(count: int) -> list[Planned]:
    everywhere = [(node, v) for node in range(NODES) for v in volumes_of(node)]
    planned = []
    for i in range(count):
        node, volume = everywhere[i % len(everywhere)]
        script = f'echo "written by writer-{i}" > data/writer-{i}.txt && cat data/writer-{i}.txt'
        spec = TaskSpec(f"writer-{i}", script, (VolumeMount(volume, path="data"),))
        planned.append(Planned(spec, node, "finished"))
    return planned


def readers(written: list[Planned], mounts: bool) -> list[Planned]:
    planned = []
    for node in range(NODES):
        for volume in volumes_of(node):
            names = {w.spec.name for w in written if w.spec.volumes[0].volume == volume}
            expected = {f"written by {name}" for name in names}

            def check(output: str, expected: set[str] = expected) -> bool:
                return not mounts or set(output.splitlines()) == expected

            script = 'for f in data/*.txt; do if [ -e "$f" ]; then cat "$f"; fi; done'
            mount = VolumeMount(volume, read_only=True, path="data")
            planned.append(
                Planned(TaskSpec(f"reader-{volume}", script, (mount,)), node, "finished", check)
            )
    script = "ls data >/dev/null && echo nope > data/read-only.txt"
    spec = TaskSpec("read-only", script, (VolumeMount("n0-a", read_only=True, path="data"),))
    planned.append(Planned(spec, 0, "failed" if mounts else "finished"))
    return planned


def services(victim: int) -> list[Planned]:
    planned = [
        Planned(
            TaskSpec(
                f"service-{node}",
                "echo serving; exec sleep 600",
                (VolumeMount(volumes_of(node)[0]),),
            ),
            node,
            "killed",
        )
        for node in range(NODES)
    ]
    shared, own = volumes_of(victim)
    spec = TaskSpec(
        "ephemeral",
        "echo serving; exec sleep 600",
        (VolumeMount(shared), VolumeMount(own)),
        checkpoint=False,
    )
    return [*planned, Planned(spec, victim, "killed")]


def crash_and_recover(run: Run, victim: int) -> None:
    """Kill the victim's agent while its tasks hold volumes; check what its successor kept."""
    agent = run.agents[victim]
    shared, own = volumes_of(victim)
    watch = agent.ended()
    ray.kill(agent.actor, no_restart=False)
    try:
        ray.get(watch, timeout=WAIT)
        run.problems.append("the killed agent reported a clean shutdown")
    except RayActorError:
        run.log(f"{run.label(victim)}: agent killed; Ray restarts it on its node")
    info = ray.get(agent.info(), timeout=WAIT)
    recovery = info.recovery
    run.log(
        f"{run.label(victim)}: agent incarnation {recovery.incarnation} (pid {info.pid}) "
        f"recovered: survivors {list(recovery.survivors)}, killed {list(recovery.killed)}, "
        f"ended {list(recovery.ended)}, plugin kept: {recovery.plugin_reused}"
    )
    if recovery.incarnation < 2 or "service-" + str(victim) not in recovery.survivors:
        run.problems.append(f"unexpected recovery on {run.label(victim)}: {recovery}")
    holders = run.holders(victim)
    run.log(f"{run.label(victim)}: plugin holders now {holders}")
    if holders.get(shared, 0) < 1:
        run.problems.append(f"{shared} was unmounted while service-{victim} used it")
    if holders.get(own, 0) != 0:
        run.problems.append(f"{own} is still mounted after the orphan's cleanup")


def workload(run: Run, tasks: int) -> None:
    victim = NODES - 1
    written = writers(tasks)
    run.log(f"phase 1: {len(written)} writers on {NODES * 2} node-local volumes")
    run.launch(written)
    run.finish(written)

    run.log("phase 2: readers read back through read-only mounts; a read-only task writes")
    reading = readers(written, run.mounts)
    run.launch(reading)
    run.finish(reading)

    run.log(f"phase 3: a service on every node; a task that does not checkpoint on node-{victim}")
    serving = services(victim)
    run.launch(serving)
    run.log(f"{run.label(victim)}: plugin holders {run.holders(victim)}")

    run.log(f"phase 4: the agent on node-{victim} is killed while its tasks hold volumes")
    crash_and_recover(run, victim)

    run.log("phase 5: the services are stopped")
    ray.get([run.agents[t.node].kill(t.spec.name) for t in serving[:-1]], timeout=WAIT)
    run.finish(serving)


def drain(run: Run, mounts_before: list[set[str]]) -> None:
    """Check every node is left clean, then stop its agent (and its plugin)."""
    for node, agent in enumerate(run.agents):
        left = ray.get(agent.leftovers(), timeout=WAIT)
        changed = ray.get(agent.mount_points(), timeout=WAIT) ^ mounts_before[node]
        if changed:
            left.append(f"host mounts changed: {sorted(changed)}")
        run.problems += [f"{run.label(node)}: {problem}" for problem in left]
        ray.get(agent.shutdown(), timeout=WAIT)


def summarize(run: Run, counters: list[Counters], problems: list[str]) -> None:
    print("\nSummary")
    for node, count in enumerate(counters):
        statuses = Counter(r.status for n, r in run.results if n == node)
        done = ", ".join(f"{number} {status}" for status, number in sorted(statuses.items()))
        print(
            f"  {run.label(node)}: {sum(statuses.values())} tasks ({done}); "
            f"{count.mounts} mounts, {count.unmounts} unmounts; agent restarts: "
            f"{count.restarts}, orphans cleaned up: {count.orphans}"
        )
    print(f"  time: {time.monotonic() - run.log.started:.2f} s")
    if problems:
        print("  PROBLEMS:")
        for problem in problems:
            print(f"    - {problem}")
    else:
        print(
            "  all checks held: no checkpoint, plugin holder, host mount or process left "
            "behind on any node"
        )


@contextmanager
def cluster(address: str | None, log: Log, problems: list[str]) -> Iterator[list[str]]:
    """The nodes to run on: a cluster started here (and stopped), or the one at ``address``."""
    if address is not None:
        ray.init(address=address, log_to_driver=False)
        try:
            yield alive_nodes()[:NODES]
        finally:
            ray.shutdown()
        return
    with local_cluster(NODES) as local:
        log(f"started a simulated cluster of {NODES} nodes at {local.address}")
        yield local.nodes
    problems += [f"process left running: {p}" for p in local.leftover_processes]


def start_agents(nodes: list[str], workdir: Path, mounts: bool) -> list[AgentHandle]:
    agents = []
    for node in nodes:
        root = workdir / f"node-{node[:8]}"
        agents.append(start_agent(node, AgentConfig(root=str(root), node=node, mounts=mounts)))
    return agents


def stop_agents(agents: list[AgentHandle]) -> None:
    """On the way out, whatever happened: end what still runs, stop the agents for good."""
    for agent in agents:
        try:
            ray.get(agent.shutdown(kill_tasks=True), timeout=WAIT)
        except Exception as error:  # already stopped, or broken: the checks report it
            print(f"stopping the agent on {agent.node_id[:8]}: {error}", file=sys.stderr)
        ray.kill(agent.actor, no_restart=True)


def main_job(workdir: Path, tasks: int, address: str | None, log: Log) -> list[str]:
    mounts = can_mount(log)
    problems: list[str] = []
    with cluster(address, log, problems) as nodes:
        if len(nodes) < NODES:
            return [f"the cluster has {len(nodes)} live nodes; {NODES} are needed"]
        run = Run(start_agents(nodes, workdir, mounts), log, mounts)
        try:
            mounts_before = ray.get([a.mount_points() for a in run.agents], timeout=WAIT)
            workload(run, tasks)
            counters = [ray.get(a.info(), timeout=WAIT).counters for a in run.agents]
            drain(run, mounts_before)
        finally:
            stop_agents(run.agents)
    problems = run.problems + problems  # the cluster's own check comes after its shutdown
    summarize(run, counters, problems)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=12, help="writer tasks (default 12)")
    parser.add_argument("--address", help="join this Ray cluster instead of starting one")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    args = parser.parse_args(argv)
    if args.tasks < 1:
        parser.error("--tasks must be at least 1")
    log = Log(quiet=args.quiet)
    # Short path: unix socket paths are limited to about 107 bytes.
    workdir = Path(tempfile.mkdtemp(dir="/tmp", prefix="ray-cluster-"))
    try:
        problems = main_job(workdir, args.tasks, args.address, log)
    except KeyboardInterrupt:  # (a SIGTERM is a SystemExit: Ray's driver makes it one)
        print(
            "interrupted: tasks, agents and the cluster started here are stopped", file=sys.stderr
        )
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
