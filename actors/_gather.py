"""The one gathering algorithm behind ``collect``, ``await_`` and ``Future.join``.

Written against the small interfaces below rather than against ``Future`` itself, so that
``future`` (whose ``join`` gathers) and ``combinators`` both build on it without importing
each other. Driven by callbacks: gathering costs a counter and a lock, never a thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from actors.errors import DiscardedError

__all__ = ["gather_futures", "gather_values"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)
F = TypeVar("F", bound="Input[Any]")


class Input(Protocol[T_co]):
    """What is gathered: a future, seen through its public interface."""

    def on_any(self, callback: Callable[[Any], object], /) -> object: ...

    def is_ready(self) -> bool: ...

    def failure(self) -> BaseException | None: ...

    def discard(self) -> bool: ...

    def get(self, timeout: float | None = None) -> T_co: ...


class _Requests(Protocol):
    def has_discard(self) -> bool: ...

    def on_discard(self, callback: Callable[[], object], /) -> object: ...


class Output(Protocol[R_contra]):
    """Where the result goes: a promise, and its future's discard requests."""

    @property
    def future(self) -> _Requests: ...

    def set(self, value: R_contra, /) -> bool: ...

    def fail(self, exception: BaseException, /) -> bool: ...

    def discard(self) -> bool: ...


def gather_values(inputs: Sequence[Input[T]], output: Output[list[T]]) -> None:
    """libprocess's ``collect``: the values in input order; the first failure fails it."""
    _gather(
        inputs,
        output,
        fail_fast=True,
        finish=lambda ready: [future.get(timeout=0) for future in ready],
    )


def gather_futures(inputs: Sequence[F], output: Output[list[F]]) -> None:
    """libprocess's ``await``: the inputs themselves, once none is pending."""
    _gather(inputs, output, fail_fast=False, finish=list)


def _gather(
    inputs: Sequence[F],
    output: Output[R],
    *,
    fail_fast: bool,
    finish: Callable[[Sequence[F]], R],
) -> None:
    """Complete ``output`` with ``finish(inputs)`` once no input is pending.

    With ``fail_fast`` the first input that fails (or is discarded) fails ``output`` at
    once, without waiting for the others. A discard request on ``output`` discards every
    input first (libprocess's order, which callers may rely on), then ``output``.
    """
    if not inputs:
        output.set(finish(inputs))
        return
    remaining = [len(inputs)]
    lock = threading.Lock()

    def _discard_all() -> None:
        for future in inputs:
            future.discard()
        output.discard()

    def _waited(future: F) -> None:
        if output.future.has_discard():
            return  # _discard_all discards the output once the inputs have been told
        if fail_fast and not future.is_ready():
            failure = future.failure()
            output.fail(failure or DiscardedError("Collect failed: future discarded"))
            return
        with lock:
            remaining[0] -= 1
            done = remaining[0] == 0
        if done:
            output.set(finish(inputs))

    output.future.on_discard(_discard_all)
    for future in inputs:
        future.on_any(_waited)
