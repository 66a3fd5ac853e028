"""Operations that wait for a checkpoint's I/O in flight, so the actor never blocks on it.

The isolator writes and removes checkpoints on the blocking executor. While the I/O on a
container's checkpoint directory (named by its ID's value) is in flight, an operation on
that directory waits here and runs, in the order it arrived, once the I/O's continuation is
back on the actor; while recovery reads the checkpoints, every operation waits. To each
operation it looks as if the I/O had happened inside the handler that started it, as in
Mesos, where the checkpoint is written on the isolator's own process.

Touched only by the owning actor's thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors import Future, Promise

__all__ = ["EVERYTHING", "Gates"]

EVERYTHING = None
"""The gate that holds every operation back (recovery's)."""


class Gates:
    """Closed gates by checkpoint directory (or ``EVERYTHING``), each with its waiters."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        self._waiting: dict[str | None, list[Callable[[], None]]] = {}

    def closed(self, value: str | None) -> bool:
        """Whether an operation on ``value``'s directory must wait now."""
        return EVERYTHING in self._waiting or value in self._waiting

    def close(self, value: str | None) -> None:
        """I/O on ``value``'s directory (``EVERYTHING``: on all of them) is starting."""
        assert value not in self._waiting, f"gate {value!r} is already closed"
        self._waiting[value] = []

    def wait(self, value: str | None, operation: Callable[[], Any]) -> Future[Any]:
        """``operation()``'s outcome, once the gate that holds it back is open again.

        ``operation`` may return a value or a ``Future`` (followed), or raise (the future
        fails). Call only while ``closed(value)``.
        """
        promise: Promise[Any] = Promise()

        def run() -> None:
            try:
                result = operation()
            except Exception as error:  # the waiter's future reports it
                promise.fail(error)
                return
            promise.set_from(result)

        gate = EVERYTHING if EVERYTHING in self._waiting else value
        self._waiting[gate].append(run)
        return promise.future

    def open(self, value: str | None) -> None:
        """The I/O has finished and its outcome is recorded: run the waiters, in order.

        A waiter that starts I/O of its own closes the gate again, and the waiters after
        it wait for that I/O in turn (each one checks the gate when it runs).
        """
        for run in self._waiting.pop(value):
            run()
