"""``collect`` and ``await_``: the semantics of libprocess's collect_tests.cpp and our contract."""

from __future__ import annotations

from typing import Any

from actors import DiscardedError, Future, Promise, await_, collect
from tests.support.waits import WAIT


class Boom(Exception):
    """A recognisable failure."""


def promises(count: int) -> list[Promise[int]]:
    return [Promise() for _ in range(count)]


def honouring_discard(promise: Promise[Any]) -> Promise[Any]:
    """A producer that discards its promise as soon as a discard is requested."""
    promise.future.on_discard(promise.discard)
    return promise


# -- collect -------------------------------------------------------------------------


def test_collect_of_nothing_is_ready_at_once() -> None:
    result: Future[list[int]] = collect([])
    assert result.is_ready()
    assert result.get(timeout=0) == []


def test_collect_keeps_input_order_when_inputs_complete_out_of_order() -> None:
    ps = promises(4)
    result = collect(p.future for p in ps)  # any iterable will do
    for index in (3, 1, 0):
        ps[index].set(index + 1)
        assert result.is_pending()
    ps[2].set(3)
    assert result.get(timeout=0) == [1, 2, 3, 4]


def test_collect_of_already_complete_inputs() -> None:
    ps = promises(4)
    for index in (3, 1, 0, 2):
        ps[index].set(index + 1)
    assert collect([p.future for p in ps]).get(timeout=0) == [1, 2, 3, 4]


def test_collect_fails_as_soon_as_one_input_fails() -> None:
    ps = promises(3)
    result = collect([p.future for p in ps])
    ps[0].set(1)
    error = Boom("second input")
    ps[1].fail(error)
    # Not waiting for the third input: failed right away, with the input's own exception.
    assert result.is_failed()
    assert result.failure() is error
    assert ps[2].future.is_pending()


def test_collect_fails_with_the_first_failure() -> None:
    ps = promises(3)
    result = collect([p.future for p in ps])
    first, second = Boom("first"), Boom("second")
    ps[2].fail(first)
    ps[0].fail(second)
    assert result.failure() is first


def test_collect_fails_when_an_input_is_discarded() -> None:
    ps = promises(2)
    result = collect([p.future for p in ps])
    ps[1].discard()
    assert result.is_failed()
    assert isinstance(result.failure(), DiscardedError)
    assert ps[0].future.is_pending()


def test_collect_with_an_already_failed_input_fails_at_once() -> None:
    error = Boom("early")
    result = collect([Promise[int]().future, Future.failed(error)])
    assert result.failure() is error
    discarded = collect([Promise[int]().future, Future.discarded()])
    assert isinstance(discarded.failure(), DiscardedError)


def test_collect_ignores_what_happens_after_it_failed() -> None:
    ps = promises(2)
    error = Boom("x")
    result = collect([p.future for p in ps])
    ps[0].fail(error)
    ps[1].set(2)
    assert result.failure() is error


def test_discarding_collect_discards_every_input() -> None:
    """libprocess DiscardPropagation: producers that honour the request."""
    ps = [honouring_discard(p) for p in promises(2)]
    result = collect([p.future for p in ps])
    assert result.discard() is True
    assert result.is_discarded()
    assert all(p.future.is_discarded() for p in ps)


def test_discarding_collect_requests_a_discard_of_each_pending_input() -> None:
    ps = promises(3)
    ps[0].set(0)
    result = collect([p.future for p in ps])
    result.discard()
    assert result.is_discarded()
    assert ps[1].future.has_discard()
    assert ps[2].future.has_discard()
    # A request only: these producers did not act on it.
    assert ps[1].future.is_pending()
    assert ps[2].future.is_pending()
    assert ps[0].future.is_ready()


def test_discarding_collect_while_a_producer_fails_instead() -> None:
    """An input that fails when asked to discard does not turn the discard into a failure."""
    p: Promise[int] = Promise()
    p.future.on_discard(lambda: p.fail(Boom("could not stop")))
    result = collect([p.future, Promise[int]().future])
    result.discard()
    assert result.is_discarded()


# -- await_ --------------------------------------------------------------------------


def test_await_of_nothing_is_ready_at_once() -> None:
    result: Future[list[Future[int]]] = await_([])
    assert result.is_ready()
    assert result.get(timeout=0) == []


def test_await_gives_the_input_futures_in_order() -> None:
    ps = promises(4)
    futures = [p.future for p in ps]
    result = await_(iter(futures))
    for index in (3, 1, 0):
        ps[index].set(index + 1)
        assert result.is_pending()
    ps[2].set(3)
    awaited = result.get(timeout=0)
    assert len(awaited) == 4
    assert all(a is f for a, f in zip(awaited, futures, strict=True))
    assert [f.get(timeout=0) for f in awaited] == [1, 2, 3, 4]


def test_await_never_fails_because_an_input_failed() -> None:
    ps = promises(3)
    result = await_([p.future for p in ps])
    ps[0].set(42)
    assert result.is_pending()
    error = Boom("failure message")
    ps[1].fail(error)
    assert result.is_pending()  # still waiting for the third
    ps[2].discard()
    awaited = result.get(timeout=0)
    assert awaited[0].get(timeout=0) == 42
    assert awaited[1].failure() is error
    assert awaited[2].is_discarded()


def test_await_of_already_complete_inputs() -> None:
    inputs: list[Future[int]] = [Future.ready(1), Future.failed(Boom("x")), Future.discarded()]
    result = await_(inputs)
    assert result.is_ready()
    assert result.get(timeout=0) == inputs


def test_discarding_await_discards_every_input() -> None:
    """libprocess DiscardPropagation for await."""
    ps = [honouring_discard(p) for p in promises(2)]
    result = await_([p.future for p in ps])
    assert result.discard() is True
    assert result.is_discarded()
    assert all(p.future.is_discarded() for p in ps)


def test_discarding_await_requests_a_discard_of_each_pending_input() -> None:
    ps = promises(2)
    result = await_([p.future for p in ps])
    result.discard()
    assert result.is_discarded()
    assert all(p.future.has_discard() and p.future.is_pending() for p in ps)


def test_await_single_then_chain_passes_discard_down() -> None:
    """libprocess AwaitSingleDiscard: a discard of the outer chain reaches the producer."""
    promise: Promise[int] = Promise()
    result = await_([promise.future]).then(lambda futures: futures[0].then(str))
    result.discard()
    assert result.is_discarded()
    assert promise.future.has_discard()


def test_collect_then_chain_gets_values() -> None:
    ps = promises(2)
    total = collect([p.future for p in ps]).then(sum)
    ps[1].set(2)
    ps[0].set(40)
    assert total.get(timeout=WAIT) == 42
