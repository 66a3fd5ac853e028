"""Container IDs as Mesos treats them: validated before any value becomes a path component,
printed with their ancestors, joined into paths like Mesos's ``path::join``.

Both isolators key their state by container ID, so these rules live here once.
"""

from __future__ import annotations

from isolator.common.errors import IsolatorError
from isolator.common.names import component_problem, printable
from isolator.protos import ContainerID

__all__ = ["format_container_id", "join", "lineage", "validate_container_id"]


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
