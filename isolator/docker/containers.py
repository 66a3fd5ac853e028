"""The containers an isolator knows: their volumes, their nesting, and where each one is in
its life. Every update is O(1) in the number of containers (a parent's children are indexed),
so no step of ``prepare`` or ``cleanup`` walks the whole table.

A container ID has one life at a time:

- ``PREPARED``: prepared (or recovered) and not cleaned up: it holds its volumes;
- ``CLEANING``: its cleanup is running: it no longer holds its volumes (Mesos forgets the
  container before the unmounts finish, MESOS-10126) but its ID is not free yet;
- ``STRANDED``: its cleanup failed: the checkpoint stays so a restart retries the unmounts;
  the ID may be prepared again, and the new life inherits the duty to unmount.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from actors import Future
from isolator.common.container_ids import format_container_id, lineage
from isolator.common.errors import IsolatorError
from isolator.docker.state import VolumeKey
from isolator.messages import copy
from isolator.protos import ContainerID

__all__ = [
    "Container",
    "ContainerKey",
    "ContainerTable",
    "Holds",
    "Phase",
    "Usage",
    "busy_error",
    "container_key",
    "same_value_error",
]

ContainerKey = tuple[str, ...]
"""A container's identity: its value and its ancestors' (Mesos compares parents too)."""


def container_key(container_id: ContainerID) -> ContainerKey:
    if not container_id.HasField("parent"):  # most IDs: no lineage to walk
        return (container_id.value,)
    return tuple(current.value for current in lineage(container_id))


class Phase(enum.Enum):
    PREPARED = "prepared"
    CLEANING = "cleaning"
    STRANDED = "stranded"


@dataclass(eq=False)
class Container:
    """What the isolator remembers of a container."""

    container_id: ContainerID
    volumes: tuple[VolumeKey, ...]
    """Every volume in its checkpoint: the ones it mounts and any it inherited."""
    phase: Phase = Phase.PREPARED
    cleanup: Future[None] | None = field(default=None, repr=False)
    """While ``CLEANING``: the cleanup under way, so a second ``cleanup`` joins it."""


@dataclass(frozen=True)
class Usage:
    """A snapshot of who holds what: ``DockerVolumeIsolator.usage()``."""

    containers: Mapping[str, tuple[VolumeKey, ...]]
    """Each container the isolator knows (printed ``parent.child``) -> its volumes."""
    phases: Mapping[str, str]
    """Each container -> ``prepared``, ``cleaning`` or ``stranded`` (cleanup failed)."""
    holders: Mapping[VolumeKey, tuple[str, ...]]
    """Each volume a prepared container holds -> those containers."""
    mount_points: Mapping[VolumeKey, str | None] = field(default_factory=dict)
    """Each held volume -> the mount point its containers reuse; None where a Mount's
    outcome is unknown or it was read from a checkpoint (the driver's Path is asked)."""


def same_value_error(container_id: ContainerID, other: Container) -> IsolatorError:
    """Why a container cannot be prepared while another one has the same value."""
    return IsolatorError(
        f"Container {format_container_id(container_id)} cannot be prepared while container "
        f"{format_container_id(other.container_id)} is known: both would keep their "
        "checkpoint in the same directory (checkpoints are kept by container ID value)"
    )


def busy_error(container_id: ContainerID, phase: Phase) -> IsolatorError:
    """Why ``container_id`` cannot be prepared (or forgotten) now."""
    what = (
        "is already prepared and not cleaned up"
        if phase is Phase.PREPARED
        else "is still being cleaned up"
    )
    return IsolatorError(
        f"Container {format_container_id(container_id)} {what}: a container ID is prepared "
        "again only once its cleanup has finished"
    )


class Holds(Protocol):
    """The holder counts a table keeps up to date: ``VolumeSequences`` for Docker volumes,
    ``csi.volumes.CsiVolumes`` for CSI volumes."""

    def hold(self, volume: VolumeKey, *, maybe_mounted: bool = False) -> None: ...

    def release(self, volume: VolumeKey) -> int: ...

    def holders(self, volume: VolumeKey) -> int: ...

    def forget_mount(self, volume: VolumeKey) -> None: ...

    def mount_point(self, volume: VolumeKey) -> str | None: ...


class ContainerTable:
    """Containers by key, with the ``PREPARED`` children of each parent indexed.

    A ``PREPARED`` container holds its volumes in ``volumes``, so the holder counts there
    always match this table.
    """

    def __init__(self, volumes: Holds) -> None:
        self._volumes = volumes
        self._containers: dict[ContainerKey, Container] = {}
        self._children: dict[ContainerKey, dict[ContainerKey, None]] = {}
        # Checkpoints live at <root>/<value>: one container per value, whatever its parent.
        self._by_value: dict[str, ContainerKey] = {}

    def get(self, key: ContainerKey) -> Container | None:
        return self._containers.get(key)

    def with_value(self, value: str) -> Container | None:
        """The container whose own value is ``value`` (its checkpoint's directory name)."""
        key = self._by_value.get(value)
        return None if key is None else self._containers[key]

    def __iter__(self) -> Iterator[Container]:
        return iter(self._containers.values())

    def __len__(self) -> int:
        return len(self._containers)

    def add(
        self, container_id: ContainerID, volumes: Iterable[VolumeKey], *, maybe_mounted: bool
    ) -> None:
        """A ``PREPARED`` container holding ``volumes`` (replacing a ``STRANDED`` record).

        ``maybe_mounted``: the volumes come from a checkpoint read at recovery.
        """
        held = tuple(volumes)
        if len(held) > 1:
            held = tuple(dict.fromkeys(held))
        for volume in held:
            self._volumes.hold(volume, maybe_mounted=maybe_mounted)
        key = container_key(container_id)
        self._containers[key] = Container(copy(container_id), held)
        self._by_value[key[-1]] = key
        if len(key) > 1:
            self._link(key)

    def start_cleanup(self, key: ContainerKey) -> list[tuple[VolumeKey, int]]:
        """Mark the container ``CLEANING``; each of its volumes with its holders left.

        A ``PREPARED`` container gives up its holds now (MESOS-10126); a ``STRANDED`` one
        holds nothing (its cleanup is a retry).
        """
        container = self._containers[key]
        holds = container.phase is Phase.PREPARED
        self._set_phase(key, container, Phase.CLEANING)
        if holds:
            return [(v, self._volumes.release(v)) for v in container.volumes]
        return [(v, self._volumes.holders(v)) for v in container.volumes]

    def strand(self, key: ContainerKey) -> None:
        """Its cleanup failed: the checkpoint stays for a later retry."""
        self._set_phase(key, self._containers[key], Phase.STRANDED)

    def remove(self, key: ContainerKey) -> None:
        """Its cleanup has finished: the ID is free again."""
        container = self._containers.pop(key)
        assert container.phase is Phase.CLEANING
        del self._by_value[key[-1]]

    def forget(self, key: ContainerKey) -> Container:
        """Drop a ``PREPARED`` or ``STRANDED`` container; its volumes count as unmounted
        unless another container still holds them."""
        container = self._containers.pop(key)
        del self._by_value[key[-1]]
        if container.phase is Phase.PREPARED:
            self._unlink(key)
            for volume in container.volumes:
                self._volumes.release(volume)
        for volume in container.volumes:
            self._volumes.forget_mount(volume)
        return container

    def usage(self) -> Usage:
        """Who holds what, now (a walk of the table: for operators, not for each step)."""
        containers: dict[str, tuple[VolumeKey, ...]] = {}
        phases: dict[str, str] = {}
        holders: dict[VolumeKey, list[str]] = {}
        for container in self._containers.values():
            name = format_container_id(container.container_id)
            containers[name] = container.volumes
            phases[name] = container.phase.value
            if container.phase is Phase.PREPARED:
                for volume in container.volumes:
                    holders.setdefault(volume, []).append(name)
        return Usage(
            containers,
            phases,
            {v: tuple(names) for v, names in holders.items()},
            {v: self._volumes.mount_point(v) for v in holders},
        )

    def forget_all(self) -> None:
        """Forget every container (a recovery that failed half-way)."""
        for key in list(self._containers):
            self.forget(key)

    def _set_phase(self, key: ContainerKey, container: Container, phase: Phase) -> None:
        if container.phase is Phase.PREPARED:
            self._unlink(key)
        container.phase = phase
        if phase is not Phase.CLEANING:
            container.cleanup = None

    def a_prepared_child(self, key: ContainerKey) -> Container | None:
        """One ``PREPARED`` child of ``key``, if it has any (Mesos checks children first)."""
        children = self._children.get(key)
        if not children:
            return None
        return self._containers[next(iter(children))]

    def _link(self, key: ContainerKey) -> None:
        """Index a nested container under its parent (the caller checks it is nested)."""
        self._children.setdefault(key[:-1], {})[key] = None

    def _unlink(self, key: ContainerKey) -> None:
        if len(key) > 1:
            siblings = self._children.get(key[:-1])
            if siblings is not None:
                siblings.pop(key, None)
                if not siblings:
                    del self._children[key[:-1]]
