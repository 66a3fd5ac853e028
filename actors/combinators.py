"""libprocess's ``collect`` and ``await`` over many futures, driven by callbacks (no thread)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable
from typing import Any, TypeVar, cast

from actors.future import DiscardedError, Future, Promise

__all__ = ["await_", "collect"]

T = TypeVar("T")


def _discard_all(futures: list[Future[Any]], promise: Promise[Any]) -> None:
    # libprocess discards the inputs first, so callers may rely on that order.
    for future in futures:
        future.discard()
    promise.discard()


def collect(futures: Iterable[Future[T]]) -> Future[list[T]]:
    """The values of all ``futures`` in input order.

    Fails as soon as any input fails (with that exception) or is discarded (with
    ``DiscardedError``), without waiting for the others. Discarding the result discards
    every input.
    """
    inputs = list(futures)
    promise: Promise[list[T]] = Promise()
    if not inputs:
        promise.set([])
        return promise.future
    values: list[T | None] = [None] * len(inputs)
    remaining = [len(inputs)]
    lock = threading.Lock()

    def _waited(index: int, future: Future[T]) -> None:
        if promise.future.has_discard():
            return  # _discard_all discards the result once the inputs have been told
        if future.is_ready():
            with lock:
                values[index] = future._value
                remaining[0] -= 1
                done = remaining[0] == 0
            if done:
                promise.set(cast("list[T]", list(values)))
        elif future.is_failed():
            promise.fail(cast("BaseException", future.failure()))
        else:
            promise.fail(DiscardedError("Collect failed: future discarded"))

    promise.future.on_discard(lambda: _discard_all(inputs, promise))
    for index, future in enumerate(inputs):
        future.on_any(functools.partial(_waited, index))
    return promise.future


def await_(futures: Iterable[Future[T]]) -> Future[list[Future[T]]]:
    """The input futures themselves, once none is pending, whatever their outcomes.

    Never fails because an input failed. Discarding the result discards every input.
    (``await`` is a Python keyword, hence the underscore.)
    """
    inputs = list(futures)
    promise: Promise[list[Future[T]]] = Promise()
    if not inputs:
        promise.set([])
        return promise.future
    remaining = [len(inputs)]
    lock = threading.Lock()

    def _waited(_: Future[T]) -> None:
        if promise.future.has_discard():
            return  # _discard_all discards the result once the inputs have been told
        with lock:
            remaining[0] -= 1
            done = remaining[0] == 0
        if done:
            promise.set(list(inputs))

    promise.future.on_discard(lambda: _discard_all(inputs, promise))
    for future in inputs:
        future.on_any(_waited)
    return promise.future
