"""One shared timer thread for ``Future.after``, so timeouts cost no thread each."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["TimerHandle", "call_later"]

logger = logging.getLogger("actors")


class TimerHandle:
    """A scheduled call; ``cancel()`` keeps it from running if it has not started."""

    __slots__ = ("_callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], object]) -> None:
        self.deadline = deadline
        self._callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def _run(self) -> None:
        if self.cancelled:
            return
        try:
            self._callback()
        except Exception:
            logger.exception("Timer callback %r raised", self._callback)


class _TimerThread:
    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, seconds: float, callback: Callable[[], object]) -> TimerHandle:
        handle = TimerHandle(time.monotonic() + max(0.0, seconds), callback)
        with self._condition:
            earliest = not self._heap or handle.deadline < self._heap[0][0]
            heapq.heappush(self._heap, (handle.deadline, next(self._counter), handle))
            if self._thread is None:
                # A daemon: a pending timeout must not keep the process alive.
                self._thread = threading.Thread(target=self._loop, name="actors-timer", daemon=True)
                self._thread.start()
            elif earliest:
                # The thread sleeps until the earliest deadline: wake it only to move it up.
                self._condition.notify()
        return handle

    def _loop(self) -> None:
        while True:
            with self._condition:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._condition.wait(wait)
                _, _, handle = heapq.heappop(self._heap)
            handle._run()


_timers = _TimerThread()


def call_later(seconds: float, callback: Callable[[], object]) -> TimerHandle:
    """Run ``callback()`` on the timer thread after ``seconds``."""
    return _timers.schedule(seconds, callback)
