"""One node's agent: its isolator, its plugin, its tasks, and their recovery after a restart.

A plain class with ``async`` methods, so that ``ray.remote(Agent)`` is an async actor (see
``isolator.contrib.ray.remote``) and tests drive it with ``asyncio`` alone. Its work runs on
one event loop thread of its own, which also watches every task's exit through a pidfd:
state changes therefore happen on that one thread, and a task ends (its volumes cleaned up)
whether or not anybody waits for it. Every public method may be called from any event loop.

Everything lives under ``AgentConfig.root``, which must be local to the node:
``checkpoints/`` (the isolator's), ``plugins/<driver>.sock`` and ``volumes/`` (the reference
plugin's socket and data), ``agent.json`` (``state``), ``sandboxes/<task>/`` and
``runs/<task>/`` (each task's shim files: ``processes``).

Started, an agent recovers what its previous incarnations left (Mesos's agent recovery):
the plugin, if still serving, is kept; each recorded task still running is handed to
``recover`` as a known container, so its volumes stay mounted, and watched again; a task that
ended meanwhile, or that does not checkpoint, is an orphan whose volumes are cleaned up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from actors import EventLoopThread
from isolator.common.observe import Observer, OperationEvent
from isolator.config.flags import Flags
from isolator.contrib.ray.processes import (
    Supervised,
    exited,
    read_exit_status,
    read_output,
    send_signal,
    spawn,
)
from isolator.contrib.ray.recovery import sort_out
from isolator.contrib.ray.state import NodeState, TaskRecord, load_state, save_state
from isolator.contrib.ray.tasks import (
    AgentError,
    AgentInfo,
    Counters,
    RecoveryReport,
    TaskInfo,
    TaskResult,
    TaskSpec,
)
from isolator.docker import leftovers as checks
from isolator.docker.handle import DockerVolumeIsolator
from isolator.drivers import Backoff, DockerPluginClient
from isolator.launcher import launcher_command
from isolator.messages import container_config, container_id, docker_volume
from isolator.protos import ContainerLaunchInfo

__all__ = ["Agent", "AgentConfig"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class AgentConfig:
    """Where an agent keeps its node's state and how it runs; the same on every restart."""

    root: str
    """A node-local directory for everything the agent keeps (see the module's doc)."""
    node: str = ""
    """The node's name in reports (the Ray node ID)."""
    driver: str = "local"
    """The name the node's reference plugin serves its volumes under."""
    mounts: bool | None = None
    """Bind mount the volumes into tasks (needs root); None: when running as root."""
    timeout: float = 60.0
    """Seconds a step may take: recovery, a shim's start, a plugin's stop."""
    output_limit: int = 4096
    """How much of a task's output its result carries (the end of it)."""

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.root) / "checkpoints"

    @property
    def socket_dir(self) -> Path:
        return Path(self.root) / "plugins"


