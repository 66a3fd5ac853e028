"""The runtime every ``actors.Actor`` runs on, and the executor for blocking calls.

Two pools of daemon threads, started on demand:

- the workers, which run actors (libprocess's ``ProcessManager`` worker threads): at
  most ``workers`` of them busy at once, plus one lent for each worker waiting on a
  future, up to ``max_workers`` threads in all;
- the blocking executor, which runs ``run_blocking`` calls: at most
  ``blocking_workers`` threads.

Limits come from ``configure()`` or, on first use (not at import), from the environment
variables ``ACTORS_WORKERS``, ``ACTORS_MAX_WORKERS`` and ``ACTORS_BLOCKING_WORKERS``.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pykka

from actors import _workers
from actors._parking import Kind, park
from actors._pool import PoolStatistics
from actors._workers import (
    DEFAULT_BLOCKING_WORKERS,
    DEFAULT_MAX_WORKERS,
    DEFAULT_WORKERS,
    actor_pool,
    blocking_pool,
)
from actors.future import Future, Promise

__all__ = [
    "DEFAULT_BLOCKING_WORKERS",
    "DEFAULT_MAX_WORKERS",
    "DEFAULT_WORKERS",
    "RuntimeStatistics",
    "configure",
    "freeze_long_lived",
    "run_after_turn",
    "run_blocking",
    "run_brief",
    "shutdown",
    "statistics",
]

T = TypeVar("T")


def configure(
    *,
    workers: int | None = None,
    max_workers: int | None = None,
    blocking_workers: int | None = None,
) -> None:
    """Change the runtime's limits; ``None`` keeps a limit as it is.

    Takes effect at once, running actors included: threads beyond a lowered limit exit
    once idle. Raises ``ValueError`` (and changes nothing) for a limit below 1 or
    ``max_workers`` below ``workers``.
    """
    _workers.configure(workers=workers, max_workers=max_workers, blocking_workers=blocking_workers)


def run_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
    """Call ``fn(*args, **kwargs)`` on the blocking executor; never blocks the caller.

    The future holds what ``fn`` returns, or fails with what it raises. Calls beyond
    ``blocking_workers`` wait their turn in order. Discarding the future before ``fn``
    started discards it at once, and ``fn`` is never called; once started, ``fn`` runs to
    its end and its outcome completes the future.
    """
    future, call = _blocking_call(fn, args, kwargs)
    blocking_pool.submit(call)
    return future


def run_brief(fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
    """``run_blocking`` for a call that ends soon (a local file written and synced).

    From a turn that a waiting caller runs (``Future.get`` outside the runtime donates its
    thread), the call is kept for that caller: once the turn is over, if no other turn is
    queued and its own future is still pending (it would go to sleep), it runs the call
    itself, which saves a thread hand-off each way. Otherwise, and from any other thread,
    the call goes to the blocking executor as ``run_blocking``'s do, so it overlaps the
    turns still to run. Only for brief calls: a caller that took one finishes it even if
    its own answer arrives meanwhile. Discarding works as for ``run_blocking``.
    """
    return _parked(Kind.IF_IDLE, fn, args, kwargs)


def run_after_turn(fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
    """Call ``fn(*args, **kwargs)`` on the thread running this turn, once the turn is over.

    For work too brief to be worth a thread hand-off (a file written on a tmpfs: about
    70 us, where handing it to another thread and its outcome back costs more, and the I/O
    thread then fights the GIL after each system call). The thread that ran the turn, a
    worker or a waiting caller, runs the calls its turns started, in order, before its
    next task, outside any actor's turn. Outside a turn, the call goes to the blocking
    executor. Calls that turn out long hold that thread: the runtime's nudge gives the
    turns queued meanwhile another one, as for a handler stuck in a system call.
    """
    return _parked(Kind.ALWAYS, fn, args, kwargs)


def _parked(
    kind: Kind, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Future[T]:
    """``fn``'s call kept for this thread as ``kind`` says, else on the blocking executor."""
    future, call = _blocking_call(fn, args, kwargs)
    if not park(call, blocking_pool.submit, kind):
        blocking_pool.submit(call)
    return future


def _blocking_call(
    fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Future[T], Callable[[], None]]:
    """The future of ``fn``'s outcome, and the call that completes it (once)."""
    promise: Promise[T] = Promise()
    claimed = threading.Lock()  # whoever takes it first, the call or a discard, decides

    def _discard() -> None:
        if claimed.acquire(blocking=False):
            promise.discard()

    def _call() -> None:
        if not claimed.acquire(blocking=False):
            return
        try:
            result = fn(*args, **kwargs)
        except BaseException as error:  # the future reports it; the thread goes on
            promise.fail(error)
            return
        promise.set(result)

    promise.future.on_discard(_discard)
    return promise.future, _call


# -- the actors alive on the runtime -----------------------------------------------------


@dataclass(frozen=True)
class RuntimeStatistics:
    """A snapshot of the runtime."""

    actors: int
    """Actors started and not yet torn down (idle ones included: they hold no thread)."""
    workers: PoolStatistics
    """The threads that run actors."""
    blocking: PoolStatistics
    """The threads that run ``run_blocking`` calls."""


def statistics() -> RuntimeStatistics:
    """The runtime's actors and threads, now."""
    return RuntimeStatistics(
        _workers.actors_alive(), actor_pool.statistics(), blocking_pool.statistics()
    )


def shutdown(timeout: float | None = None) -> bool:
    """Stop every actor and wait until none is left on the runtime; True if none is.

    Stops the registered actors as ``pykka.ActorRegistry.stop_all`` does, then the owned
    ones (``Sequence``'s), raising ``pykka.Timeout`` if one does not stop within
    ``timeout``; then waits up to
    ``timeout`` for the teardown of every actor of this runtime, crashed ones included.
    The worker threads stay, idle; they are daemons, so they never keep the program
    alive (an actor still running at exit is abandoned: stop them first).
    """
    pykka.ActorRegistry.stop_all(timeout=timeout)  # owned actors too (actors._pykka)
    return _workers.wait_until_no_actor(timeout)


def freeze_long_lived(*, collect: bool = True) -> int:
    """Keep every object alive now out of all later garbage collections; how many are kept.

    For a program whose long-lived state is built (an embedder calls it after the
    isolator's recovery and its own start-up): CPython's collector walks every tracked object of
    a generation each time it collects it, so thousands of long-lived records make each
    full collection, and the cost per container, grow with what is alive. ``gc.freeze()``
    moves them to a generation that is never collected. With ``collect`` (the default) a
    full collection runs first, so what is already garbage is freed, not kept. An object
    frozen here and dropped later is still freed by its reference count; only a cycle of
    them stays until ``gc.unfreeze()``.
    """
    if collect:
        gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
