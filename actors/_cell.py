"""The completion cell under every ``actors.Future``: four states, one completion,
callbacks and discard requests, and waiting.

Concurrency invariants, kept here and nowhere else:

- completion is atomic: of racing ``_settle`` calls exactly one wins, and a callback
  registered meanwhile runs exactly once, as do discard requests and ``on_discard``;
- callbacks run outside the lock, so they may call back into the same future, and one
  that raises is logged on the ``actors`` logger while the others still run;
- a cell owns no lock: it borrows one of ``_STRIPES`` shared locks (by its id), held only
  for a few assignments and never while another is taken, so sharing one cannot deadlock;
  a live future is then one object fewer for every garbage collection to walk. The
  ``threading.Event`` a waiter sleeps on is made only when somebody waits on a pending
  cell. Reading a complete cell takes no lock: its state is written last, under the lock,
  and never changes again.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
from collections.abc import Callable
from typing import Self, TypeVar, cast

from actors._pool import current_pool
from actors._pykka import FutureBase
from actors._workers import actor_pool
from actors.errors import DiscardedError, Timeout

__all__ = ["Cell", "State"]

T = TypeVar("T")
C = TypeVar("C")

logger = logging.getLogger("actors")

_STRIPES = 64
_locks = tuple(threading.Lock() for _ in range(_STRIPES))


class State(enum.Enum):
    """The four states of a libprocess future."""

    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
    DISCARDED = "discarded"


def _run_callback(callback: Callable[..., object], *args: object) -> None:
    # One raising callback must not keep the others from running.
    try:
        callback(*args)
    except Exception:
        logger.exception("Callback %r raised; the other callbacks still run", callback)


class Cell(FutureBase[T]):
    """A pykka future that completes once, with callbacks; ``actors.Future`` builds on it."""

    def __init__(self) -> None:  # FutureBase (pykka's) sets nothing
        # id >> 4: objects are 16-byte aligned, so the low bits would pick few stripes.
        self._lock = _locks[(id(self) >> 4) % _STRIPES]
        self._state = State.PENDING
        self._value: T | None = None
        self._exception: BaseException | None = None
        # Made on first use: most futures get one callback or none, and few a waiter.
        self._callbacks: list[Callable[[Self], object]] | None = None
        self._discard_requested = False
        self._discard_callbacks: list[Callable[[], object]] | None = None
        self._waiter: threading.Event | None = None

    # -- state --------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    def is_pending(self) -> bool:
        return self._state is State.PENDING

    def is_ready(self) -> bool:
        return self._state is State.READY

    def is_failed(self) -> bool:
        return self._state is State.FAILED

    def is_discarded(self) -> bool:
        return self._state is State.DISCARDED

    def has_discard(self) -> bool:
        """Whether somebody asked for this future to be discarded."""
        return self._discard_requested

    def failure(self) -> BaseException | None:
        """The exception this future failed with, or None."""
        return self._exception if self._state is State.FAILED else None

    # -- waiting ------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the future is complete; False when ``timeout`` passed first.

        On a thread outside the runtime, the waiting thread runs the actors' turns
        meanwhile. On an actor worker thread the wait is managed: the runtime lends another
        thread meanwhile, or raises ``PoolExhaustedError`` at once if waiting would hang it.
        """
        if self._state is not State.PENDING:
            return True
        if timeout is not None and timeout <= 0:
            return False
        pool = current_pool()
        if pool is None:
            # A thread of its own (the embedder's): it runs the actors' turns while it
            # waits, so the turns that complete this future need no worker woken, and
            # the answer no wake-up (libprocess's ``process::wait`` donates likewise).
            return actor_pool.wait_helping(self.on_any, timeout)
        with self._lock:
            if self._state is not State.PENDING:
                return True
            if self._waiter is None:
                self._waiter = threading.Event()
            waiter = self._waiter
        if not pool.managed_blocking:
            return waiter.wait(timeout)
        with pool.blocking():
            return waiter.wait(timeout)

    def get(self, timeout: float | None = None) -> T:
        """The value; raises the failure, ``DiscardedError``, or ``Timeout`` after ``timeout``."""
        state = self._state
        if state is State.PENDING:
            if self.has_get_hook():
                return super().get(timeout=timeout)
            if not self.wait(timeout):
                raise Timeout(f"{timeout} seconds")
            state = self._state
        if state is State.READY:
            return cast("T", self._value)
        if state is State.FAILED:
            assert self._exception is not None
            raise self._exception
        raise DiscardedError

    def _settle(
        self,
        state: State,
        *,
        value: T | None = None,
        exception: BaseException | None = None,
    ) -> bool:
        with self._lock:
            if self._state is not State.PENDING or self.has_get_hook():
                return False
            self._value = value
            self._exception = exception
            self._state = state  # last: a reader that sees it sees the value too
            callbacks, self._callbacks = self._callbacks, None
            self._discard_callbacks = None
            waiter = self._waiter
        if waiter is not None:
            waiter.set()
        if callbacks:
            for callback in callbacks:
                _run_callback(callback, self)
        return True

    def set_get_hook(self, func: Callable[[float | None], T]) -> None:
        with self._lock:
            if self._state is not State.PENDING:
                raise queue.Full
            super().set_get_hook(func)

    # -- callbacks ----------------------------------------------------------------------

    def on_any(self, callback: Callable[[Self], object]) -> Self:
        """Call ``callback(self)`` once the future is complete, whatever its state."""
        if self._state is State.PENDING:
            with self._lock:
                if self._state is State.PENDING:
                    self._callbacks = _appended(self._callbacks, callback)
                    return self
        _run_callback(callback, self)
        return self

    def on_ready(self, callback: Callable[[T], object]) -> Self:
        """Call ``callback(value)`` if the future becomes ready."""
        return self.on_any(lambda f: callback(cast("T", f._value)) if f.is_ready() else None)

    def on_failed(self, callback: Callable[[BaseException], object]) -> Self:
        """Call ``callback(exception)`` if the future fails."""
        return self.on_any(
            lambda f: callback(cast("BaseException", f._exception)) if f.is_failed() else None
        )

    def on_discarded(self, callback: Callable[[], object]) -> Self:
        """Call ``callback()`` if the future becomes discarded."""
        return self.on_any(lambda f: callback() if f.is_discarded() else None)

    def on_discard(self, callback: Callable[[], object]) -> Self:
        """Call ``callback()`` when a discard is requested, so the producer can stop work.

        Never called once the future is complete (libprocess ``onDiscard``).
        """
        with self._lock:
            if self._state is not State.PENDING:
                return self
            if not self._discard_requested:
                self._discard_callbacks = _appended(self._discard_callbacks, callback)
                return self
        _run_callback(callback)
        return self

    def discard(self) -> bool:
        """Ask the producer to discard this future; True if this call made the request."""
        with self._lock:
            if self._state is not State.PENDING or self._discard_requested:
                return False
            self._discard_requested = True
            callbacks, self._discard_callbacks = self._discard_callbacks, None
        for callback in callbacks or ():
            _run_callback(callback)
        return True


def _appended(items: list[C] | None, item: C) -> list[C]:
    """``items`` with ``item`` at the end; a list is made only for the first item."""
    if items is None:
        return [item]
    items.append(item)
    return items
