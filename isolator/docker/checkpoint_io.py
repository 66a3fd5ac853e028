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
from isolator.config.flags import Flags
from isolator.docker.container_volumes import requested_mounts
from isolator.docker.paths import checkpointed_containers, container_dir
from isolator.docker.state import (
    VolumeKey,
    checkpoint_container,
    read_checkpoint,
    remove_checkpoint,
)
from isolator.launch.launch_info import VolumeMount
from isolator.protos import ContainerConfig, ContainerID

__all__ = [
    "Prepared",
    "Recovered",
    "forget_checkpoint",
    "prepare_checkpoint",
    "read_all_checkpoints",
]

Prepared = tuple[list[VolumeMount], list[VolumeKey]]
"""A prepare's mounts (with their targets) and the volumes its checkpoint records."""

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


def prepare_checkpoint(
    root: str,
    container_id: ContainerID,
    config: ContainerConfig,
    flags: Flags,
    inherited: tuple[VolumeKey, ...],
) -> Prepared | None:
    """A prepare's file-system work: the mounts' targets checked (``lstat``, ``realpath``),
    then, before any mount, the checkpoint of their volumes and the ``inherited`` ones
    (from a life whose cleanup failed), written durably. None: no Docker volume to mount.

    Raises ``IsolatorError`` with Mesos's texts.
    """
    mounts = requested_mounts(container_id, config, flags)
    if not mounts:
        return None
    volumes = list(dict.fromkeys([*(m.volume for m in mounts), *inherited]))
    # Before any mount: after a crash, whatever was mounted can still be unmounted.
    checkpoint_container(root, container_id, volumes)
    return mounts, volumes


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
