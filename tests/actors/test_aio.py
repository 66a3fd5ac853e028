"""``EventLoopThread``: coroutines on one asyncio thread, answered with ``actors.Future``s."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator

import pytest

from actors import DiscardedError, EventLoopThread, Future, Promise
from tests.support.waits import WAIT

_names = itertools.count()


class Boom(Exception):
    """A recognisable failure."""


def threads_named(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


@pytest.fixture
def loop_thread() -> Iterator[EventLoopThread]:
    thread = EventLoopThread(name=f"test-loop-{next(_names)}")
    yield thread
    thread.stop()


def test_submit_runs_the_coroutine_on_the_loop_thread() -> None:
    name = f"test-loop-{next(_names)}"
    loop_thread = EventLoopThread(name=name)

    async def answer() -> tuple[int, str]:
        await asyncio.sleep(0)
        return 42, threading.current_thread().name

    try:
        future = loop_thread.submit(answer())
        assert isinstance(future, Future)
        assert future.get(timeout=WAIT) == (42, name)
    finally:
        loop_thread.stop()


def test_an_exception_fails_the_future_with_it(loop_thread: EventLoopThread) -> None:
    error = Boom("in the coroutine")

    async def broken() -> None:
        await asyncio.sleep(0)
        raise error

    future = loop_thread.submit(broken())
    with pytest.raises(Boom):
        future.get(timeout=WAIT)
    assert future.failure() is error


def test_discarding_cancels_a_running_coroutine(loop_thread: EventLoopThread) -> None:
    started, cancelled = threading.Event(), threading.Event()

    async def long() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    future = loop_thread.submit(long())
    assert started.wait(WAIT)
    assert future.discard() is True
    with pytest.raises(DiscardedError):
        future.get(timeout=WAIT)
    assert future.is_discarded()
    assert cancelled.wait(WAIT)


def test_discarding_before_the_coroutine_started_never_runs_it(
    loop_thread: EventLoopThread,
) -> None:
    entered, gate = threading.Event(), threading.Event()
    ran = threading.Event()

    async def hold_the_loop() -> None:
        entered.set()
        gate.wait(WAIT)  # blocks the loop's thread on purpose

    async def target() -> None:
        ran.set()

    async def afterwards() -> str:
        return "afterwards"

    held = loop_thread.submit(hold_the_loop())
    assert entered.wait(WAIT)
    future = loop_thread.submit(target())
    future.discard()
    later = loop_thread.submit(afterwards())
    gate.set()
    assert later.get(timeout=WAIT) == "afterwards"
    held.get(timeout=WAIT)
    assert future.is_discarded()
    assert not ran.is_set()


def test_a_slow_coroutine_does_not_hold_up_another(loop_thread: EventLoopThread) -> None:
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "slow"

    async def fast() -> str:
        release.set()
        return "fast"

    slow_future = loop_thread.submit(slow())
    assert loop_thread.submit(fast()).get(timeout=WAIT) == "fast"
    assert slow_future.get(timeout=WAIT) == "slow"


def test_a_coroutine_may_await_an_actors_future(loop_thread: EventLoopThread) -> None:
    promise: Promise[int] = Promise()

    async def waiting() -> int:
        return await promise.future + 1

    async def other() -> str:
        return "loop not blocked"

    result = loop_thread.submit(waiting())
    assert loop_thread.submit(other()).get(timeout=WAIT) == "loop not blocked"
    threading.Thread(target=promise.set, args=(1,), daemon=True).start()
    assert result.get(timeout=WAIT) == 2


def test_discarding_a_coroutine_passes_the_discard_to_what_it_awaits(
    loop_thread: EventLoopThread,
) -> None:
    promise: Promise[int] = Promise()
    started = threading.Event()

    async def waiting() -> int:
        started.set()
        return await promise.future

    result = loop_thread.submit(waiting())
    assert started.wait(WAIT)
    result.discard()
    assert result.is_discarded()
    # The cancellation reaches the awaited future as a discard request, on the loop.
    requested = threading.Event()
    promise.future.on_discard(requested.set)
    assert requested.wait(WAIT)
    assert promise.future.is_pending()


def test_stop_cancels_running_coroutines_and_joins_the_thread() -> None:
    name = f"test-loop-{next(_names)}"
    loop_thread = EventLoopThread(name=name)
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    future = loop_thread.submit(forever())
    assert started.wait(WAIT)
    (thread,) = threads_named(name)
    assert thread.is_alive()
    loop_thread.stop()
    assert not thread.is_alive()
    assert threads_named(name) == []
    with pytest.raises(DiscardedError):
        future.get(timeout=WAIT)


def test_stop_without_any_submit_is_harmless() -> None:
    name = f"test-loop-{next(_names)}"
    loop_thread = EventLoopThread(name=name)
    loop_thread.stop()
    assert threads_named(name) == []
    loop_thread.stop()
