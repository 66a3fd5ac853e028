"""libprocess's ``Future``/``Promise`` on top of pykka's future interface.

pykka futures cannot carry callbacks (their ``map``/``join`` are lazy and block in
``get``), so the libprocess model needs its own future. This one is a
``pykka.Future``, so pykka actors complete it and pykka's helpers read it, and it adds
what libprocess has: states, callbacks, ``then``, ``after`` and discard requests.

Callbacks run in the thread that completes the future (or at once, in the caller's
thread, when it is already complete), never while a lock is held; the states,
callbacks and waiting live in ``actors._cell``, with the invariants they keep.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

import pykka

from actors._cell import Cell, State
from actors._gather import gather_values
from actors._timer import call_later
from actors._workers import actor_pool

if TYPE_CHECKING:
    from actors._pykka import OptExcInfo

__all__ = ["Future", "Promise", "State"]

T = TypeVar("T")
U = TypeVar("U")
J = TypeVar("J")
R = TypeVar("R")


class Future(Cell[T]):
    """A value that is there now or later; completed once, by its ``Promise``.

    ``discard()`` is only a request: the future stays pending until its producer
    completes or discards it, as in libprocess.
    """

    # -- constructors of complete futures ----------------------------------------------

    @classmethod
    def ready(cls, value: U) -> Future[U]:
        """A future that is already ready with ``value``."""
        return _settled(State.READY, value, None)

    @classmethod
    def failed(cls, exception: BaseException) -> Future[Any]:
        """A future that has already failed with ``exception``."""
        return _settled(State.FAILED, None, exception)

    @classmethod
    def discarded(cls) -> Future[Any]:
        """A future that is already discarded."""
        return _settled(State.DISCARDED, None, None)

    def __repr__(self) -> str:
        return f"<actors.Future {self._state.value}>"

    # -- completion (the Promise's side) -------------------------------------------------

    def _settle_like(self, source: Future[T]) -> bool:
        return self._settle(source._state, value=source._value, exception=source._exception)

    def _follow(self, source: Future[T]) -> None:
        """Complete as ``source`` does; a discard request here is passed on to it."""
        if source._state is not State.PENDING:
            self._settle_like(source)  # nothing left to pass a discard on to
            return
        self.on_discard(source.discard)
        source.on_any(self._settle_like)

    # -- pykka's interface: what pykka actors call to answer an ask -----------------------

    def set(self, value: T | None = None) -> None:
        """pykka's completion: a returned ``actors.Future`` is followed, not stored.

        This is libprocess's ``dispatch`` flattening; a second completion is ignored, so
        an actor answering a discarded ask never fails.
        """
        if isinstance(value, Future):
            self._follow(value)
        else:
            self._settle(State.READY, value=value)

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        exc_type, exc_value, traceback = exc_info if exc_info is not None else sys.exc_info()
        if exc_value is None:
            exc_value = exc_type() if exc_type is not None else RuntimeError("unknown failure")
        if traceback is not None and exc_value.__traceback__ is not traceback:
            exc_value = exc_value.with_traceback(traceback)
        self._settle(State.FAILED, exception=exc_value)

    # -- composition --------------------------------------------------------------------

    # Overloads so that a type checker infers U when ``fn`` returns a Future (the union
    # alone makes mypy solve U as Never).
    @overload
    def then(self, fn: Callable[[T], Future[U]]) -> Future[U]: ...

    @overload
    def then(self, fn: Callable[[T], U]) -> Future[U]: ...

    def then(self, fn: Callable[[T], U | Future[U]]) -> Future[U]:
        """``fn(value)`` once ready; failure and discard pass through unchanged.

        Discarding the result asks this future to discard too.
        """
        promise: Promise[U] = Promise()

        def _continue(future: Future[T]) -> None:
            if future._state is State.READY:
                # libprocess does not run ``fn`` once a discard was requested: the
                # chain stops and the result is discarded.
                if future.has_discard() or promise.future.has_discard():
                    promise.discard()
                    return
                try:
                    result = fn(cast("T", future._value))
                except Exception as error:
                    promise.fail(error)
                    return
                promise.set_from(result)
            elif future._state is State.FAILED:
                promise.fail(cast("BaseException", future._exception))
            else:
                promise.discard()

        promise.future.on_discard(self.discard)
        self.on_any(_continue)
        return promise.future

    def after(self, seconds: float, fn: Callable[[Future[T]], T | Future[T]]) -> Future[T]:
        """This future's outcome, or ``fn(self)`` if it is still pending after ``seconds``."""
        promise: Promise[T] = Promise()
        latch = threading.Lock()

        def _expired() -> None:
            if latch.acquire(blocking=False):
                try:
                    result = fn(self)
                except Exception as error:
                    promise.fail(error)
                    return
                promise.set_from(result)

        timer = call_later(seconds, _expired)

        def _arrived(future: Future[T]) -> None:
            if latch.acquire(blocking=False):
                timer.cancel()
                promise.future._settle_like(future)

        promise.future.on_discard(self.discard)
        self.on_any(_arrived)
        return promise.future

    # pykka's lazy helpers, made eager so callbacks can hang on their results.

    def map(self, func: Callable[[T], U]) -> Future[U]:
        return self.then(func)

    def filter(self: Future[Iterable[J]], func: Callable[[J], bool]) -> Future[Iterable[J]]:
        return self.then(lambda values: list(filter(func, values)))

    def reduce(self: Future[Iterable[J]], func: Callable[[R, J], R], *args: R) -> Future[R]:
        return self.then(lambda values: functools.reduce(func, values, *args))

    def join(self: Future[Any], *futures: pykka.Future[Any]) -> Future[Iterable[Any]]:
        others = [f for f in futures if isinstance(f, Future)]
        if len(others) != len(futures):
            raise TypeError("actors.Future.join takes actors.Future objects only")
        promise: Promise[list[Any]] = Promise()
        gather_values([self, *others], promise)
        return cast("Future[Iterable[Any]]", promise.future)

    def __await__(self) -> Generator[Any, None, T]:
        """Await without blocking the event loop (pykka's own ``__await__`` blocks it)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def _resolve() -> None:
            if not waiter.done():
                waiter.set_result(None)

        def _wake(_: Future[T]) -> None:
            loop.call_soon_threadsafe(_resolve)

        self.on_any(_wake)
        if self._state is State.PENDING:
            actor_pool.flush()  # a lazy call's turn is for a worker: this thread will not run it
        try:
            yield from waiter.__await__()
        except asyncio.CancelledError:
            self.discard()
            raise
        return self.get(timeout=0)

    __iter__ = __await__


def _settled(state: State, value: T | None, exception: BaseException | None) -> Future[T]:
    future: Future[T] = Future()
    future._value, future._exception = value, exception
    future._state = state  # nobody else can see it yet: no lock, no callback
    return future


class Promise(Generic[T]):
    """The producer's side of a ``Future``: completes it exactly once."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: Future[T] = Future()

    def set(self, value: T) -> bool:
        """Make the future ready; False if it was already complete."""
        return self.future._settle(State.READY, value=value)

    def fail(self, exception: BaseException) -> bool:
        """Make the future failed; False if it was already complete."""
        return self.future._settle(State.FAILED, exception=exception)

    def discard(self) -> bool:
        """Make the future discarded; False if it was already complete."""
        return self.future._settle(State.DISCARDED)

    def associate(self, source: Future[T]) -> None:
        """Complete the future as ``source`` completes (libprocess ``associate``)."""
        self.future._follow(source)

    def set_from(self, result: T | Future[T]) -> None:
        """``set`` a plain value, ``associate`` a future."""
        if isinstance(result, Future):
            self.associate(result)
        else:
            self.set(result)
