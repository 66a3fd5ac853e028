"""Where the isolator keeps its checkpoints (Mesos's ``docker/volume/paths.cpp``).

The layout is Mesos's, flat and keyed by the container ID's own value only (a nested
container's parent is not part of the path)::

    <root>/<ContainerID.value>/volumes

Because a value becomes a path component, every value in an ID (its own and each ancestor's)
is validated first, so that no ID can name a path outside ``<root>``.
"""

from __future__ import annotations

import logging
import os

from isolator.common.container_ids import join, validate_container_id
from isolator.protos import ContainerID

__all__ = [
    "VOLUMES_FILE",
    "checkpointed_containers",
    "container_dir",
    "volumes_path",
]

VOLUMES_FILE = "volumes"
"""The checkpoint file's name inside a container's directory."""

NOT_CONTAINERS = frozenset({"lost+found"})
"""Names a filesystem puts in a directory by itself: never a container's checkpoint."""

logger = logging.getLogger("isolator")


def container_dir(root: str, container_id: ContainerID) -> str:
    """``<root>/<value>``: the directory holding a container's checkpoint."""
    validate_container_id(container_id)
    return join(root, container_id.value)


def volumes_path(root: str, container_id: ContainerID) -> str:
    """``<root>/<value>/volumes``: the checkpoint file of a container's Docker volumes."""
    return join(container_dir(root, container_id), VOLUMES_FILE)


def checkpointed_containers(root: str) -> list[str]:
    """The container ID values that have a checkpoint directory under ``root``, sorted.

    Anything else there (a stray file, a symlink, ``lost+found``) is skipped with a
    warning and left untouched: recovery deletes only what the isolator wrote. Raises
    ``OSError`` when ``root`` cannot be listed.
    """
    found = []
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name in NOT_CONTAINERS:
                logger.warning("Skipping '%s' in the checkpoint directory", entry.path)
            elif not entry.is_dir(follow_symlinks=False):
                kind = "a symlink" if entry.is_symlink() else "not a directory"
                logger.warning(
                    "Skipping '%s' in the checkpoint directory: it is %s", entry.path, kind
                )
            else:
                found.append(entry.name)
    return sorted(found)
