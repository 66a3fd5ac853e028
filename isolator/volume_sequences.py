"""One ``Sequence`` per Docker volume: a volume's mounts and unmounts run in order, while
different volumes proceed side by side (Mesos's ``hashmap<string, Sequence>``).

Mesos keeps every sequence forever; here a sequence is stopped once no driver call of its
volume is outstanding and no container uses the volume, so a long-lived agent that has
seen many volumes holds only the sequences of the volumes in use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from actors import Future, Sequence
from isolator.state import VolumeKey

__all__ = ["VolumeSequences"]

T = TypeVar("T")


@dataclass
class _Entry:
    """A volume's sequence and how many of its driver calls are not finished yet."""

    sequence: Sequence
    outstanding: int = 0


class VolumeSequences:
    """The per-volume sequences of one isolator; touched only by its owner's thread.

    ``in_use(volume)`` says whether a container still uses the volume. ``serialize(fn)``
    runs ``fn`` later on the owner's thread (the isolator passes ``defer`` to itself): a
    call finishes on whatever thread completes it, but the bookkeeping must not race with
    the owner's.
    """

    def __init__(
        self,
        *,
        in_use: Callable[[VolumeKey], bool],
        serialize: Callable[[Callable[[], None]], object],
    ) -> None:
        self._in_use = in_use
        self._serialize = serialize
        self._entries: dict[VolumeKey, _Entry] = {}

    def enqueue(self, volume: VolumeKey, call: Callable[[], Future[T]]) -> Future[T]:
        """Run ``call`` on ``volume``'s sequence, after every call enqueued before it."""
        entry = self._entries.get(volume)
        if entry is None:
            entry = self._entries[volume] = _Entry(Sequence())
        entry.outstanding += 1
        # The driver is called on the volume's own sequence: even a driver that blocks
        # holds up only that one volume.
        future = entry.sequence.add(call)
        future.on_any(lambda _: self._serialize(lambda: self._finished(volume, entry)))
        return future

    def _finished(self, volume: VolumeKey, entry: _Entry) -> None:
        entry.outstanding -= 1
        if entry.outstanding or self._entries.get(volume) is not entry:
            return
        if self._in_use(volume):
            return
        del self._entries[volume]
        entry.sequence.stop()

    def __len__(self) -> int:
        return len(self._entries)

    def stop(self) -> None:
        """Stop every sequence: running calls are asked to discard, queued ones discarded."""
        entries, self._entries = self._entries, {}
        for entry in entries.values():
            entry.sequence.stop()


