"""libprocess's ``collect`` and ``await`` over many futures, driven by callbacks (no thread)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from actors._gather import gather_futures, gather_values
from actors.future import Future, Promise

__all__ = ["await_", "collect"]

T = TypeVar("T")


def collect(futures: Iterable[Future[T]]) -> Future[list[T]]:
    """The values of all ``futures`` in input order.

    Fails as soon as any input fails (with that exception) or is discarded (with
    ``DiscardedError``), without waiting for the others. Discarding the result discards
    every input.
    """
    promise: Promise[list[T]] = Promise()
    gather_values(list(futures), promise)
    return promise.future


def await_(futures: Iterable[Future[T]]) -> Future[list[Future[T]]]:
    """The input futures themselves, once none is pending, whatever their outcomes.

    Never fails because an input failed. Discarding the result discards every input.
    (``await`` is a Python keyword, hence the underscore.)
    """
    promise: Promise[list[Future[T]]] = Promise()
    gather_futures(list(futures), promise)
    return promise.future
