"""``Sequence``: libprocess's sequence_tests.cpp semantics plus our contract."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

from actors import DiscardedError, Future, Promise, Sequence
from tests.support.waits import NEGATIVE_WAIT, WAIT


class Boom(Exception):
    """A recognisable failure."""


@pytest.fixture
def sequence() -> Iterator[Sequence]:
    seq = Sequence()
    yield seq
    seq.stop().get(timeout=WAIT)


class Recorder:
    """Callables for ``add`` that note when they are called."""

    def __init__(self) -> None:
        self.calls: list[object] = []
        self.lock = threading.Lock()

    def item(self, name: object, result: object = None) -> Callable[[], Any]:
        def fn() -> Any:
            with self.lock:
                self.calls.append(name)
            return result if result is not None else name

        return fn


def block_sequence(seq: Sequence) -> tuple[Future[None], threading.Event]:
    """Add an item that holds the sequence's own thread until the event is set."""
    entered, gate = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        gate.wait(WAIT)

    held = seq.add(hold)
    assert entered.wait(WAIT)
    return held, gate


def started_item(result: Future[Any], started: threading.Event) -> Callable[[], Future[Any]]:
    """An item that returns ``result`` and tells when it has been called."""

    def fn() -> Future[Any]:
        started.set()
        return result

    return fn


# -- order and chaining ----------------------------------------------------------------


def test_items_run_in_add_order(sequence: Sequence) -> None:
    recorder = Recorder()
    futures = [sequence.add(recorder.item(i)) for i in range(50)]
    assert [f.get(timeout=WAIT) for f in futures] == list(range(50))
    assert recorder.calls == list(range(50))


def test_next_item_waits_until_the_previous_future_completes(sequence: Sequence) -> None:
    """libprocess Serialize: an item returning a pending future holds back the next."""
    first: Promise[str] = Promise()
    recorder = Recorder()
    f1 = sequence.add(lambda: first.future)
    f2 = sequence.add(recorder.item("second"))
    with pytest.raises(TimeoutError):
        f2.get(timeout=NEGATIVE_WAIT)
    assert recorder.calls == []
    assert f1.is_pending()
    first.set("first")
    assert f1.get(timeout=WAIT) == "first"
    assert f2.get(timeout=WAIT) == "second"
    assert recorder.calls == ["second"]


def test_add_gives_the_outcome_of_fn(sequence: Sequence) -> None:
    error = Boom("item")

    def raising() -> None:
        raise error

    later: Promise[int] = Promise()
    value = sequence.add(lambda: 1)
    failed = sequence.add(raising)
    flattened = sequence.add(lambda: later.future)
    assert isinstance(value, Future)
    assert value.get(timeout=WAIT) == 1
    with pytest.raises(Boom):
        failed.get(timeout=WAIT)
    assert failed.failure() is error
    later.set(3)
    assert flattened.get(timeout=WAIT) == 3


def test_a_failure_or_discard_never_stalls_the_chain(sequence: Sequence) -> None:
    recorder = Recorder()

    def raising() -> None:
        recorder.calls.append("raising")
        raise Boom("raised")

    failing: Promise[int] = Promise()
    discarding: Promise[int] = Promise()
    f1 = sequence.add(raising)
    f2 = sequence.add(lambda: failing.future)
    f3 = sequence.add(lambda: discarding.future)
    f4 = sequence.add(recorder.item("last"))
    with pytest.raises(Boom, match="raised"):
        f1.get(timeout=WAIT)
    assert f4.is_pending()  # held back by the item returning ``failing``
    failing.fail(Boom("failed future"))
    assert f4.is_pending()
    discarding.discard()
    assert f4.get(timeout=WAIT) == "last"
    assert f1.is_failed()
    assert f2.is_failed()
    assert f3.is_discarded()
    assert recorder.calls == ["raising", "last"]


def test_a_discarded_item_is_skipped(sequence: Sequence) -> None:
    """libprocess DiscardOne: discarding a waiting item skips it, the rest go on."""
    first: Promise[str] = Promise()
    recorder = Recorder()
    f0 = sequence.add(lambda: first.future)
    f1 = sequence.add(recorder.item(1))
    f2 = sequence.add(recorder.item(2))
    f3 = sequence.add(recorder.item(3))
    assert f2.discard() is True
    assert f2.is_pending()  # a request: the sequence acts on it when its turn comes
    first.set("go")
    assert f3.get(timeout=WAIT) == 3
    assert f0.get(timeout=0) == "go"
    assert f1.get(timeout=0) == 1
    with pytest.raises(DiscardedError):
        f2.get(timeout=0)
    assert recorder.calls == [1, 3]


def test_a_discard_counts_even_before_the_actor_handled_the_add(sequence: Sequence) -> None:
    held, gate = block_sequence(sequence)  # the actor cannot read its inbox now
    recorder = Recorder()
    skipped = sequence.add(recorder.item("skipped"))
    skipped.discard()
    after = sequence.add(recorder.item("after"))
    gate.set()
    assert after.get(timeout=WAIT) == "after"
    held.get(timeout=WAIT)
    assert skipped.is_discarded()
    assert recorder.calls == ["after"]


