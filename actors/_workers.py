"""The runtime's state: its two pools, their limits, and the actors alive on them.

Nothing here reads the environment at import: the limits are read from
``ACTORS_WORKERS``, ``ACTORS_MAX_WORKERS`` and ``ACTORS_BLOCKING_WORKERS`` on first use
(the first actor started, blocking call, ``configure`` or ``statistics``), so importing
``actors`` never fails and never fixes a limit behind the embedder's back.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from actors._pool import WorkerPool

__all__ = [
    "DEFAULT_BLOCKING_WORKERS",
    "DEFAULT_MAX_WORKERS",
    "DEFAULT_WORKERS",
    "actor_finished",
    "actor_pool",
    "actor_started",
    "actors_alive",
    "blocking_pool",
    "configure",
    "owned_actors",
    "wait_until_no_actor",
]

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


_limits: tuple[int, int, int] | None = None  # workers, max_workers, blocking_workers
_limits_lock = threading.RLock()


def limits() -> tuple[int, int, int]:
    """The limits now; the environment is read the first time this is called."""
    global _limits  # noqa: PLW0603 - the one runtime's limits
    if _limits is None:
        with _limits_lock:
            if _limits is None:
                workers = _from_environment("ACTORS_WORKERS", DEFAULT_WORKERS)
                _limits = _checked(
                    workers,
                    _from_environment("ACTORS_MAX_WORKERS", max(DEFAULT_MAX_WORKERS, workers)),
                    _from_environment("ACTORS_BLOCKING_WORKERS", DEFAULT_BLOCKING_WORKERS),
                )
    return _limits


actor_pool = WorkerPool("actors-worker", limits=lambda: limits()[:2], managed_blocking=True)
blocking_pool = WorkerPool(
    "actors-blocking", limits=lambda: (limits()[2], limits()[2]), managed_blocking=False
)


def configure(
    *,
    workers: int | None = None,
    max_workers: int | None = None,
    blocking_workers: int | None = None,
) -> None:
    """New limits (``None`` keeps one); see ``actors.runtime.configure``."""
    global _limits  # noqa: PLW0603 - the one runtime's limits
    with _limits_lock:
        now = limits()
        _limits = new = _checked(
            now[0] if workers is None else workers,
            now[1] if max_workers is None else max_workers,
            now[2] if blocking_workers is None else blocking_workers,
        )
    actor_pool.configure(workers=new[0], max_workers=new[1])
    blocking_pool.configure(workers=new[2], max_workers=new[2])


# -- the actors alive on the runtime -----------------------------------------------------

_actors = 0
_actors_changed = threading.Condition()

owned_actors: dict[Any, None] = {}
"""Actors started without a pykka ref or registry entry (``Sequence``'s): only so that
``ActorRegistry.stop_all()`` and ``shutdown()`` can stop one its owner forgot. A dict keeps
start order and adds and removes in O(1), atomically under the GIL, with no lock."""


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


def actors_alive() -> int:
    with _actors_changed:
        return _actors


def wait_until_no_actor(timeout: float | None) -> bool:
    with _actors_changed:
        return _actors_changed.wait_for(lambda: _actors == 0, timeout)
