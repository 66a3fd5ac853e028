"""Per CSI volume: its state machine, one ``Sequence`` for its steps, and its holders.

The holders (containers using the volume) are counted on the isolator's thread; the state
machine runs on the volume's sequence, each step through ``actors.run_blocking``, so one
volume's calls are strictly ordered while different volumes never wait for each other
(up to the blocking executor's threads). The last holder's release is followed by an
unpublish; a sequence is stopped once its volume is idle, as ``docker.volume_sequences``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from actors import Future, Sequence, run_blocking
from isolator.csi.machine import Machine, PublishRequest
from isolator.docker.state import VolumeKey
from isolator.protos import VolumeState

__all__ = ["CsiVolumes", "VolumeKey"]

_log = logging.getLogger("isolator")


@dataclass(eq=False)
class _Entry:
    machine: Machine
    holders: int = 0
    sequence: Sequence | None = None
    outstanding: int = 0


class CsiVolumes:
    """The volumes of one isolator, keyed ``VolumeKey(plugin type, volume ID)``; touched
    only on the owner's thread (``serialize`` brings completions back to it)."""

    def __init__(
        self,
        *,
        machine: Callable[[VolumeKey], Machine],
        serialize: Callable[[Callable[[], None]], object],
    ) -> None:
        self._machine = machine  # builds a volume's machine: raises for a bad key
        self._serialize = serialize
        self._entries: dict[VolumeKey, _Entry] = {}
        self._sequences = 0

    # -- what ContainerTable needs -----------------------------------------------------------

    def hold(self, volume: VolumeKey, *, maybe_mounted: bool = False) -> None:
        self._entry(volume).holders += 1

    def release(self, volume: VolumeKey) -> int:
        entry = self._entries[volume]
        entry.holders -= 1
        return entry.holders

    def holders(self, volume: VolumeKey) -> int:
        entry = self._entries.get(volume)
        return 0 if entry is None else entry.holders

    def forget_mount(self, volume: VolumeKey) -> None:
        entry = self._entries.get(volume)
        if entry is not None and not entry.holders and not entry.outstanding:
            self._drop_if_idle(volume, entry)

    def mount_point(self, volume: VolumeKey) -> str | None:
        """The target path a published volume's containers are bound to; None otherwise."""
        entry = self._entries.get(volume)
        if entry is None or entry.machine.state is None:
            return None
        published = entry.machine.state.state == VolumeState.PUBLISHED
        return entry.machine.target if published else None

    # -- records -----------------------------------------------------------------------------

    def adopt(self, volume: VolumeKey, state: VolumeState) -> None:
        """A state read from disk at recovery."""
        self._entry(volume).machine.state = state

    def known(self) -> Iterator[tuple[VolumeKey, VolumeState | None, int]]:
        """Each volume with its state (as last seen on this thread) and holders."""
        for key, entry in list(self._entries.items()):
            yield key, entry.machine.state, entry.holders

    def check(self, volume: VolumeKey) -> None:
        """Build the volume's machine now, so a bad plugin or ID fails before any call."""
        self._entry(volume)
        self._drop_if_idle(volume, self._entries[volume])

    # -- steps -------------------------------------------------------------------------------

    def publish(self, volume: VolumeKey, request: PublishRequest | None) -> Future[str]:
        """Bring ``volume`` to PUBLISHED (``request`` None: as its state records)."""
        entry = self._entry(volume)

        def step() -> str:
            machine = entry.machine
            wanted = request
            if wanted is None:
                assert machine.state is not None
                wanted = PublishRequest.from_state(machine.state)
            return machine.publish(wanted)

        return self._enqueue(volume, entry, step)

    def unpublish(self, volume: VolumeKey) -> Future[None]:
        """Unpublish and unstage ``volume`` if nobody holds it by the time its turn comes."""
        entry = self._entries.get(volume)
        if entry is None:
            return Future.ready(None)

        def step() -> None:
            # A holder that came meanwhile (a prepare queued after this) keeps it.
            if entry.holders == 0:
                entry.machine.unpublish()

        return self._enqueue(volume, entry, step)

    def _enqueue(self, volume: VolumeKey, entry: _Entry, step: Callable[[], Any]) -> Future[Any]:
        if entry.sequence is None:
            entry.sequence = Sequence()
            self._sequences += 1
        entry.outstanding += 1
        future = entry.sequence.add(lambda: run_blocking(step))
        future.on_any(lambda _: self._serialize(lambda: self._finished(volume, entry)))
        return future

    def _entry(self, volume: VolumeKey) -> _Entry:
        entry = self._entries.get(volume)
        if entry is None:
            entry = self._entries[volume] = _Entry(self._machine(volume))
        return entry

    def _finished(self, volume: VolumeKey, entry: _Entry) -> None:
        entry.outstanding -= 1
        self._drop_if_idle(volume, entry)

    def _drop_if_idle(self, volume: VolumeKey, entry: _Entry) -> None:
        if entry.outstanding or entry.holders:
            return
        if entry.sequence is not None:
            entry.sequence.stop()
            entry.sequence = None
            self._sequences -= 1
        # A volume with a state on disk stays known, so its next last holder unpublishes it.
        if entry.machine.state is None and self._entries.get(volume) is entry:
            del self._entries[volume]

    def sequence_count(self) -> int:
        return self._sequences

    def stop(self) -> None:
        entries, self._entries = self._entries, {}
        self._sequences = 0
        for entry in entries.values():
            if entry.sequence is not None:
                entry.sequence.stop()
