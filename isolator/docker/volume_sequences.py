"""Per Docker volume: one ``Sequence`` for its driver calls, its holders, and what this
agent knows of its mount (Mesos's ``hashmap<string, Sequence>`` plus the reference count it
recomputes).

A volume's mounts and unmounts run in order on its sequence while different volumes
proceed side by side. The holder count is kept as containers come and go, so no step
walks every container.

**Balanced calls** (``reference/plugin-call-balance.md``): a plugin sees only Mount and
Unmount requests, and many count them (Docker's own ``local`` driver releases a volume
after as many Unmounts as Mounts). So a volume is mounted once per mounted period: the
first container's Mount is sent, every further container while it stays mounted reuses the
mount point that Mount returned, and one Unmount follows the last holder. What the agent
knows is decided by the calls themselves, inside the sequence:

- a Mount that succeeded: mounted, at its mount point;
- a Mount the driver refused (``MountRefusedError``): not mounted, so the next container
  sends its own Mount;
- a Mount whose outcome is unknown (timed out, connection lost, discarded), and every
  volume read from a checkpoint at recovery: "maybe mounted", mount point unknown. The
  last holder's Unmount is sent; a new container first asks the driver where the volume
  is mounted (``VolumeDriver.Path``) and reuses that, or sends a Mount when it is not;
- an Unmount that succeeded: not mounted; one that failed: maybe mounted, point unknown.

The last holder's Unmount is sent only while the volume may be mounted, so a cleanup after
a refused mount never asks the driver to unmount what it never mounted.

Mesos keeps every sequence forever; here a volume's sequence lives only while a call on it
is queued or running, so an agent holds no actor for a volume that is only held (10,000
live containers would be 10,000 idle actors for the collector to walk), and none for the
volumes it saw once. The next call starts a new one, in the same order.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from actors import Future, Sequence, await_
from isolator.common import failpoints
from isolator.common.errors import MountRefusedError
from isolator.common.observe import (
    Observer,
    Operation,
    observes_operations,
    report_when_done,
)
from isolator.docker.state import VolumeKey

__all__ = ["VolumeSequences", "strip_mount_point"]

logger = logging.getLogger("isolator")

T = TypeVar("T")

MountRequest = tuple[VolumeKey, Callable[[], Future[str]], Callable[[], Future[str]] | None]
"""A volume, its driver's Mount, and its driver's Path (None: the client cannot say)."""
UnmountRequest = tuple[VolumeKey, Callable[[], Future[None]]]
_Call = tuple[Future[Any], "tuple[VolumeKey, _Volume] | None"]
"""A driver call's future, and the volume whose sequence it was queued on (if it was)."""


@dataclass(eq=False)
class _Volume:
    holders: int = 0
    # Read and written only by calls in the volume's sequence:
    maybe_mounted: bool = False
    mount_point: str | None = None  # set only while mounted by a Mount we saw succeed
    sequence: Sequence | None = None
    # Calls enqueued and not yet counted off by their trip back to the owner; a list only
    # while there are any (most volumes are only held: no list for the collector to track).
    calls: list[Future[Any]] | tuple[()] = ()


