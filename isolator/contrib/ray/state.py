"""The agent's node-local state file: what a restarted agent needs to pick up its node's work.

One JSON file, rewritten atomically and durably (``isolator.common.fs.write_atomically``) after each
change: the incarnation count, the plugin's shim, each task launched and not yet cleaned up
(its spec, container, sandbox and processes) and the counters reported per node. The
isolator's checkpoints stay the isolator's: this file only says which checkpointed containers
are tasks and which process runs each, so that a restarted agent can tell survivors from
orphans. A task is recorded *before* it is prepared, so no container is ever launched
unrecorded; its processes are added once its shim reports them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from isolator.common.fs import WriteError, write_atomically
from isolator.contrib.ray.processes import Supervised
from isolator.contrib.ray.tasks import AgentError, Counters, TaskSpec, VolumeMount

__all__ = ["STATE_VERSION", "NodeState", "TaskRecord", "load_state", "save_state"]

STATE_VERSION = 1

T = TypeVar("T")


@dataclass
class TaskRecord:
    """One task from its launch until its volumes are cleaned up."""

    spec: TaskSpec
    container_id: str
    sandbox: str
    run_dir: str
    processes: Supervised | None = None
    """The shim and the task; None until the shim has reported (or if it never did)."""


@dataclass
class NodeState:
    incarnation: int = 0
    plugin: Supervised | None = None
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)


def _get(data: Any, key: str, kind: type[T]) -> T:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{key!r} is not a {kind.__name__}")
    return value


def _spec(data: Any) -> TaskSpec:
    volumes = tuple(
        VolumeMount(_get(v, "volume", str), _get(v, "read_only", bool), _get(v, "path", str))
        for v in _get(data, "volumes", list)
    )
    return TaskSpec(
        _get(data, "name", str), _get(data, "command", str), volumes, _get(data, "checkpoint", bool)
    )


def _record(data: Any) -> TaskRecord:
    processes = data.get("processes") if isinstance(data, dict) else None
    return TaskRecord(
        spec=_spec(_get(data, "spec", dict)),
        container_id=_get(data, "container_id", str),
        sandbox=_get(data, "sandbox", str),
        run_dir=_get(data, "run_dir", str),
        processes=None if processes is None else Supervised.from_json(processes),
    )


def _parse(data: Any) -> NodeState:
    if _get(data, "version", int) != STATE_VERSION:
        raise ValueError(f"version {data['version']} is not {STATE_VERSION}")
    plugin = data.get("plugin")
    counters = _get(data, "counters", dict)
    names = [f.name for f in dataclasses.fields(Counters)]
    return NodeState(
        incarnation=_get(data, "incarnation", int),
        plugin=None if plugin is None else Supervised.from_json(plugin),
        tasks={name: _record(record) for name, record in _get(data, "tasks", dict).items()},
        counters=Counters(**{name: _get(counters, name, int) for name in names}),
    )


def load_state(path: Path) -> NodeState:
    """The state at ``path``; a fresh one if there is no file. Raises ``AgentError``."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return NodeState()
    except OSError as error:
        raise AgentError(f"Failed to read the agent state '{path}': {error.strerror}") from error
    try:
        return _parse(json.loads(content))
    except ValueError as error:
        raise AgentError(f"The agent state '{path}' is not valid: {error}") from error


def _json(state: NodeState) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "incarnation": state.incarnation,
        "plugin": None if state.plugin is None else state.plugin.to_json(),
        "tasks": {
            name: {
                "spec": dataclasses.asdict(record.spec),
                "container_id": record.container_id,
                "sandbox": record.sandbox,
                "run_dir": record.run_dir,
                "processes": None if record.processes is None else record.processes.to_json(),
            }
            for name, record in state.tasks.items()
        },
        "counters": dataclasses.asdict(state.counters),
    }


def save_state(path: Path, state: NodeState) -> None:
    """Replace the file at ``path`` with ``state``, atomically. Raises ``AgentError``."""
    try:
        write_atomically(path, json.dumps(_json(state), indent=1).encode())
    except WriteError as error:
        raise AgentError(f"Failed to save the agent state: {error}") from error
