"""What an agent is asked to run and what it answers: plain values, pickled by Ray as they are."""

from __future__ import annotations

from dataclasses import dataclass, field

from isolator.common.names import component_problem, control_problem, printable

__all__ = [
    "AgentError",
    "AgentInfo",
    "Counters",
    "RecoveryReport",
    "TaskInfo",
    "TaskResult",
    "TaskSpec",
    "VolumeMount",
]


class AgentError(Exception):
    """The agent refused a call or could not carry it out; the message says why."""


@dataclass(frozen=True)
class VolumeMount:
    """A Docker volume of the agent's plugin, seen by the task at ``<sandbox>/<path>``."""

    volume: str
    read_only: bool = False
    path: str = ""
    """Relative to the sandbox; default: the volume's name."""

    @property
    def target(self) -> str:
        return self.path or self.volume


@dataclass(frozen=True)
class TaskSpec:
    """A task: ``sh -c command`` in its own sandbox, with ``volumes`` mounted."""

    name: str
    """Unique on its node while it runs: it names the sandbox and the container ID."""
    command: str
    volumes: tuple[VolumeMount, ...] = ()
    checkpoint: bool = True
    """Whether it survives an agent restart, as Mesos's ``FrameworkInfo.checkpoint``: if
    False, a restarted agent kills it and cleans its volumes up as an orphan's."""

    def check(self) -> None:
        """Raise ``AgentError`` for a name or path the agent could not use safely."""
        problem = component_problem(self.name) or control_problem(self.name)
        if problem is None and self.name.startswith("."):
            problem = "must not start with '.'"
        if problem is not None:
            raise AgentError(f"Task name '{printable(self.name)}' {problem}")
        targets = [mount.target for mount in self.volumes]
        for target in targets:
            problem = component_problem(target) or control_problem(target)
            if problem is not None:
                raise AgentError(f"Task {self.name}: volume path '{printable(target)}' {problem}")
        if len(set(targets)) != len(targets):
            raise AgentError(f"Task {self.name}: two volumes at the same path: {targets}")


@dataclass(frozen=True)
class TaskInfo:
    """A task that runs: where, as which process and container."""

    name: str
    node: str
    pid: int
    container_id: str
    sandbox: str


@dataclass(frozen=True)
class TaskResult:
    """How a task ended, once its volumes were cleaned up."""

    name: str
    node: str
    status: str
    """``finished`` (exit 0), ``failed`` (other exit), ``killed`` (a signal) or ``unknown``."""
    exit_code: int | None
    """Negative: killed by that signal; None when nobody saw the exit."""
    output: str
    """The end of its stdout and stderr."""
    note: str = ""
    """How it ended, if not under this agent's eyes (while it was down; at its recovery)."""
    cleanup_error: str = ""
    """Why its volumes could not be cleaned up (a later recovery retries); empty if they were."""

    @staticmethod
    def status_of(exit_code: int | None) -> str:
        if exit_code is None:
            return "unknown"
        return "finished" if exit_code == 0 else "killed" if exit_code < 0 else "failed"


@dataclass(frozen=True)
class RecoveryReport:
    """What an agent found when it started: the work of its previous incarnations."""

    incarnation: int
    """1 for the first start on this node's state, then one more per restart."""
    plugin_reused: bool
    """The plugin a previous incarnation started was still serving."""
    survivors: tuple[str, ...] = ()
    """Tasks still running: recovered as known containers, their volumes kept."""
    ended: tuple[str, ...] = ()
    """Tasks that ended while no agent watched: cleaned up as orphans."""
    killed: tuple[str, ...] = ()
    """Running tasks that do not checkpoint: killed, then cleaned up as orphans."""
    unknown_orphans: int = 0
    """Checkpointed containers no task record names (an agent died mid-launch): cleaned up."""
    failures: tuple[str, ...] = field(default=())
    """Orphan cleanups that failed (a later recovery retries them)."""


@dataclass
class Counters:
    """What happened on a node, across its agent's restarts (for reports)."""

    tasks: int = 0
    """Tasks launched."""
    mounts: int = 0
    """Successful Mount calls to the plugin."""
    unmounts: int = 0
    """Successful Unmount calls to the plugin."""
    restarts: int = 0
    """Times an agent started again on the node's state."""
    orphans: int = 0
    """Containers cleaned up as orphans at a recovery."""


@dataclass(frozen=True)
class AgentInfo:
    """An agent's answer to ``info()``: this incarnation and its node's counters."""

    node: str
    pid: int
    mounts: bool
    """Whether tasks get their volumes bind mounted (root) or run without mounts."""
    recovery: RecoveryReport
    running: tuple[str, ...]
    counters: Counters
