"""``threading.Event`` for flags that are read often and waited on rarely.

An Event is a Condition, its lock, its waiters' deque and bound methods: eight objects the
garbage collector walks for as long as the flag lives. An actor has two (pykka's
``actor_stopped``, a ``Sequence``'s "stopping"), so 10,000 idle sequences carried 160,000
of them. ``Flag`` is one object; the Event is made only when somebody waits.
"""

from __future__ import annotations

import threading

__all__ = ["Flag"]

_making = threading.Lock()  # only to make a flag's Event once


class Flag(threading.Event):
    """``is_set``/``set``/``clear``/``wait`` as ``threading.Event``'s."""

    def __init__(self) -> None:  # no Event.__init__: its Condition is what this saves
        self._set = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        return self._set

    isSet = is_set  # threading.Event's old name

    def set(self) -> None:
        self._set = True
        # A waiter makes its Event before it reads the flag: one of them sees the other.
        event = self._event
        if event is not None:
            event.set()

    def clear(self) -> None:
        self._set = False
        event = self._event
        if event is not None:
            event.clear()

    def wait(self, timeout: float | None = None) -> bool:
        if self._set:
            return True
        with _making:
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        if self._set:  # set before the Event existed
            return True
        return event.wait(timeout)

    def _at_fork_reinit(self) -> None:
        if self._event is not None:
            self._event._at_fork_reinit()  # type: ignore[attr-defined]
