"""libprocess's ``Sequence``: callbacks run strictly one after another, in ``add`` order.

Each item starts only once the previous item's future is no longer pending (ready,
failed or discarded all count, so a failure never stalls the chain). Every ``Sequence``
has its own actor, so a slow item in one never delays another; an idle actor holds no
thread, so a ``Sequence`` costs memory only (a few KiB). Its actor is started owned, as
libprocess's is: the handle holds the actor itself, so it has no URN, no pykka ref and no
registry entry, and starting it queues no turn.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar, overload

from actors._flag import Flag
from actors.actor import Actor, Deferred, post, tell
from actors.future import Future, Promise

__all__ = ["Sequence", "SequenceActor"]

T = TypeVar("T")


class _Add:
    """Add ``fn``; also the message's reply object: a message the actor can no longer
    handle (it stopped first) discards the item instead of answering anybody."""

    __slots__ = ("fn", "promise")

    def __init__(self, fn: Callable[[], Any], promise: Promise[Any]) -> None:
        self.fn = fn
        self.promise = promise

    def set(self, value: object = None) -> None:
        """Handled: the item's own future answers the caller."""

    def set_exception(self, exc_info: object = None) -> None:
        self.promise.discard()


class _Shutdown(NamedTuple):
    pass


class SequenceActor(Actor):
    """The actor behind a ``Sequence``; use the ``Sequence`` handle rather than this."""

    def __init__(self, stopped: Promise[None], stopping: threading.Event | None = None) -> None:
        super().__init__()
        self._stopped = stopped
        # Set by ``Sequence.stop()`` at once, before the actor reads its ``_Shutdown``.
        self._stopping = stopping if stopping is not None else threading.Event()
        self._last: Future[Any] | None = None  # the future of the item added last
        # Added, not started; a dict keeps add order and removes in O(1).
        self._waiting: dict[Promise[Any], None] = {}
        self._running: Promise[Any] | None = None
        self._shutting_down = False

    def on_receive(self, message: Any) -> Any:
        if type(message) is _Add:
            self._add(message.fn, message.promise)
        elif isinstance(message, _Shutdown):
            self._shutting_down = True
            self._stop()  # what pykka's own stop message does, one message sooner
        return None

    def _add(self, fn: Callable[[], Any], promise: Promise[Any]) -> None:
        if self._shutting_down:
            promise.discard()
            return
        # The next item may start once this one's future is complete, however it ends.
        previous, self._last = self._last, promise.future
        self._waiting[promise] = None
        if previous is None or not previous.is_pending():
            # Every earlier item has started and ended, so this one is next: start it in
            # this very message (libprocess would dispatch once more to get here).
            self._start(fn, promise)
            return
        previous.on_any(functools.partial(self._start_later, fn, promise))

    def _start_later(self, fn: Callable[[], Any], promise: Promise[Any], _: object) -> None:
        """On the thread that completed the previous item: back onto the actor."""
        post(self, Deferred(self._start, (fn, promise)), _Discard(promise))

    def _start(self, fn: Callable[[], Any], promise: Promise[Any]) -> None:
        self._waiting.pop(promise, None)
        if promise.future.has_discard() or self._shutting_down or self._stopping.is_set():
            promise.discard()
            return
        if not promise.future.is_pending():
            return
        self._running = promise
        try:
            result = fn()
        except Exception as error:
            self._running = None
            promise.fail(error)
            return
        promise.set_from(result)
        if promise.future.is_pending():
            promise.future.on_any(lambda _: self._clear_running(promise))
        else:
            self._running = None

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


class _Discard:
    """The reply to a deferred start: if the actor is gone, the item is discarded."""

    __slots__ = ("_promise",)

    def __init__(self, promise: Promise[Any]) -> None:
        self._promise = promise

    def set(self, value: object = None) -> None:
        """Started (or skipped): the item's own future tells the rest."""

    def set_exception(self, exc_info: object = None) -> None:
        self._promise.discard()


class Sequence:
    """A handle on a running ``SequenceActor``; ``Sequence()`` starts one.

    ``stop()`` differs from libprocess: it does not wait for the running item, it only
    asks it to discard, and it discards every item not yet started without calling it.
    """

    def __init__(self) -> None:
        self._stopped: Promise[None] = Promise()
        self._stopping = Flag()
        # Owned: only this handle addresses the actor, so it needs no ref or registry.
        self._actor: SequenceActor = SequenceActor._start_owned(self._stopped, self._stopping)

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
        # Posted with a reply, as an ask: pykka silently drops a told message still queued
        # when the actor stops, but fails one with a reply (or a dead actor's) with
        # ActorDeadError, and the reply (the message itself) then discards the item.
        add = _Add(fn, promise)
        post(self._actor, add, add)
        return promise.future

    def stop(self) -> Future[None]:
        """Stop the sequence; the future is ready once its actor has stopped."""
        self._stopping.set()  # no item may start from now on, even one already queued
        # An idle sequence stops here and now; a busy one behind what it has queued.
        if not self._actor._stop_now_if_idle():
            tell(self._actor, _Shutdown())
        return self._stopped.future

    def is_alive(self) -> bool:
        return not self._actor.actor_stopped.is_set()