class _Counting(Observer):
    """Counts the plugin's successful mounts and unmounts, on the agent's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, counters: Counters) -> None:
        self._loop = loop
        self._counters = counters

    def on_operation(self, event: OperationEvent) -> None:
        if event.error is None and event.operation in ("mount", "unmount"):
            # Once the agent has stopped (its loop closed) there is nothing left to count.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._count, event.operation)

    def _count(self, operation: str) -> None:
        if operation == "mount":
            self._counters.mounts += 1
        else:
            self._counters.unmounts += 1


class Agent:
    """Runs tasks on one node's Docker volumes and recovers them after a restart.

    The constructor recovers (it blocks until done, as Ray's actor creation expects) and
    raises ``AgentError`` or the isolator's error if it cannot. ``launch`` is not idempotent;
    every other call is, so a driver may retry those across a restart.
    """

    def __init__(self, config: AgentConfig) -> None:
        self._config = config
        self._mounts = os.geteuid() == 0 if config.mounts is None else config.mounts
        self._state_file = Path(config.root) / "agent.json"
        self._state: NodeState = load_state(self._state_file)
        self._state.incarnation += 1
        if self._state.incarnation > 1:
            self._state.counters.restarts += 1
        self._results: dict[str, asyncio.Future[TaskResult]] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._ended: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._closed = False
        self._thread = EventLoopThread(name="isolator-agent")
        self._loop = self._thread.loop
        flags = Flags(
            docker_volume_checkpoint_dir=str(config.checkpoint_dir),
            docker_plugin_socket_dir=str(config.socket_dir),
            docker_plugin_spec_dirs=(),
        )
        # Short retries while a plugin just started comes up (it serves within a second).
        backoff = Backoff(base_delay=0.05, cap=0.5, budget=config.timeout)
        self._client = DockerPluginClient(
            socket_dir=flags.docker_plugin_socket_dir, spec_dirs=[], backoff=backoff
        )
        observer = _Counting(self._loop, self._state.counters)
        try:
            self._isolator = DockerVolumeIsolator.create(flags, self._client, observer=observer)
        except BaseException:
            self._client.close()
            self._thread.stop()
            raise
        try:
            future = asyncio.run_coroutine_threadsafe(self._recover(), self._loop)
            self._recovery: RecoveryReport = future.result(config.timeout)
        except BaseException:
            self.abandon()
            raise

    # -- the public calls: each runs on the agent's loop ----------------------------------

    async def launch(self, spec: TaskSpec) -> TaskInfo:
        """Prepare the task's volumes and start it; returns once it runs. Not idempotent."""
        return await self._run(self._launch(spec))

    async def wait(self, name: str) -> TaskResult:
        """How the task ended, once its volumes are cleaned up (at once if it has)."""
        return await self._run(self._wait(name))

    async def kill(self, name: str) -> bool:
        """SIGKILL the task's process group; False if it has ended already."""
        return await self._run(self._kill(name))

    async def info(self) -> AgentInfo:
        """This incarnation: its node, pid, recovery report, running tasks and counters."""
        return await self._run(self._info())

    async def holders(self) -> dict[str, int]:
        """Volume -> how many callers hold it, as the node's plugin reports."""
        volumes = await self._client.loop.submit(self._client.api.list(self._config.driver))
        return checks.mount_holders(volumes)

    async def leftovers(self) -> list[str]:
        """What this node still holds (running tasks, checkpoints, mounted volumes)."""
        running = await self._run(self._running())
        problems = [f"tasks still running: {list(running)}"] if running else []
        return problems + checks.leftovers(self._config.checkpoint_dir, await self.holders())

    async def mount_points(self) -> set[str]:
        """The node's mount points, to compare before and after a workload."""
        return checks.host_mounts()

    async def ended(self) -> int:
        """Returns this incarnation's number at ``shutdown``; a caller's way to see it die."""
        return await asyncio.wrap_future(self._ended)

    async def shutdown(self, *, kill_tasks: bool = False) -> None:
        """Stop the plugin and this agent; with ``kill_tasks``, end the tasks first.

        Refuses (``AgentError``) while tasks run and ``kill_tasks`` is False; does nothing
        once the agent has stopped.
        """
        if self._closed:
            return
        await self._run(self._shutdown(kill_tasks))
        if not self._ended.done():
            self._ended.set_result(self._state.incarnation)
        self._stop()

    def abandon(self) -> None:
        """Stop as a crash would: no cleanup; the plugin and the tasks keep running."""
        if not self._ended.done():
            self._ended.set_exception(AgentError("The agent was abandoned"))
        self._stop()

    # -- on the agent's loop --------------------------------------------------------------

    async def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coroutine.close()
            raise AgentError(f"The agent on node {self._config.node} has stopped")
        done = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return await asyncio.wrap_future(done)

    async def _recover(self) -> RecoveryReport:
        plugin_reused = await self._start_plugin()
        fates = await sort_out(self._state.tasks, self._config.timeout)
        tasks = self._state.tasks
        await self._isolator.recover(fates.states(tasks), fates.orphans(tasks))
        unknown = await self._isolator.orphan_cleanups()
        notes = dict.fromkeys(fates.ended, "ended while no agent watched")
        notes.update(dict.fromkeys(fates.killed, "killed at recovery: it does not checkpoint"))
        results = await asyncio.gather(*(self._finish(n, note) for n, note in notes.items()))
        self._state.counters.orphans += len(notes) + len(unknown)
        self._save()
        for name in fates.survivors:
            self._watch(name)
        failures = [str(f.failure()) for f in unknown if not f.is_ready()]
        failures += [f"{r.name}: {r.cleanup_error}" for r in results if r.cleanup_error]
        return RecoveryReport(
            self._state.incarnation,
            plugin_reused,
            tuple(fates.survivors),
            tuple(fates.ended),
            tuple(fates.killed),
            len(unknown),
            tuple(failures),
        )

    async def _start_plugin(self) -> bool:
        """Keep the plugin a previous incarnation started if it still serves; True if so."""
        plugin = self._state.plugin
        if plugin is not None and plugin.shim.running():
            return True
        socket = self._config.socket_dir / f"{self._config.driver}.sock"
        argv = [sys.executable, "-m", "isolator.plugin", "--socket", str(socket)]
        argv += ["--root", str(Path(self._config.root) / "volumes")]
        self._state.plugin = await self._spawn(argv, Path(self._config.root) / "runs" / ".plugin")
        self._save()
        return False

    async def _launch(self, spec: TaskSpec) -> TaskInfo:
        spec.check()
        if spec.name in self._state.tasks:
            raise AgentError(f"Task {spec.name} already runs on node {self._config.node}")
        root = Path(self._config.root)
        sandbox, run_dir = root / "sandboxes" / spec.name, root / "runs" / spec.name
        shutil.rmtree(run_dir, ignore_errors=True)  # an earlier task's, under the same name
        sandbox.mkdir(parents=True, exist_ok=True)
        record = TaskRecord(spec, spec.name, str(sandbox), str(run_dir))
        self._state.tasks[spec.name] = record
        self._results[spec.name] = self._loop.create_future()
        self._save()
        cid = container_id(record.container_id)
        volumes = [
            docker_volume(self._config.driver, m.volume, m.target, read_only=m.read_only)
            for m in spec.volumes
        ]
        try:
            prepared = await self._isolator.prepare(cid, container_config(str(sandbox), volumes))
            launch_info = ContainerLaunchInfo()
            if prepared is not None and self._mounts:
                launch_info.CopyFrom(prepared)
            launch_info.working_directory = str(sandbox)
            argv = launcher_command(launch_info, ["sh", "-c", spec.command])
            record.processes = await self._spawn(argv, run_dir)
        except BaseException as error:
            await self._finish(spec.name, f"not started: {error}")
            raise
        self._state.counters.tasks += 1
        self._save()
        self._watch(spec.name)
        return TaskInfo(
            spec.name, self._config.node, record.processes.child.pid, cid.value, str(sandbox)
        )

    async def _spawn(self, argv: list[str], run_dir: Path) -> Supervised:
        return await asyncio.wait_for(spawn(argv, run_dir), self._config.timeout)

    def _watch(self, name: str) -> None:
        self._results.setdefault(name, self._loop.create_future())
        watcher = self._loop.create_task(self._supervise(name))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _supervise(self, name: str) -> None:
        processes = self._state.tasks[name].processes
        assert processes is not None
        await exited(processes.shim)
        await self._finish(name, "")

    async def _finish(self, name: str, note: str) -> TaskResult:
        """Clean the ended task's volumes up, forget it and hand out its result."""
        record = self._state.tasks[name]
        try:
            await self._isolator.cleanup(container_id(record.container_id))
            cleanup_error = ""
        except Exception as error:
            # The checkpoint stays: the next recovery cleans it up as an unknown orphan.
            cleanup_error = str(error)
            logger.warning("Cleanup of task %s failed: %s", name, error)
        run_dir = Path(record.run_dir)
        exit_code = read_exit_status(run_dir) if record.processes is not None else None
        result = TaskResult(
            name,
            self._config.node,
            TaskResult.status_of(exit_code),
            exit_code,
            read_output(run_dir, self._config.output_limit),
            note,
            cleanup_error,
        )
        del self._state.tasks[name]
        self._save()
        waiting = self._results.setdefault(name, self._loop.create_future())
        if not waiting.done():
            waiting.set_result(result)
        return result

    async def _wait(self, name: str) -> TaskResult:
        result = self._results.get(name)
        if result is None:
            raise AgentError(f"No task {name} on node {self._config.node} since its agent started")
        return await asyncio.shield(result)

    async def _kill(self, name: str) -> bool:
        record = self._state.tasks.get(name)
        if record is None or record.processes is None:
            return False
        return send_signal(record.processes.child, signal.SIGKILL, group=True)

    async def _info(self) -> AgentInfo:
        return AgentInfo(
            self._config.node,
            os.getpid(),
            self._mounts,
            self._recovery,
            await self._running(),
            dataclasses.replace(self._state.counters),
        )

    async def _running(self) -> tuple[str, ...]:
        return tuple(sorted(self._state.tasks))

    async def _shutdown(self, kill_tasks: bool) -> None:
        running = list(self._state.tasks)
        if running and not kill_tasks:
            raise AgentError(f"Tasks still run on node {self._config.node}: {running}")
        for name in running:
            await self._kill(name)
        results = [asyncio.shield(self._results[name]) for name in running]
        await asyncio.wait_for(asyncio.gather(*results), self._config.timeout)
        plugin = self._state.plugin
        if plugin is not None:
            send_signal(plugin.child, signal.SIGTERM)
            await asyncio.wait_for(exited(plugin.shim), self._config.timeout)
            self._state.plugin = None
            self._save()

    def _save(self) -> None:
        save_state(self._state_file, self._state)

    def _stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._isolator.stop()
        self._client.close()
        self._thread.stop()
