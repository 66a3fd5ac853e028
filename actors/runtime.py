"""The runtime every ``actors.Actor`` runs on, and the executor for blocking calls.

Two pools of daemon threads, started on demand:

- the workers, which run actors (libprocess's ``ProcessManager`` worker threads): at
  most ``workers`` of them busy at once, plus one lent for each worker waiting on a
  future, up to ``max_workers`` threads in all;
- the blocking executor, which runs ``run_blocking`` calls: at most
  ``blocking_workers`` threads.

Limits come from ``configure()`` or, at import, from the environment variables
``ACTORS_WORKERS``, ``ACTORS_MAX_WORKERS`` and ``ACTORS_BLOCKING_WORKERS``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pykka

from actors._pool import PoolStatistics, WorkerPool
from actors.future import Future, Promise

__all__ = [
    "DEFAULT_BLOCKING_WORKERS",
    "DEFAULT_MAX_WORKERS",
    "DEFAULT_WORKERS",
    "RuntimeStatistics",
    "configure",
    "run_blocking",
    "shutdown",
    "statistics",
]

T = TypeVar("T")

DEFAULT_WORKERS = 2
"""With the GIL, more workers add no speed, only room for handlers that block."""
DEFAULT_MAX_WORKERS = 32
"""Workers plus the threads lent to workers waiting on futures."""
DEFAULT_BLOCKING_WORKERS = 32
"""Threads for ``run_blocking`` calls in flight at once (each started when first needed)."""


def _from_environment(variable: str, default: int) -> int:
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{variable} must be a whole number, not {value!r}") from None
    if number < 1:
        raise ValueError(f"{variable} must be at least 1, not {number}")
    return number


def _checked(workers: int, max_workers: int, blocking_workers: int) -> tuple[int, int, int]:
    for name, value in (
        ("workers", workers),
        ("max_workers", max_workers),
        ("blocking_workers", blocking_workers),
    ):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, not {value}")
    if max_workers < workers:
        raise ValueError(f"max_workers ({max_workers}) must be at least workers ({workers})")
    return workers, max_workers, blocking_workers


_workers = _from_environment("ACTORS_WORKERS", DEFAULT_WORKERS)
_workers, _max_workers, _blocking_workers = _checked(
    _workers,
    _from_environment("ACTORS_MAX_WORKERS", max(DEFAULT_MAX_WORKERS, _workers)),
    _from_environment("ACTORS_BLOCKING_WORKERS", DEFAULT_BLOCKING_WORKERS),
)
actor_pool = WorkerPool(
    "actors-worker",
    workers=_workers,
    max_workers=_max_workers,
    managed_blocking=True,
)
_blocking_pool = WorkerPool(
    "actors-blocking",
    workers=_blocking_workers,
    max_workers=_blocking_workers,
    managed_blocking=False,
)


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
    global _workers, _max_workers, _blocking_workers
    _workers, _max_workers, _blocking_workers = _checked(
        _workers if workers is None else workers,
        _max_workers if max_workers is None else max_workers,
        _blocking_workers if blocking_workers is None else blocking_workers,
    )
    actor_pool.configure(workers=_workers, max_workers=_max_workers)
    _blocking_pool.configure(workers=_blocking_workers, max_workers=_blocking_workers)


def run_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
    """Call ``fn(*args, **kwargs)`` on the blocking executor; never blocks the caller.

    The future holds what ``fn`` returns, or fails with what it raises. Calls beyond
    ``blocking_workers`` wait their turn in order. Discarding the future before ``fn``
    started discards it at once, and ``fn`` is never called; once started, ``fn`` runs to
    its end and its outcome completes the future.
    """
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
    _blocking_pool.submit(_call)
    return promise.future


# -- the actors alive on the runtime -----------------------------------------------------

_actors = 0
_actors_changed = threading.Condition()


def actor_started() -> None:
    """Count an actor in, from its start until its teardown has finished."""
    global _actors  # noqa: PLW0603 - one count for the one runtime
    with _actors_changed:
        _actors += 1


def actor_finished() -> None:
    global _actors  # noqa: PLW0603 - one count for the one runtime
    with _actors_changed:
        _actors -= 1
        if not _actors:
            _actors_changed.notify_all()


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
    with _actors_changed:
        actors = _actors
    return RuntimeStatistics(actors, actor_pool.statistics(), _blocking_pool.statistics())


def shutdown(timeout: float | None = None) -> bool:
    """Stop every actor and wait until none is left on the runtime; True if none is.

    Stops the registered actors as ``pykka.ActorRegistry.stop_all`` does (raising
    ``pykka.Timeout`` if one does not stop within ``timeout``), then waits up to
    ``timeout`` for the teardown of every actor of this runtime, crashed ones included.
    The worker threads stay, idle; they are daemons, so they never keep the program
    alive (an actor still running at exit is abandoned: stop them first).
    """
    pykka.ActorRegistry.stop_all(timeout=timeout)
    with _actors_changed:
        return _actors_changed.wait_for(lambda: _actors == 0, timeout)
