"""pykka's ``ActorRegistry``, made O(1) per actor started or stopped.

pykka keeps every running actor's ref in one list: ``unregister`` scans it twice (``in``,
then ``remove``), so stopping an actor costs O(actors alive). With a sequence actor per
volume and 10,000 volumes in use, stopping them all is quadratic: seconds of pure scanning.
``install()`` swaps that list for ``_Refs``, an insertion-ordered set with the list
operations pykka's registry uses; ``get_all`` and ``stop_all`` keep their start order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, overload

import pykka

__all__ = ["install"]


class _Refs:
    """The actor refs, in start order; ``in``, ``append`` and ``remove`` are O(1).

    Only ever used under ``ActorRegistry._actor_refs_lock``, as pykka's list was.
    """

    __slots__ = ("_refs",)

    def __init__(self, refs: Iterable[pykka.ActorRef[Any]] = ()) -> None:
        self._refs: dict[pykka.ActorRef[Any], None] = dict.fromkeys(refs)

    def append(self, ref: pykka.ActorRef[Any]) -> None:
        self._refs[ref] = None

    def remove(self, ref: pykka.ActorRef[Any]) -> None:
        try:
            del self._refs[ref]
        except KeyError:
            raise ValueError(f"{ref!r} is not registered") from None

    def __contains__(self, ref: object) -> bool:
        return ref in self._refs

    def __iter__(self) -> Iterator[pykka.ActorRef[Any]]:
        return iter(list(self._refs))

    def __len__(self) -> int:
        return len(self._refs)

    @overload
    def __getitem__(self, index: int) -> pykka.ActorRef[Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[pykka.ActorRef[Any]]: ...

    def __getitem__(
        self, index: int | slice
    ) -> pykka.ActorRef[Any] | list[pykka.ActorRef[Any]]:
        return list(self._refs)[index]


def install() -> None:
    """Swap pykka's registry list for ``_Refs`` (once; the refs already there are kept)."""
    registry = pykka.ActorRegistry
    with registry._actor_refs_lock:
        if not isinstance(registry._actor_refs, _Refs):
            # The same operations pykka's registry uses on its list, each O(1).
            registry._actor_refs = _Refs(registry._actor_refs)  # type: ignore[assignment]
