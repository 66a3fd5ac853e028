"""Future and Promise: states, completion, callbacks, then, discard requests, after.

Modelled on the semantics libprocess's future_tests.cpp checks, plus the contract of
``actors.Future`` (including the parts of pykka's future interface it must honour).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

import pykka
import pytest

import actors
from actors import Actor, DiscardedError, Future, Promise, State, Timeout
from tests.support.waits import NEGATIVE_WAIT, WAIT

SHORT = 0.05  # an ``after`` delay that expires quickly


class Boom(Exception):
    """A recognisable failure."""


def run_in_thread(fn: Callable[[], object]) -> threading.Thread:
    """Run ``fn`` on a fresh daemon thread (so a deadlock cannot hang the suite)."""
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


# -- states and completion -------------------------------------------------------------


def test_new_promise_is_pending() -> None:
    promise: Promise[int] = Promise()
    future = promise.future
    assert future.is_pending()
    assert not future.is_ready()
    assert not future.is_failed()
    assert not future.is_discarded()
    assert not future.has_discard()
    assert future.failure() is None
    assert future.state is State.PENDING


def test_set_makes_the_future_ready() -> None:
    promise: Promise[str] = Promise()
    assert promise.set("value") is True
    future = promise.future
    assert future.is_ready()
    assert not future.is_pending()
    assert future.get() == "value"
    assert future.get(timeout=0) == "value"
    assert future.failure() is None


def test_fail_makes_the_future_failed_and_get_raises_that_exception() -> None:
    promise: Promise[int] = Promise()
    error = Boom("broken")
    assert promise.fail(error) is True
    future = promise.future
    assert future.is_failed()
    assert future.failure() is error
    with pytest.raises(Boom) as raised:
        future.get()
    assert raised.value is error


def test_promise_discard_makes_the_future_discarded() -> None:
    promise: Promise[int] = Promise()
    assert promise.discard() is True
    future = promise.future
    assert future.is_discarded()
    assert future.failure() is None
    with pytest.raises(DiscardedError):
        future.get()
    with pytest.raises(DiscardedError):
        future.get(timeout=0)


@pytest.mark.parametrize("first", ["set", "fail", "discard"])
def test_a_second_completion_returns_false_and_changes_nothing(first: str) -> None:
    promise: Promise[int] = Promise()
    completers: dict[str, Callable[[], bool]] = {
        "set": lambda: promise.set(1),
        "fail": lambda: promise.fail(Boom("first")),
        "discard": promise.discard,
    }
    assert completers[first]() is True
    state, failure = promise.future.state, promise.future.failure()
    value = promise.future.get() if first == "set" else None
    for name, complete in completers.items():
        assert complete() is False, name
        assert promise.future.state is state
        assert promise.future.failure() is failure
    # pykka's completion (what an actor calls) is ignored as well.
    promise.future.set(2)
    promise.future.set_exception((Boom, Boom("late"), None))
    assert promise.future.state is state
    assert promise.future.failure() is failure
    if first == "set":
        assert promise.future.get() == value


def test_completed_future_constructors() -> None:
    ready = Future.ready(7)
    assert ready.is_ready()
    assert ready.get() == 7

    error = Boom("x")
    failed = Future.failed(error)
    assert failed.is_failed()
    assert failed.failure() is error

    discarded = Future.discarded()
    assert discarded.is_discarded()
    with pytest.raises(DiscardedError):
        discarded.get()


def test_get_times_out_with_a_timeout_error() -> None:
    future: Future[int] = Promise[int]().future
    with pytest.raises(TimeoutError) as raised:
        future.get(timeout=NEGATIVE_WAIT)
    # It is also pykka's Timeout, so code written for pykka catches it too.
    assert isinstance(raised.value, pykka.Timeout)
    assert isinstance(raised.value, Timeout)
    assert future.is_pending()


def test_get_waits_for_a_value_set_by_another_thread() -> None:
    promise: Promise[int] = Promise()
    run_in_thread(lambda: promise.set(42))
    assert promise.future.get(timeout=WAIT) == 42


def test_get_without_timeout_blocks_until_completion() -> None:
    promise: Promise[int] = Promise()
    result: list[Any] = []
    done = threading.Event()

    def consumer() -> None:
        try:
            result.append(promise.future.get())
        except DiscardedError as error:
            result.append(error)
        done.set()

    run_in_thread(consumer)
    assert not done.wait(NEGATIVE_WAIT)
    promise.discard()
    assert done.wait(WAIT)
    assert isinstance(result[0], DiscardedError)


def test_discarded_error_is_the_exported_one() -> None:
    assert actors.DiscardedError is DiscardedError
    assert issubclass(DiscardedError, Exception)


# -- callbacks -----------------------------------------------------------------------


def test_on_any_runs_once_on_completion_with_the_future() -> None:
    promise: Promise[int] = Promise()
    seen: list[Future[int]] = []
    assert promise.future.on_any(seen.append) is promise.future
    assert seen == []
    promise.set(1)
    promise.set(2)
    assert seen == [promise.future]


@pytest.mark.parametrize("outcome", ["ready", "failed", "discarded"])
def test_callbacks_run_only_for_their_outcome(outcome: str) -> None:
    promise: Promise[int] = Promise()
    calls: list[tuple[str, object]] = []
    future = promise.future
    returned = [
        future.on_ready(lambda v: calls.append(("ready", v))),
        future.on_failed(lambda e: calls.append(("failed", e))),
        future.on_discarded(lambda: calls.append(("discarded", None))),
        future.on_any(lambda f: calls.append(("any", f))),
    ]
    assert all(r is future for r in returned)
    assert calls == []

    error = Boom("no")
    if outcome == "ready":
        promise.set(5)
        expected: object = 5
    elif outcome == "failed":
        promise.fail(error)
        expected = error
    else:
        promise.discard()
        expected = None
    assert sorted(calls, key=lambda c: c[0]) == [("any", future), (outcome, expected)]


@pytest.mark.parametrize("outcome", ["ready", "failed", "discarded"])
def test_callbacks_on_a_complete_future_run_at_once(outcome: str) -> None:
    error = Boom("done")
    future: Future[int]
    if outcome == "ready":
        future = Future.ready(3)
    elif outcome == "failed":
        future = Future.failed(error)
    else:
        future = Future.discarded()
    calls: list[tuple[str, object]] = []
    assert future.on_ready(lambda v: calls.append(("ready", v))) is future
    assert future.on_failed(lambda e: calls.append(("failed", e))) is future
    assert future.on_discarded(lambda: calls.append(("discarded", None))) is future
    assert future.on_any(lambda f: calls.append(("any", f))) is future
    expected = {"ready": 3, "failed": error, "discarded": None}[outcome]
    assert calls == [(outcome, expected), ("any", future)]


def test_callbacks_run_on_the_completing_thread() -> None:
    promise: Promise[int] = Promise()
    threads: list[threading.Thread] = []
    promise.future.on_any(lambda _: threads.append(threading.current_thread()))
    completer = run_in_thread(lambda: promise.set(1))
    completer.join(WAIT)
    assert threads == [completer]
    # Already complete: the callback runs in the registering thread.
    promise.future.on_ready(lambda _: threads.append(threading.current_thread()))
    assert threads[1] is threading.current_thread()


def test_raising_callback_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    promise: Promise[int] = Promise()
    calls: list[str] = []

    def bad(_: object) -> None:
        raise Boom("callback bug")

    promise.future.on_any(lambda _: calls.append("before"))
    promise.future.on_any(bad)
    promise.future.on_ready(bad)
    promise.future.on_any(lambda _: calls.append("after"))
    with caplog.at_level(logging.ERROR, logger="actors"):
        assert promise.set(1) is True
    assert calls == ["before", "after"]
    assert promise.future.get() == 1
    boom_records = [r for r in caplog.records if r.exc_info and r.exc_info[0] is Boom]
    assert len(boom_records) == 2

    # Registering a raising callback on a complete future does not raise either.
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="actors"):
        assert promise.future.on_any(bad) is promise.future
    assert any(r.exc_info and r.exc_info[0] is Boom for r in caplog.records)


def test_raising_discard_callback_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    future: Future[int] = Promise[int]().future
    calls: list[str] = []

    def bad() -> None:
        raise Boom("on_discard bug")

    future.on_discard(bad)
    future.on_discard(lambda: calls.append("second"))
    with caplog.at_level(logging.ERROR, logger="actors"):
        assert future.discard() is True
    assert calls == ["second"]
    assert any(r.exc_info and r.exc_info[0] is Boom for r in caplog.records)


def test_callbacks_may_use_their_own_future_without_deadlock() -> None:
    """No lock is held while a callback runs: re-entering the future must work."""
    promise: Promise[int] = Promise()
    future = promise.future
    seen: list[object] = []

    def reentrant(f: Future[int]) -> None:
        seen.append(f.get())
        seen.append(f.get(timeout=0))
        seen.append(f.is_ready())
        seen.append(f.failure())
        seen.append(f.discard())  # complete: a no-op
        f.on_any(lambda inner: seen.append(("nested", inner.get())))
        f.on_ready(lambda v: seen.append(("nested-ready", v)))
        f.on_discard(lambda: seen.append("never"))
        seen.append(promise.set(99))  # a second completion from inside a callback
        seen.append(f.then(lambda v: v + 1).get(timeout=0))

    future.on_any(reentrant)
    future.on_ready(lambda v: seen.append(("ready", v)))
    completer = run_in_thread(lambda: promise.set(1))
    completer.join(WAIT)
    assert not completer.is_alive(), "completing the future deadlocked in a callback"
    assert seen == [
        1,
        1,
        True,
        None,
        False,
        ("nested", 1),
        ("nested-ready", 1),
        False,
        2,
        ("ready", 1),
    ]


def test_discard_callbacks_may_use_their_own_future_without_deadlock() -> None:
    promise: Promise[int] = Promise()
    future = promise.future
    seen: list[object] = []

    def on_discard() -> None:
        seen.append(future.has_discard())
        seen.append(future.discard())  # already requested
        future.on_discard(lambda: seen.append("late"))  # runs at once: already requested
        future.on_any(lambda f: seen.append(f.state))
        seen.append(promise.discard())  # the producer honours the request right here

    future.on_discard(on_discard)
    requester = run_in_thread(future.discard)
    requester.join(WAIT)
    assert not requester.is_alive(), "discard() deadlocked in an on_discard callback"
    assert seen == [True, False, "late", State.DISCARDED, True]
    assert future.is_discarded()


def test_callback_registered_inside_a_callback_during_completion_runs() -> None:
    promise: Promise[int] = Promise()
    other: Promise[int] = Promise()
    order: list[str] = []
    promise.future.on_any(lambda _: other.future.on_any(lambda _: order.append("other")))
    promise.future.on_any(lambda _: other.set(1))
    promise.set(0)
    assert order == ["other"]


# -- discard requests ----------------------------------------------------------------


def test_discard_is_only_a_request() -> None:
    promise: Promise[int] = Promise()
    future = promise.future
    assert future.discard() is True
    assert future.has_discard()
    assert future.is_pending()
    assert future.discard() is False  # already requested
    # The producer decides: it may still set a value.
    assert promise.set(5) is True
    assert future.is_ready()
    assert future.get() == 5


def test_producer_may_fail_after_a_discard_request() -> None:
    promise: Promise[int] = Promise()
    promise.future.discard()
    assert promise.fail(Boom("x")) is True
    assert promise.future.is_failed()


def test_discard_of_a_complete_future_does_nothing() -> None:
    future = Future.ready(1)
    calls: list[str] = []
    future.on_discard(lambda: calls.append("discard"))
    assert future.discard() is False
    assert not future.has_discard()
    assert future.is_ready()
    assert calls == []


def test_on_discard_runs_once_when_a_discard_is_requested() -> None:
    future: Future[int] = Promise[int]().future
    calls: list[str] = []
    assert future.on_discard(lambda: calls.append("a")) is future
    future.on_discard(lambda: calls.append("b"))
    assert calls == []
    future.discard()
    future.discard()
    assert calls == ["a", "b"]
    # Registered after the request: runs at once.
    future.on_discard(lambda: calls.append("c"))
    assert calls == ["a", "b", "c"]


def test_on_discard_never_runs_once_the_future_completed() -> None:
    promise: Promise[int] = Promise()
    calls: list[str] = []
    promise.future.on_discard(lambda: calls.append("registered before completion"))
    promise.set(1)
    promise.future.discard()
    promise.future.on_discard(lambda: calls.append("registered after completion"))
    assert calls == []


def test_producer_stops_work_through_on_discard() -> None:
    """The libprocess pattern: the producer discards its promise when asked to."""
    promise: Promise[int] = Promise()
    promise.future.on_discard(promise.discard)
    promise.future.discard()
    assert promise.future.is_discarded()


# -- then ----------------------------------------------------------------------------


def test_then_with_a_plain_value_and_with_a_future() -> None:
    promise: Promise[int] = Promise()
    promise.set(42)
    as_value = promise.future.then(str)
    assert as_value.is_ready()
    assert as_value.get() == "42"
    as_future = promise.future.then(lambda v: Future.ready(str(v)))
    assert as_future.is_ready()
    assert as_future.get() == "42"


def test_then_waits_for_the_source_and_for_a_returned_future() -> None:
    source: Promise[int] = Promise()
    inner: Promise[str] = Promise()
    calls: list[int] = []

    def step(value: int) -> Future[str]:
        calls.append(value)
        return inner.future

    result = source.future.then(step)
    assert result.is_pending()
    assert calls == []
    source.set(3)
    assert calls == [3]
    assert result.is_pending()
    inner.set("three")
    assert result.get(timeout=0) == "three"


def test_then_chain_like_libprocess() -> None:
    chained = Future.ready(True).then(lambda b: "true" if b else "false").then(Future.ready)
    assert chained.get(timeout=WAIT) == "true"

    failed = Future.failed(Boom("not positive")).then(lambda b: "x").then(lambda s: s)
    assert failed.is_failed()

    promise: Promise[bool] = Promise()
    pending = promise.future.then(str).then(lambda s: s + "!")
    assert pending.is_pending()
    promise.discard()
    assert pending.is_discarded()


def test_then_passes_failure_and_discard_through_without_calling_fn() -> None:
    calls: list[object] = []
    error = Boom("upstream")
    failed = Future.failed(error).then(calls.append)
    assert failed.is_failed()
    assert failed.failure() is error

    discarded = Future.discarded().then(calls.append)
    assert discarded.is_discarded()

    promise: Promise[int] = Promise()
    later = promise.future.then(calls.append)
    promise.fail(error)
    assert later.failure() is error
    assert calls == []


def test_exception_in_then_fails_the_result_with_it() -> None:
    error = Boom("fn broke")

    def broken(_: int) -> int:
        raise error

    result = Future.ready(1).then(broken)
    assert result.is_failed()
    assert result.failure() is error

    promise: Promise[int] = Promise()
    later = promise.future.then(broken)
    promise.set(1)
    assert later.failure() is error


def test_then_result_follows_a_failed_or_discarded_returned_future() -> None:
    error = Boom("inner")
    assert Future.ready(1).then(lambda _: Future.failed(error)).failure() is error
    assert Future.ready(1).then(lambda _: Future.discarded()).is_discarded()


def test_discarding_a_then_result_asks_the_source_to_discard() -> None:
    source: Promise[int] = Promise()
    calls: list[int] = []
    result = source.future.then(calls.append)
    assert result.discard() is True
    assert source.future.has_discard()
    assert result.has_discard()
    # Still a request: both stay pending until the producer acts.
    assert result.is_pending()
    assert source.future.is_pending()
    source.discard()
    assert result.is_discarded()
    assert calls == []


def test_discard_reaches_the_future_fn_returned_but_not_later_steps() -> None:
    """libprocess Discard1: the discard request goes to the running step only."""
    first: Promise[bool] = Promise()
    second: Promise[int] = Promise()
    executed = threading.Event()

    def run_second(_: bool) -> Future[int]:
        executed.set()
        return second.future

    result = Future.ready("hello").then(lambda _: first.future).then(run_second)
    assert result.is_pending()
    result.discard()
    assert result.has_discard()
    assert result.is_pending()
    assert first.future.has_discard()
    assert not second.future.has_discard()
    assert first.discard() is True
    assert result.is_discarded()
    assert not executed.is_set()
    assert second.future.is_pending()


def test_then_does_not_continue_once_a_discard_was_requested() -> None:
    """libprocess Discard2: the producer sets a value anyway; the chain still stops."""
    first: Promise[bool] = Promise()
    second: Promise[int] = Promise()
    executed = threading.Event()

    def run_second(_: bool) -> Future[int]:
        executed.set()
        return second.future

    result = Future.ready("hello").then(lambda _: first.future).then(run_second)
    result.discard()
    assert first.set(True) is True
    assert result.is_discarded()
    assert not executed.is_set()
    assert second.future.is_pending()


def test_failure_after_a_discard_request_still_fails_the_chain() -> None:
    """libprocess Discard3."""
    first: Promise[bool] = Promise()
    executed = threading.Event()
    result = Future.ready("hello").then(lambda _: first.future).then(lambda _: executed.set())
    result.discard()
    error = Boom("failure message")
    assert first.fail(error) is True
    assert result.failure() is error
    assert not executed.is_set()


def test_discard_after_then_has_run_reaches_the_returned_future() -> None:
    source: Promise[int] = Promise()
    inner: Promise[int] = Promise()
    result = source.future.then(lambda _: inner.future)
    source.set(1)
    assert not inner.future.has_discard()
    result.discard()
    assert inner.future.has_discard()
    inner.discard()
    assert result.is_discarded()


# -- associate (libprocess Promise::associate) -----------------------------------------


def test_associate_follows_every_outcome_and_passes_discard_requests_on() -> None:
    p1: Promise[bool] = Promise()
    p1.associate(Future.ready(True))
    assert p1.future.get(timeout=0) is True

    p2: Promise[bool] = Promise()
    source2: Promise[bool] = Promise()
    p2.associate(source2.future)
    source2.discard()
    assert p2.future.is_discarded()

    p3: Promise[bool] = Promise()
    source3: Promise[bool] = Promise()
    p3.associate(source3.future)
    error = Boom("associate")
    source3.fail(error)
    assert p3.future.failure() is error

    p4: Promise[bool] = Promise()
    source4: Promise[bool] = Promise()
    p4.associate(source4.future)
    p4.future.discard()
    assert source4.future.has_discard()
    assert not source4.future.is_discarded()


# -- after ---------------------------------------------------------------------------


def test_after_calls_fn_with_the_future_when_it_is_still_pending() -> None:
    promise: Promise[int] = Promise()
    seen: list[Future[int]] = []

    def expired(f: Future[int]) -> int:
        seen.append(f)
        return -1

    result = promise.future.after(SHORT, expired)
    assert result.is_pending()
    assert result.get(timeout=WAIT) == -1
    assert seen == [promise.future]
    # The source is left alone: only fn decides what happens to it.
    assert promise.future.is_pending()


def test_after_fn_may_return_a_future_or_raise() -> None:
    inner: Promise[int] = Promise()
    via_future = Promise[int]().future.after(SHORT, lambda _: inner.future)
    error = Boom("timed out")

    def raising(_: Future[int]) -> int:
        raise error

    via_raise = Promise[int]().future.after(SHORT, raising)
    with pytest.raises(Boom):
        via_raise.get(timeout=WAIT)
    assert via_raise.failure() is error
    assert via_future.is_pending()
    inner.set(8)
    assert via_future.get(timeout=WAIT) == 8


@pytest.mark.parametrize("outcome", ["ready", "failed", "discarded"])
def test_after_takes_the_source_outcome_when_it_completes_in_time(outcome: str) -> None:
    promise: Promise[int] = Promise()
    called = threading.Event()

    def expired(_: Future[int]) -> int:
        called.set()
        return -1

    result = promise.future.after(NEGATIVE_WAIT / 2, expired)
    error = Boom("late")
    if outcome == "ready":
        promise.set(1)
        assert result.get(timeout=WAIT) == 1
    elif outcome == "failed":
        promise.fail(error)
        assert result.failure() is error
    else:
        promise.discard()
        assert result.is_discarded()
    # The timer was cancelled: fn never runs, even after its delay is long past.
    assert not called.wait(NEGATIVE_WAIT)


def test_after_result_stays_pending_on_discard_and_passes_it_on() -> None:
    """libprocess After1: discarding keeps the result pending until fn has run."""
    source: Promise[int] = Promise()
    saw_discard: list[bool] = []

    def expired(f: Future[int]) -> Future[int]:
        saw_discard.append(f.has_discard())
        return Future.failed(Boom("timeout"))

    result = source.future.after(NEGATIVE_WAIT, expired)
    result.discard()
    assert result.is_pending()
    assert source.future.has_discard()
    with pytest.raises(Boom):
        result.get(timeout=WAIT)
    assert saw_discard == [True]


def test_after_on_a_complete_future_never_calls_fn() -> None:
    called = threading.Event()

    def expired(_: Future[int]) -> int:
        called.set()
        return 0

    result = Future.ready(5).after(SHORT, expired)
    assert result.get(timeout=0) == 5
    assert not called.wait(NEGATIVE_WAIT)


# -- pykka's future interface ----------------------------------------------------------


def test_is_a_pykka_future_and_works_with_get_all() -> None:
    futures = [Future.ready(1), Future.ready(2)]
    assert all(isinstance(f, pykka.Future) for f in futures)
    assert list(pykka.get_all(futures, timeout=WAIT)) == [1, 2]
    with pytest.raises(pykka.Timeout):
        pykka.get_all([Future.ready(1), Promise[int]().future], timeout=NEGATIVE_WAIT)


def test_get_keyword_timeout_as_pykka_calls_it() -> None:
    future: pykka.Future[int] = Future.ready(3)
    assert future.get(timeout=1) == 3


def test_pykka_set_and_set_exception() -> None:
    future: Future[int] = Future()
    future.set(4)
    assert future.get() == 4
    future.set(5)  # pykka would raise; a second completion is ignored
    assert future.get() == 4

    failing: Future[int] = Future()
    error = Boom("pykka style")
    failing.set_exception((Boom, error, None))
    assert failing.failure() is error

    from_except: Future[int] = Future()
    try:
        raise Boom("inside except")
    except Boom:
        from_except.set_exception()
    with pytest.raises(Boom, match="inside except"):
        from_except.get()

    exc_info_future: Future[int] = Future()
    try:
        raise Boom("exc_info")
    except Boom:
        exc_info_future.set_exception(sys.exc_info())
    failure = exc_info_future.failure()
    assert isinstance(failure, Boom)
    assert failure.__traceback__ is not None


def test_pykka_set_with_a_future_follows_it() -> None:
    inner: Promise[int] = Promise()
    outer: Future[int] = Future()
    outer.set(inner.future)  # type: ignore[arg-type]
    assert outer.is_pending()
    outer.discard()
    assert inner.future.has_discard()
    inner.set(6)
    assert outer.get(timeout=0) == 6


def test_map_filter_reduce_join_are_eager_and_complete() -> None:
    # Iterable, not list: pykka's filter/reduce are typed on Future[Iterable[J]].
    source: Promise[Iterable[int]] = Promise()
    mapped = source.future.map(lambda values: len(list(values)))
    filtered = source.future.filter(lambda x: x > 1)
    reduced = source.future.reduce(lambda acc, x: acc + x)
    reduced_init = source.future.reduce(lambda acc, x: acc + x, 100)
    other: Promise[str] = Promise()
    joined = source.future.join(other.future, Future.ready("z"))
    for f in (mapped, filtered, reduced, reduced_init, joined):
        assert isinstance(f, Future)
        assert f.is_pending()
    source.set([1, 2, 3])
    other.set("y")
    assert mapped.get(timeout=0) == 3
    assert list(filtered.get(timeout=0)) == [2, 3]
    assert reduced.get(timeout=0) == 6
    assert reduced_init.get(timeout=0) == 106
    assert list(joined.get(timeout=0)) == [[1, 2, 3], "y", "z"]
    # Eager futures carry callbacks like any other.
    seen: list[int] = []
    mapped.on_ready(seen.append)
    assert seen == [3]


def test_join_fails_when_one_joined_future_fails() -> None:
    error = Boom("joined")
    joined = Future.ready(1).join(Future.failed(error))
    assert joined.failure() is error


def test_await_in_asyncio_does_not_block_the_loop() -> None:
    promise: Promise[int] = Promise()

    async def main() -> list[object]:
        order: list[object] = []

        async def other() -> None:
            order.append("other ran while the future was pending")
            await asyncio.sleep(0)
            promise.set(11)

        task = asyncio.create_task(other())
        order.append(await promise.future)
        await task
        return order

    assert asyncio.run(main()) == ["other ran while the future was pending", 11]


def test_await_raises_failures_and_discards() -> None:
    error = Boom("awaited")

    async def awaiting(f: Future[int]) -> int:
        return await f

    with pytest.raises(Boom):
        asyncio.run(awaiting(Future.failed(error)))
    with pytest.raises(DiscardedError):
        asyncio.run(awaiting(Future.discarded()))


def test_cancelling_an_await_requests_a_discard() -> None:
    promise: Promise[int] = Promise()

    async def main() -> None:
        task = asyncio.create_task(_await(promise.future))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert promise.future.has_discard()
    assert promise.future.is_pending()


async def _await(future: Future[int]) -> int:
    return await future


class _Quiet(Actor):
    pass


def test_pykka_stop_future_with_get_hook_works() -> None:
    """``ActorRef.stop(block=False)`` builds a future with a get hook on our class."""
    ref = _Quiet.start()
    stopped = ref.stop(block=False)
    assert isinstance(stopped, Future)
    assert stopped.get(timeout=WAIT) is True
    assert ref.stop(timeout=WAIT) is False  # already dead