class VolumeSequences:
    """The volumes of one isolator; touched only by its owner's thread, except as noted.

    ``serialize(fn)`` runs ``fn`` later on the owner's thread and gives its outcome (the
    isolator passes ``defer`` to itself): a call finishes on whatever thread completes it,
    but the bookkeeping must not race with the owner's. One container's calls share one
    trip back: the bookkeeping and the caller's next step (``then``) run in the same one.
    """

    def __init__(
        self,
        *,
        serialize: Callable[[Callable[[], Any]], Any],
        observer: Observer | None = None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._serialize = serialize
        self._observer = observer or Observer()
        self._timed = observes_operations(self._observer)
        self._on_change = on_change  # a sequence started or stopped
        self._volumes: dict[VolumeKey, _Volume] = {}
        self._sequences = 0
        self._in_use: dict[str, int] = {}  # driver -> volumes with a holder

    # -- holders -----------------------------------------------------------------------

    def hold(self, volume: VolumeKey, *, maybe_mounted: bool = False) -> None:
        """One more container uses ``volume``; ``maybe_mounted`` for one read from a
        checkpoint at recovery (Mesos's rule: whatever was checkpointed may be mounted)."""
        entry = self._volumes.get(volume)
        if entry is None:
            entry = self._volumes[volume] = _Volume()
        entry.holders += 1
        if entry.holders == 1:
            self._in_use[volume.driver] = self._in_use.get(volume.driver, 0) + 1
        if maybe_mounted:
            entry.maybe_mounted = True

    def release(self, volume: VolumeKey) -> int:
        """One container fewer uses ``volume``; how many still do.

        At zero the caller either ``unmount``s the volume or ``forget_mount``s it; the
        volume's record goes once that is done.
        """
        entry = self._volumes[volume]
        entry.holders -= 1
        if entry.holders == 0:
            self._in_use[volume.driver] -= 1
        return entry.holders

    def holders(self, volume: VolumeKey) -> int:
        entry = self._volumes.get(volume)
        return 0 if entry is None else entry.holders

    def forget_mount(self, volume: VolumeKey) -> None:
        """Treat an unheld ``volume`` as not mounted (an operator gave it up: ``forget``)."""
        entry = self._volumes.get(volume)
        # Calls that are over but not yet counted off (their trip back is queued) have
        # recorded their outcome already: only one still running can change it.
        if entry is not None and not entry.holders and _over(entry.calls):
            entry.maybe_mounted = False
            entry.mount_point = None
            self._drop_if_idle(volume, entry)

    def mount_point(self, volume: VolumeKey) -> str | None:
        """Where ``volume`` is mounted, if a Mount this agent saw succeed said so."""
        entry = self._volumes.get(volume)
        return None if entry is None else entry.mount_point

    def in_use(self) -> Mapping[str, int]:
        """Driver -> how many of its volumes have a holder (kept as holders come and go)."""
        return dict(self._in_use)

    # -- driver calls ----------------------------------------------------------------------

    def mount_all(
        self, requests: list[MountRequest], then: Callable[[list[Future[str]]], T | Future[T]]
    ) -> Future[T]:
        """Each volume's mount point, once the calls before it on its sequence are done;
        ``then(futures)`` on the owner's thread once none is pending.

        A request's Mount is sent only when this agent has not mounted the volume; its
        Path is asked when a Mount's outcome is unknown.
        """
        return self._settle([self._mount(*request) for request in requests], then)

    def mount(
        self,
        volume: VolumeKey,
        call: Callable[[], Future[str]],
        find: Callable[[], Future[str]] | None = None,
    ) -> Future[str]:
        """``mount_all`` for one volume: its mount point."""
        return self.mount_all([(volume, call, find)], lambda futures: futures[0])

    def _mount(
        self,
        volume: VolumeKey,
        call: Callable[[], Future[str]],
        find: Callable[[], Future[str]] | None,
    ) -> _Call:
        entry = self._volumes[volume]

        def item() -> Future[str]:
            if entry.mount_point is not None:
                return Future.ready(entry.mount_point)  # mounted: reuse, no second Mount
            if entry.maybe_mounted and find is not None:
                return find().then(lambda where: reuse_or_mount(strip_mount_point(where)))
            return send_mount()

        def reuse_or_mount(where: str) -> Future[str]:
            if where:
                entry.mount_point = where
                return Future.ready(where)
            return send_mount()  # the driver says it is not mounted

        def send_mount() -> Future[str]:
            record = functools.partial(_record_mount, entry)
            return self._send("mount", "before-mount", volume, call, record)

        return self._enqueue(volume, entry, item)

    def unmount_all(
        self, requests: list[UnmountRequest], then: Callable[[list[Future[None]]], T | Future[T]]
    ) -> Future[T]:
        """Each request's Unmount on its volume's sequence, if the volume may still be
        mounted then; ``then(futures)`` on the owner's thread once none is pending."""
        return self._settle([self._unmount(*request) for request in requests], then)

    def unmount(self, volume: VolumeKey, call: Callable[[], Future[None]]) -> Future[None]:
        """``unmount_all`` for one volume."""
        return self.unmount_all([(volume, call)], lambda futures: futures[0])

    def _unmount(self, volume: VolumeKey, call: Callable[[], Future[None]]) -> _Call:
        entry = self._volumes.get(volume)
        if entry is None:  # no record: nobody holds it and it is not mounted
            return Future.ready(None), None

        def item() -> Future[None]:
            if not entry.maybe_mounted:
                logger.info(
                    "Not unmounting the volume with driver '%s' and name '%s': "
                    "its driver refused every mount of it",
                    volume.driver,
                    volume.name,
                )
                return Future.ready(None)
            record = functools.partial(_record_unmount, entry)
            return self._send("unmount", "before-unmount", volume, call, record)

        return self._enqueue(volume, entry, item)

    def _settle(self, calls: list[_Call], then: Callable[[list[Any]], T | Future[T]]) -> Future[T]:
        """One trip back to the owner once the calls are done: each counted off (an idle
        sequence stops), then ``then`` of their futures."""
        futures = [future for future, _ in calls]

        def back() -> T | Future[T]:
            for future, queued in calls:
                if queued is not None:
                    volume, entry = queued
                    _count_off(entry, future)
                    self._drop_if_idle(volume, entry)
            return then(futures)

        return await_(futures).then(lambda _: self._serialize(back))

    def _send(
        self,
        operation: Operation,
        failpoint: str,
        volume: VolumeKey,
        call: Callable[[], Future[T]],
        record: Callable[[Future[T]], None],
    ) -> Future[T]:
        """The driver call itself: ``record`` is registered before the sequence follows the
        future, so the outcome is recorded before the volume's next call starts."""
        failpoints.hit(failpoint)
        started = time.monotonic()
        future = call()
        future.on_any(record)
        if self._timed:  # else nobody looks at operations
            report_when_done(self._observer, future, operation, started, driver=volume.driver)
        return future

    def _enqueue(self, volume: VolumeKey, entry: _Volume, item: Callable[[], Future[Any]]) -> _Call:
        if entry.sequence is None:
            entry.sequence = Sequence()
            self._sequences += 1
            self._on_change()
        # The driver is called on the volume's own sequence: even a driver that blocks
        # holds up only that one volume.
        future = entry.sequence.add(item)
        if entry.calls:  # counted off in ``_settle``'s trip back
            entry.calls.append(future)
        else:
            entry.calls = [future]
        return future, (volume, entry)

    def _drop_if_idle(self, volume: VolumeKey, entry: _Volume) -> None:
        if entry.calls:
            return
        # No call queued or running: a new sequence for the next call keeps the same
        # order, so none is kept alive for a volume that is only held (with 10,000
        # containers, 10,000 idle actors for the collector to walk).
        if entry.sequence is not None:
            entry.sequence.stop()
            entry.sequence = None
            self._sequences -= 1
            self._on_change()
        # A volume that is held, or may still be mounted, stays known (without a
        # sequence), so the next last holder still unmounts it.
        if not entry.holders and not entry.maybe_mounted and self._volumes.get(volume) is entry:
            del self._volumes[volume]

    # -- introspection and lifecycle ---------------------------------------------------------

    def sequence_count(self) -> int:
        """How many volume sequences (actors) are alive."""
        return self._sequences

    def stop(self) -> None:
        """Stop every sequence: running calls are asked to discard, queued ones discarded."""
        entries, self._volumes = self._volumes, {}
        self._sequences = 0
        for entry in entries.values():
            if entry.sequence is not None:
                entry.sequence.stop()


def strip_mount_point(answer: str) -> str:
    """A driver's mount point without the blanks around it, as Mesos strips dvdcli's output."""
    return answer.strip(" \t\n\r")


def _count_off(entry: _Volume, future: Future[Any]) -> None:
    calls = entry.calls
    assert isinstance(calls, list)
    calls.remove(future)
    if not calls:
        entry.calls = ()


def _over(calls: list[Future[Any]] | tuple[()]) -> bool:
    return not any(call.is_pending() for call in calls)


def _record_mount(entry: _Volume, done: Future[str]) -> None:
    if done.is_ready():
        entry.maybe_mounted = True
        entry.mount_point = strip_mount_point(done.get(timeout=0)) or None
    elif not isinstance(done.failure(), MountRefusedError):
        entry.maybe_mounted = True  # outcome unknown: it may have mounted
    failpoints.hit("after-mount")


def _record_unmount(entry: _Volume, done: Future[None]) -> None:
    entry.mount_point = None  # whatever happened, the old mount point is not trusted
    if done.is_ready():
        entry.maybe_mounted = False
        failpoints.hit("after-unmount")
