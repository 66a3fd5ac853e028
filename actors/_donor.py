"""A thread outside the runtime lending itself to it while it waits on a future.

libprocess's ``process::wait`` runs the awaited process on the waiting thread. Here a
thread outside the runtime that waits (``Future.get``) runs the run queue's turns until its
future is complete (``WorkerPool.wait_helping``); this module holds what such a donor needs.

Python runs signal handlers on the main thread. A ``KeyboardInterrupt`` (or an embedder's
``SIGTERM`` handler raising) inside an actor's turn would count as that actor's
``BaseException`` (pykka's rule: stop every actor) instead of interrupting the wait, as it
did before the main thread ran turns. So while the main thread donates, those handlers are
deferred: a signal that arrives during a turn is handled once the turn is over, one that
arrives while the donor sleeps at once, and both interrupt the wait as they always did.
"""

from __future__ import annotations

import importlib
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

__all__ = ["Donor", "SignalGuard"]


class Donor:
    """A thread outside the pool waiting on a future, running the pool's tasks meanwhile."""

    __slots__ = ("condition", "done", "notified")

    def __init__(self) -> None:
        self.condition: threading.Condition | None = None  # made only to sleep on
        self.done = False  # the awaited future is complete
        self.notified = False  # woken for a task, not yet running


_GUARDED = (int(signal.SIGINT), int(signal.SIGTERM))
# The C module under ``signal``: its wrappers convert to and from enums, which made a guard
# (two handlers swapped and restored, on every wait of the main thread) cost 12 us, not 2.
_signal: Any = importlib.import_module("_signal")


class SignalGuard:
    """Defers the main thread's Python signal handlers while it runs turns (no-op elsewhere)."""

    __slots__ = ("_pending", "_saved", "sleeping")

    def __init__(self) -> None:
        self._saved: dict[int, Any] = {}
        self._pending: list[tuple[int, FrameType | None]] = []
        self.sleeping = False  # a signal then interrupts the sleep at once

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in _GUARDED:
                handler = _signal.getsignal(signum)
                if callable(handler):
                    self._saved[signum] = handler
                    _signal.signal(signum, self._defer)
        return self

    def _defer(self, signum: int, frame: FrameType | None) -> None:
        if self.sleeping:
            self._saved[signum](signum, frame)
        else:
            self._pending.append((signum, frame))

    def deliver(self) -> None:
        """Run the handlers of the signals deferred so far (between turns)."""
        while self._pending:
            signum, frame = self._pending.pop(0)
            self._saved[signum](signum, frame)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self._saved.items():
            _signal.signal(signum, handler)
        if kind is None:
            self.deliver()
