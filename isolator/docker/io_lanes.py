"""The isolator's checkpoint I/O, off the actor's turn: between turns when it is brief, on
a few threads of the blocking executor when it is not.

Each container's checkpoint write or removal is independent of the others', so on a disk
they should overlap (fsyncs in flight together share journal commits). But 10,000
containers prepared at once must not mean 32 threads (the executor's limit) for the
isolator: ``LANES`` calls run at once, the rest wait in arrival order, and a lane that
finishes a call takes the next one on the same thread. A lane starts with
``actors.run_brief``: a caller waiting for its answer, idle otherwise, runs the lane's
first call itself instead of sleeping until the outcome comes back.

On a tmpfs or ramfs (where Mesos's default checkpoint directory, under ``/var/run``,
usually is) the same write takes about 70 us and never waits for a device: less than
handing it to a thread and its outcome back, and an I/O thread must then win the GIL back
after each of its system calls from the thread running the actors (a convoy: P2 on tmpfs
went from 0.21x to 0.13x with lanes). There (``brief``) each call runs on the thread that
ran the turn starting it, once that turn is over (``actors.run_after_turn``): outside the
actor's turn, so the actor stays free for other threads, with no hand-off at all.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Final, TypeVar

from actors import Future, Promise, run_after_turn, run_blocking, run_brief

__all__ = ["LANES", "IOLanes"]

T = TypeVar("T")

LANES: Final = 4
"""Checkpoint I/O calls in flight at once on the blocking executor."""


class IOLanes:
    """``submit(fn, *args)`` runs ``fn`` after the turn (``brief``) or on a lane."""

    def __init__(self, *, brief: bool, lanes: int = LANES) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, not {lanes}")
        self.brief = brief
        self._lanes = lanes
        self._lock = threading.Lock()
        self._queue: deque[tuple[Callable[[], Any], Promise[Any]]] = deque()
        self._running = 0

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """A future of ``fn(*args, **kwargs)``; never blocks the caller."""
        if self.brief:
            return run_after_turn(fn, *args, **kwargs)
        promise: Promise[T] = Promise()
        with self._lock:
            self._queue.append((lambda: fn(*args, **kwargs), promise))
            if self._running >= self._lanes:
                return promise.future  # a running lane takes it next
            self._running += 1
        run_brief(self._first)
        return promise.future

    def _first(self) -> None:
        """A lane's first call, maybe on a waiting caller's thread: it takes no more."""
        if self._next_call():
            run_blocking(self._drain)  # the lane goes on, on the executor

    def _drain(self) -> None:
        while self._next_call():
            pass

    def _next_call(self) -> bool:
        """Run the next queued call; whether another is queued (the lane stays taken)."""
        with self._lock:
            if not self._queue:
                self._running -= 1
                return False
            call, promise = self._queue.popleft()
        try:
            promise.set(call())
        except Exception as error:  # the call's future reports it; the lane goes on
            promise.fail(error)
        with self._lock:
            if self._queue:
                return True
            self._running -= 1
            return False
