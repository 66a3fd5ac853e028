"""The isolator's checkpoint I/O as whole steps for the blocking executor: each one a plain
function of the checkpoint root, so it runs on any thread and touches no actor state.

The actor sends these to ``actors.run_blocking`` and records their outcome in a
continuation back on its own thread; the texts of their errors are Mesos's.
"""

from __future__ import annotations

import os
from collections.abc import Collection

from isolator.common.container_ids import format_container_id
from isolator.common.errors import IsolatorError, strerror
from isolator.docker.paths import checkpointed_containers, container_dir
from isolator.docker.state import VolumeKey, read_checkpoint, remove_checkpoint
from isolator.protos import ContainerID

__all__ = ["Recovered", "forget_checkpoint", "read_all_checkpoints"]

Recovered = tuple[list[tuple[ContainerID, list[VolumeKey]]], list[ContainerID]]
"""Every checkpointed container with its volumes; and those of them that are unknown."""


def read_all_checkpoints(
    root: str, given: list[tuple[ContainerID, str]], known: Collection[str]
) -> Recovered | None:
    """Read the ``given`` containers' checkpoints, then every other one under ``root``.

    ``given`` pairs each container the agent knows with how errors name it ("container",
    "orphan container"); ``known`` holds values the isolator already has a record of.
    Returns None when ``root`` does not exist (nothing was ever checkpointed). Raises
    ``IsolatorError`` for a checkpoint that cannot be read: recovery then records nothing.
    """
    if not os.path.exists(root):
        return None
    found: list[tuple[ContainerID, list[VolumeKey]]] = []
    seen = set(known)
    for container_id, kind in given:
        volumes = _read_or_raise(root, container_id, kind)
        if volumes is not None:
            found.append((container_id, volumes))
            seen.add(container_id.value)
    try:
        entries = checkpointed_containers(root)
    except OSError as error:
        raise IsolatorError(
            f"Unable to list docker volume checkpoint directory '{root}': {strerror(error)}"
        ) from error
    unknown = [ContainerID(value=entry) for entry in entries if entry not in seen]
    for orphan in unknown:
        volumes = _read_or_raise(root, orphan, "orphan container")
        if volumes is not None:
            found.append((orphan, volumes))
    return found, unknown


def _read_or_raise(root: str, container_id: ContainerID, kind: str) -> list[VolumeKey] | None:
    try:
        return read_checkpoint(root, container_id)  # validates the ID first
    except IsolatorError as error:
        raise IsolatorError(
            f"Failed to recover docker volumes for {kind} "
            f"{format_container_id(container_id)}: {error}"
        ) from error


def forget_checkpoint(root: str, container_id: ContainerID, *, known: bool) -> str:
    """Remove a container's checkpoint for ``forget``; the directory it was in.

    Raises ``IsolatorError`` when the isolator knows no such container (``known`` False)
    and there is no checkpoint either: there is nothing to forget.
    """
    if not known and not os.path.lexists(container_dir(root, container_id)):
        raise IsolatorError(
            f"Cannot forget container {format_container_id(container_id)}: "
            "the isolator knows no such container and it has no checkpoint"
        )
    return remove_checkpoint(root, container_id, missing_ok=True)
