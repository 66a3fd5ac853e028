"""libprocess's ``Sequence``: callbacks run strictly one after another, in ``add`` order.

Each item starts only once the previous item's future is no longer pending (ready,
failed or discarded all count, so a failure never stalls the chain). Every ``Sequence``
has its own actor, so a slow item in one never delays another; an idle actor holds no
thread, so a ``Sequence`` costs memory only (a few KiB).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar, cast, overload

import pykka

from actors.actor import Actor, defer
from actors.future import Future, Promise

__all__ = ["Sequence", "SequenceActor"]

T = TypeVar("T")


class _Add(NamedTuple):
    fn: Callable[[], Any]
    promise: Promise[Any]


class _Shutdown(NamedTuple):
    pass


class SequenceActor(Actor):
    """The actor behind a ``Sequence``; use the ``Sequence`` handle rather than this."""

    def __init__(self, stopped: Promise[None], stopping: threading.Event | None = None) -> None:
        super().__init__()
        self._stopped = stopped
        # Set by ``Sequence.stop()`` at once, before the actor reads its ``_Shutdown``.
        self._stopping = stopping if stopping is not None else threading.Event()
        self._last: Future[None] = Future.ready(None)
        # Added, not started; a dict keeps add order and removes in O(1).
        self._waiting: dict[Promise[Any], None] = {}
        self._running: Promise[Any] | None = None
        self._shutting_down = False

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Add):
            self._add(message.fn, message.promise)
        elif isinstance(message, _Shutdown):
            self._shutting_down = True
            self.stop()
        return None

    def _add(self, fn: Callable[[], Any], promise: Promise[Any]) -> None:
        if self._shutting_down:
            promise.discard()
            return
        # The next item may start once this one's future is complete, however it ends.
        done: Promise[None] = Promise()
        promise.future.on_any(lambda _: done.set(None))
        previous, self._last = self._last, done.future
        self._waiting[promise] = None
        start = defer(self.actor_ref, self._start, fn, promise)

        def _on_previous_done(_: Future[None]) -> None:
            try:
                start()
            except pykka.ActorDeadError:
                promise.discard()

        previous.on_any(_on_previous_done)

    def _start(self, fn: Callable[[], Any], promise: Promise[Any]) -> None:
        self._waiting.pop(promise, None)
        if promise.future.has_discard() or self._shutting_down or self._stopping.is_set():
            promise.discard()
            return
        if not promise.future.is_pending():
            return
        self._running = promise
        promise.future.on_any(lambda _: self._clear_running(promise))
        try:
            result = fn()
        except Exception as error:
            promise.fail(error)
            return
        promise.set_from(result)

    def _clear_running(self, promise: Promise[Any]) -> None:
        # Runs on whichever thread completes the item; a plain compare-and-clear is enough.
        if self._running is promise:
            self._running = None

    def on_stop(self) -> None:
        running, self._running = self._running, None
        if running is not None:
            running.future.discard()
        waiting, self._waiting = self._waiting, {}
        for promise in waiting:
            promise.discard()
        self._stopped.set(None)


class Sequence:
    """A handle on a running ``SequenceActor``; ``Sequence()`` starts one.

    ``stop()`` differs from libprocess: it does not wait for the running item, it only
    asks it to discard, and it discards every item not yet started without calling it.
    """

    def __init__(self) -> None:
        self._stopped: Promise[None] = Promise()
        self._stopping = threading.Event()
        self._ref = SequenceActor.start(self._stopped, self._stopping)

    # Overloads so that a type checker infers T when ``fn`` returns a Future.
    @overload
    def add(self, fn: Callable[[], Future[T]]) -> Future[T]: ...

    @overload
    def add(self, fn: Callable[[], T]) -> Future[T]: ...

    def add(self, fn: Callable[[], T | Future[T]]) -> Future[T]:
        """Queue ``fn``; it is called after every item added before it has completed.

        An exception from ``fn`` fails the returned future. A discard requested on the
        returned future before ``fn``'s turn skips ``fn`` and discards the future.
        """
        promise: Promise[T] = Promise()
        if self._stopping.is_set():
            promise.discard()
            return promise.future
        # An ask, not a tell: pykka silently drops a told message still queued when the
        # actor stops, but fails an asked one (or a dead actor's) with ActorDeadError.
        added = cast("Future[None]", self._ref.ask(_Add(fn, promise), block=False))
        added.on_failed(lambda _: promise.discard())
        return promise.future

    def stop(self) -> Future[None]:
        """Stop the sequence; the future is ready once its actor has stopped."""
        self._stopping.set()  # no item may start from now on, even one already queued
        with contextlib.suppress(pykka.ActorDeadError):
            self._ref.tell(_Shutdown())
        return self._stopped.future

    def is_alive(self) -> bool:
        return self._ref.is_alive()
