"""The exceptions a future raises instead of a value."""

from __future__ import annotations

import pykka

__all__ = ["DiscardedError", "PoolExhaustedError", "Timeout"]


class DiscardedError(Exception):
    """Raised by ``Future.get`` when the future was discarded instead of completed."""

    def __init__(self, message: str = "future discarded") -> None:
        super().__init__(message)


class Timeout(pykka.Timeout, TimeoutError):
    """Raised by ``Future.get`` on timeout: both a ``pykka.Timeout`` and a ``TimeoutError``."""


class PoolExhaustedError(RuntimeError):
    """Raised by ``Future.get``/``wait`` on an actor worker thread when waiting would hang.

    Every worker thread would then be waiting on a future and the runtime may start no
    other (its ``max_workers``), so nothing would be left to complete those futures.
    """
