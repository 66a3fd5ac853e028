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

from isolator.errors import IsolatorError
from isolator.names import component_problem, printable
from isolator.protos import ContainerID

__all__ = [
    "VOLUMES_FILE",
    "checkpointed_containers",
    "container_dir",
    "format_container_id",
    "join",
    "lineage",
    "validate_container_id",
    "volumes_path",
]

VOLUMES_FILE = "volumes"
"""The checkpoint file's name inside a container's directory."""

NOT_CONTAINERS = frozenset({"lost+found"})
"""Names a filesystem puts in a directory by itself: never a container's checkpoint."""

logger = logging.getLogger("isolator")


def join(path: str, *paths: str) -> str:
    """Join paths like Mesos's ``path::join``.

    Between two parts, one trailing ``/`` of the left and one leading ``/`` of the right are
    dropped and a single ``/`` is put in: ``join("/a/", "/b")`` is ``/a/b`` and, unlike
    ``os.path.join``, an absolute right part does not discard the left one.
    """
    if not paths:
        return path
    right = paths[0] if len(paths) == 1 else join(*paths)
    return path.removesuffix("/") + "/" + right.removeprefix("/")


def lineage(container_id: ContainerID) -> list[ContainerID]:
    """The ID's ancestors and the ID itself, outermost first (Mesos compares parents too)."""
    chain = [container_id]
    while chain[-1].HasField("parent"):
        chain.append(chain[-1].parent)
    chain.reverse()
    return chain


def format_container_id(container_id: ContainerID) -> str:
    """Print an ID as Mesos does: ancestors first, joined by dots (``parent.child``).

    Control characters are escaped (``names.printable``): an ID is the agent's to choose but
    it goes into messages and log lines, which a raw NUL or newline would cut or forge.
    """
    return printable(".".join(current.value for current in lineage(container_id)))


def _problem(container_id: ContainerID) -> str | None:
    problem = component_problem(container_id.value)
    if problem is not None:
        return f"a container ID value {problem}"
    if container_id.HasField("parent"):
        parent_problem = _problem(container_id.parent)
        if parent_problem is not None:
            return (
                f"parent container ID '{format_container_id(container_id.parent)}' is invalid: "
                f"{parent_problem}"
            )
    return None


def validate_container_id(container_id: ContainerID) -> None:
    """Raise ``IsolatorError`` unless the ID and all its ancestors have safe values.

    A value is unsafe when it is empty, ``.`` or ``..``, or contains ``/`` or NUL: any of
    these would make ``<root>/<value>`` name the root itself, its parent, a path in another
    directory, or no valid path at all.
    """
    problem = _problem(container_id)
    if problem is not None:
        shown = format_container_id(container_id)
        raise IsolatorError(f"Invalid container ID '{shown}': {problem}")


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