def test_discarding_the_running_item_reaches_the_future_it_returned(sequence: Sequence) -> None:
    inner: Promise[int] = Promise()
    running = sequence.add(started_item(inner.future, started := threading.Event()))
    next_item = sequence.add(lambda: "next")
    assert started.wait(WAIT)
    assert not inner.future.has_discard()
    running.discard()
    assert inner.future.has_discard()
    assert running.is_pending()
    inner.discard()
    assert running.is_discarded()
    assert next_item.get(timeout=WAIT) == "next"


def test_random_pulses_never_interleave(sequence: Sequence) -> None:
    """libprocess Random: an item's asynchronous work is over before the next item."""
    rng = random.Random(1234)
    value = [0]
    violations: list[int] = []
    done = threading.Event()

    def pulse() -> Future[None]:
        value[0] += 1
        promise: Promise[None] = Promise()

        def finish() -> None:
            value[0] -= 1
            promise.set(None)

        threading.Thread(target=finish, daemon=True).start()
        return promise.future

    def verify() -> None:
        if value[0] != 0:
            violations.append(value[0])

    for _ in range(100):
        sequence.add(pulse if rng.random() < 0.5 else verify)
    sequence.add(done.set)
    assert done.wait(WAIT)
    assert violations == []


# -- stop ----------------------------------------------------------------------------


def test_stop_discards_waiting_items_and_asks_the_running_one_to_discard() -> None:
    """libprocess DiscardAll, without waiting for the running item."""
    seq = Sequence()
    assert seq.is_alive()  # Sequence() starts its own actor
    inner: Promise[str] = Promise()
    recorder = Recorder()
    f0 = seq.add(started_item(inner.future, started := threading.Event()))
    waiting = [seq.add(recorder.item(i)) for i in range(3)]
    assert started.wait(WAIT)
    stopped = seq.stop()
    # Ready although the running item is still pending: stop does not wait for it.
    assert stopped.get(timeout=WAIT) is None
    assert f0.is_pending()
    assert inner.future.has_discard()
    for future in waiting:
        with pytest.raises(DiscardedError):
            future.get(timeout=WAIT)
    # The running item's producer still decides how it ends.
    inner.set("finished anyway")
    assert f0.get(timeout=WAIT) == "finished anyway"
    assert recorder.calls == []
    assert not seq.is_alive()


def test_stop_never_calls_an_item_added_before_it(sequence: Sequence) -> None:
    """An item not yet started when ``stop()`` is called is never called."""
    held, gate = block_sequence(sequence)
    recorder = Recorder()
    queued = sequence.add(recorder.item("queued"))  # its add is not even handled yet
    stopped = sequence.stop()
    gate.set()
    stopped.get(timeout=WAIT)
    held.get(timeout=WAIT)
    with pytest.raises(DiscardedError):
        queued.get(timeout=WAIT)
    assert recorder.calls == []


def test_stop_right_after_the_previous_item_completed() -> None:
    """The previous item is done and the next one's start is already queued: once
    ``stop()`` has returned, that next item must not be called."""
    late_calls = 0
    for _ in range(20):
        seq = Sequence()
        first: Promise[None] = Promise()
        stop_returned = threading.Event()
        called_late = threading.Event()

        def second(
            flag: threading.Event = stop_returned, late: threading.Event = called_late
        ) -> str:
            if flag.is_set():
                late.set()
            return "second"

        started = threading.Event()
        seq.add(started_item(first.future, started))
        result = seq.add(second)
        # Once the first item runs, the add of the second has been handled too.
        assert started.wait(WAIT)
        first.set(None)  # the start of ``second`` is queued right here, on this thread
        stopped = seq.stop()
        stop_returned.set()
        stopped.get(timeout=WAIT)
        assert result.wait(WAIT)
        late_calls += called_late.is_set()
        # Whichever way the race went, the outcome matches whether it was called.
        assert result.is_ready() or result.is_discarded()
    assert late_calls == 0


def test_add_after_stop_is_discarded_and_never_called() -> None:
    seq = Sequence()
    recorder = Recorder()
    stopped = seq.stop()
    late = seq.add(recorder.item("late"))
    stopped.get(timeout=WAIT)
    later = seq.add(recorder.item("later"))
    assert late.wait(WAIT)
    assert late.is_discarded()
    assert later.is_discarded()
    assert recorder.calls == []
    assert seq.stop().get(timeout=WAIT) is None  # stopping again is harmless


def test_add_while_the_actor_is_being_stopped_from_outside(sequence: Sequence) -> None:
    """Stopped by the registry (application shutdown): a queued add still completes."""
    held, gate = block_sequence(sequence)
    recorder = Recorder()
    pykka.ActorRegistry.stop_all(block=False)  # queues the stop behind the held item
    late = sequence.add(recorder.item("late"))  # queued behind the stop
    gate.set()
    assert late.wait(WAIT), "an add queued behind the actor's stop never completed"
    assert late.is_discarded()
    assert recorder.calls == []
    held.get(timeout=WAIT)


# -- independence ----------------------------------------------------------------------


def test_a_slow_item_never_delays_another_sequence() -> None:
    slow, fast = Sequence(), Sequence()
    try:
        held, gate = block_sequence(slow)
        pending: Promise[None] = Promise()
        slow.add(lambda: pending.future)
        results = [fast.add(lambda i=i: i) for i in range(10)]  # type: ignore[misc]
        assert [f.get(timeout=WAIT) for f in results] == list(range(10))
        assert held.is_pending()
        gate.set()
        held.get(timeout=WAIT)
    finally:
        slow.stop().get(timeout=WAIT)
        fast.stop().get(timeout=WAIT)
