"""libprocess's ``Future``/``Promise`` on top of pykka's future interface.

pykka futures cannot carry callbacks (their ``map``/``join`` are lazy and block in
``get``), so the libprocess model needs its own future. This one is a
``pykka.Future``, so pykka actors complete it and pykka's helpers read it, and it adds
what libprocess has: states, callbacks, ``then``, ``after`` and discard requests.

Callbacks run in the thread that completes the future (or at once, in the caller's
thread, when it is already complete), never while a lock is held.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import queue
import sys
import threading
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

import pykka

from actors._gather import gather_values
from actors._timer import call_later
from actors.errors import DiscardedError, Timeout

if TYPE_CHECKING:
    from pykka._types import OptExcInfo

__all__ = ["Future", "Promise", "State"]

T = TypeVar("T")
U = TypeVar("U")
J = TypeVar("J")
R = TypeVar("R")

logger = logging.getLogger("actors")


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


class Future(pykka.Future[T]):
    """A value that is there now or later; completed once, by its ``Promise``.

    ``discard()`` is only a request: the future stays pending until its producer
    completes or discards it, as in libprocess.
    """

    def __init__(self) -> None:
        super().__init__()
        self._condition = threading.Condition(threading.Lock())
        self._state = State.PENDING
        self._value: T | None = None
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[[Future[T]], object]] = []
        self._discard_requested = False
        self._discard_callbacks: list[Callable[[], object]] = []

    # -- constructors of complete futures ----------------------------------------------

    @classmethod
    def ready(cls, value: U) -> Future[U]:
        """A future that is already ready with ``value``."""
        future: Future[U] = Future()
        future._complete(State.READY, value=value)
        return future

    @classmethod
    def failed(cls, exception: BaseException) -> Future[Any]:
        """A future that has already failed with ``exception``."""
        future: Future[Any] = Future()
        future._complete(State.FAILED, exception=exception)
        return future

    @classmethod
    def discarded(cls) -> Future[Any]:
        """A future that is already discarded."""
        future: Future[Any] = Future()
        future._complete(State.DISCARDED)
        return future

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

    def __repr__(self) -> str:
        return f"<actors.Future {self._state.value}>"

    # -- waiting ------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the future is complete; False when ``timeout`` passed first."""
        with self._condition:
            return self._condition.wait_for(lambda: self._state is not State.PENDING, timeout)

    def get(self, timeout: float | None = None) -> T:
        """The value; raises the failure, ``DiscardedError``, or ``Timeout`` after ``timeout``."""
        if self._get_hook is not None:
            return super().get(timeout=timeout)
        if not self.wait(timeout):
            raise Timeout(f"{timeout} seconds")
        if self._state is State.READY:
            return cast("T", self._value)
        if self._state is State.FAILED:
            assert self._exception is not None
            raise self._exception
        raise DiscardedError

    # -- completion (the Promise's side) -------------------------------------------------

    def _complete(
        self,
        state: State,
        *,
        value: T | None = None,
        exception: BaseException | None = None,
    ) -> bool:
        with self._condition:
            if self._state is not State.PENDING or self._get_hook is not None:
                return False
            self._value = value
            self._exception = exception
            self._state = state
            callbacks, self._callbacks = self._callbacks, []
            self._discard_callbacks = []
            self._condition.notify_all()
        for callback in callbacks:
            _run_callback(callback, self)
        return True

    def _complete_like(self, source: Future[T]) -> bool:
        return self._complete(source._state, value=source._value, exception=source._exception)

    def _follow(self, source: Future[T]) -> None:
        """Complete as ``source`` does; a discard request here is passed on to it."""
        self.on_discard(source.discard)
        source.on_any(self._complete_like)

    # -- pykka's interface: what pykka actors call to answer an ask -----------------------

    def set(self, value: T | None = None) -> None:
        """pykka's completion: a returned ``actors.Future`` is followed, not stored.

        This is libprocess's ``dispatch`` flattening; a second completion is ignored, so
        an actor answering a discarded ask never fails.
        """
        if isinstance(value, Future):
            self._follow(value)
        else:
            self._complete(State.READY, value=value)

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        exc_type, exc_value, traceback = exc_info if exc_info is not None else sys.exc_info()
        if exc_value is None:
            exc_value = exc_type() if exc_type is not None else RuntimeError("unknown failure")
        if traceback is not None and exc_value.__traceback__ is not traceback:
            exc_value = exc_value.with_traceback(traceback)
        self._complete(State.FAILED, exception=exc_value)

    def set_get_hook(self, func: Callable[[float | None], T]) -> None:
        with self._condition:
            if self._state is not State.PENDING:
                raise queue.Full
            super().set_get_hook(func)

    # -- callbacks ----------------------------------------------------------------------

    def on_any(self, callback: Callable[[Future[T]], object]) -> Future[T]:
        """Call ``callback(self)`` once the future is complete, whatever its state."""
        with self._condition:
            if self._state is State.PENDING:
                self._callbacks.append(callback)
                return self
        _run_callback(callback, self)
        return self

    def on_ready(self, callback: Callable[[T], object]) -> Future[T]:
        """Call ``callback(value)`` if the future becomes ready."""
        return self.on_any(lambda f: callback(cast("T", f._value)) if f.is_ready() else None)

    def on_failed(self, callback: Callable[[BaseException], object]) -> Future[T]:
        """Call ``callback(exception)`` if the future fails."""
        return self.on_any(
            lambda f: callback(cast("BaseException", f._exception)) if f.is_failed() else None
        )

    def on_discarded(self, callback: Callable[[], object]) -> Future[T]:
        """Call ``callback()`` if the future becomes discarded."""
        return self.on_any(lambda f: callback() if f.is_discarded() else None)

    def on_discard(self, callback: Callable[[], object]) -> Future[T]:
        """Call ``callback()`` when a discard is requested, so the producer can stop work.

        Never called once the future is complete (libprocess ``onDiscard``).
        """
        with self._condition:
            if self._state is not State.PENDING:
                return self
            if not self._discard_requested:
                self._discard_callbacks.append(callback)
                return self
        _run_callback(callback)
        return self

    def discard(self) -> bool:
        """Ask the producer to discard this future; True if this call made the request."""
        with self._condition:
            if self._state is not State.PENDING or self._discard_requested:
                return False
            self._discard_requested = True
            callbacks, self._discard_callbacks = self._discard_callbacks, []
        for callback in callbacks:
            _run_callback(callback)
        return True

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

        def _completed(future: Future[T]) -> None:
            if latch.acquire(blocking=False):
                timer.cancel()
                promise.future._complete_like(future)

        promise.future.on_discard(self.discard)
        self.on_any(_completed)
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

        def _settle() -> None:
            if not waiter.done():
                waiter.set_result(None)

        def _wake(_: Future[T]) -> None:
            loop.call_soon_threadsafe(_settle)

        self.on_any(_wake)
        try:
            yield from waiter.__await__()
        except asyncio.CancelledError:
            self.discard()
            raise
        return self.get(timeout=0)

    __iter__ = __await__


class Promise(Generic[T]):
    """The producer's side of a ``Future``: completes it exactly once."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: Future[T] = Future()

    def set(self, value: T) -> bool:
        """Make the future ready; False if it was already complete."""
        return self.future._complete(State.READY, value=value)

    def fail(self, exception: BaseException) -> bool:
        """Make the future failed; False if it was already complete."""
        return self.future._complete(State.FAILED, exception=exception)

    def discard(self) -> bool:
        """Make the future discarded; False if it was already complete."""
        return self.future._complete(State.DISCARDED)

    def associate(self, source: Future[T]) -> None:
        """Complete the future as ``source`` completes (libprocess ``associate``)."""
        self.future._follow(source)

    def set_from(self, result: T | Future[T]) -> None:
        """``set`` a plain value, ``associate`` a future."""
        if isinstance(result, Future):
            self.associate(result)
        else:
            self.set(result)
