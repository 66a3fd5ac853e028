"""Choosing an OCI runtime (runc, crun) and reading its state: the package-side half.

The launcher process itself is :mod:`isolator.launch.oci_supervisor` (standard library
only, with the runtime's commands in :mod:`isolator.launch.oci_commands`); this module
names the runtimes, resolves the binary, and lists the launcher's containers from the
runtime's state for the scheduler's recovery.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass

from isolator.common.names import printable
from isolator.launch.launch_error import LaunchError
from isolator.launch.oci_commands import (
    RuntimeCommandError,
    delete_container,
    kill_container,
    list_state,
)
from isolator.launch.oci_supervisor import (
    ID_PREFIX,
    KILL_REQUEST,
    LAUNCHER_ANNOTATION,
    remove_bundle,
    remove_stopped,
    run_container,
    run_payload,
    write_bundle,
)

__all__ = [
    "DEFAULT_RUNTIME",
    "DEFAULT_RUNTIME_ROOT",
    "ID_PREFIX",
    "KILL_REQUEST",
    "LAUNCHER_ANNOTATION",
    "RUNTIMES",
    "RuntimeContainer",
    "default_runtime_root",
    "delete_container",
    "kill_container",
    "list_containers",
    "new_container_id",
    "remove_bundle",
    "remove_stopped",
    "resolve_runtime",
    "run_container",
    "run_payload",
    "running_containers",
    "write_bundle",
]

RUNTIMES = ("runc", "crun")
DEFAULT_RUNTIME = "runc"
DEFAULT_RUNTIME_ROOT = "/run/isolator/oci"
"""Where each runtime keeps its state by default: ``/run/isolator/oci/<runtime name>``."""


@dataclass(frozen=True)
class RuntimeContainer:
    """One container in the runtime's state, as ``runtime list`` reports it."""

    id: str
    status: str
    pid: int
    bundle: str
    annotations: Mapping[str, str]


def resolve_runtime(runtime: str | None) -> str:
    """The runtime's binary: ``None`` is ``runc``; ``runc``, ``crun`` or an absolute path."""
    name = DEFAULT_RUNTIME if runtime is None else runtime
    if name in RUNTIMES:
        found = shutil.which(name)
        if found is None:
            raise LaunchError(
                f"The OCI runtime '{name}' is not installed (apt-get install -y {name})"
            )
        return found
    if not name.startswith("/") or "\0" in name:
        raise LaunchError(
            f"Unknown OCI runtime '{printable(name)}': expected 'runc', 'crun' or an "
            "absolute path to a runtime binary"
        )
    if not (os.path.isfile(name) and os.access(name, os.X_OK)):
        raise LaunchError(f"The OCI runtime '{printable(name)}' is not an executable file")
    return name


def default_runtime_root(runtime: str) -> str:
    """The project's state directory for ``runtime`` (a name or a path)."""
    return f"{DEFAULT_RUNTIME_ROOT}/{os.path.basename(runtime)}"


def new_container_id() -> str:
    return f"{ID_PREFIX}{os.urandom(8).hex()}"


def list_containers(
    runtime: str | None = None, runtime_root: str | os.PathLike[str] | None = None
) -> list[RuntimeContainer]:
    """Every container in the runtime's state (``runtime list``); none if it has no state."""
    binary = resolve_runtime(runtime)
    root = os.fspath(runtime_root or default_runtime_root(binary))
    try:
        entries = list_state(binary, root)
    except (RuntimeCommandError, ValueError) as error:
        raise LaunchError(str(error)) from None
    return [
        RuntimeContainer(
            id=str(entry.get("id", "")),
            status=str(entry.get("status", "")),
            pid=int(entry.get("pid") or 0),
            bundle=str(entry.get("bundle", "")),
            annotations={str(k): str(v) for k, v in (entry.get("annotations") or {}).items()},
        )
        for entry in entries
    ]


def running_containers(
    runtime: str | None = None, runtime_root: str | os.PathLike[str] | None = None
) -> list[RuntimeContainer]:
    """The launcher's containers that still run: what an agent restart recovers as known."""
    return [
        container
        for container in list_containers(runtime, runtime_root)
        if container.id.startswith(ID_PREFIX) and container.status in ("running", "paused")
    ]
