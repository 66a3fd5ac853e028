"""``Actor`` (asks give ``actors.Future``s, dispatch flattening) and ``defer``."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from actors import Actor, DiscardedError, Future, Promise, defer
from tests.support.waits import WAIT


class Boom(Exception):
    """A recognisable failure."""


class Worker(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.log: list[object] = []
        self.attribute = "an attribute"

    def thread_name(self) -> str:
        return threading.current_thread().name

    def echo(self, value: object) -> object:
        return value

    def record(self, value: object) -> None:
        self.log.append(value)

    def append_to(self, target: list[str], value: str) -> None:
        target.append(value)

    def get_log(self) -> list[object]:
        return list(self.log)

    def explode(self, error: BaseException) -> None:
        raise error

    def hand_back(self, future: Future[Any]) -> Future[Any]:
        """Return a future: the caller's future must follow it without blocking us."""
        self.log.append("handed back")
        return future

    def block(self, entered: threading.Event, gate: threading.Event) -> None:
        entered.set()
        gate.wait(WAIT)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Future):
            return message  # flattening for plain asks as well
        if isinstance(message, tuple) and message[0] == "append":
            message[1].append(message[2])
            return None
        return ("received", message)


class PlainPykka(pykka.ThreadingActor):
    pass


@pytest.fixture
def worker() -> Any:
    ref = Worker.start()
    yield ref
    ref.stop(timeout=WAIT)


def blocked(ref: pykka.ActorRef[Worker]) -> threading.Event:
    """Keep the actor busy until the returned event is set."""
    entered, gate = threading.Event(), threading.Event()
    ref.proxy().block(entered, gate)
    assert entered.wait(WAIT)
    return gate


# -- asks and proxies ------------------------------------------------------------------


def test_asks_and_proxy_calls_give_actors_futures(worker: pykka.ActorRef[Worker]) -> None:
    proxy = worker.proxy()
    call = proxy.echo(1)
    attribute = proxy.attribute
    asked = worker.ask("hi", block=False)
    for future in (call, attribute, asked):
        assert isinstance(future, Future)
    assert call.get(timeout=WAIT) == 1
    assert attribute.get(timeout=WAIT) == "an attribute"
    assert asked.get(timeout=WAIT) == ("received", "hi")
    assert worker.ask("blocking", timeout=WAIT) == ("received", "blocking")
    # Callbacks work on them, as on any actors.Future.
    seen: list[object] = []
    proxy.echo(2).on_ready(seen.append).get(timeout=WAIT)
    assert seen == [2]


def test_a_raising_method_fails_the_callers_future(worker: pykka.ActorRef[Worker]) -> None:
    error = Boom("in the actor")
    future = worker.proxy().explode(error)
    with pytest.raises(Boom):
        future.get(timeout=WAIT)
    assert future.failure() is error
    # The actor survives a failed ask.
    assert worker.proxy().echo("alive").get(timeout=WAIT) == "alive"


def test_returned_future_does_not_block_the_actor(worker: pykka.ActorRef[Worker]) -> None:
    promise: Promise[str] = Promise()
    proxy = worker.proxy()
    flattened = proxy.hand_back(promise.future)
    # The actor keeps answering while the returned future is pending.
    assert proxy.echo("still answering").get(timeout=WAIT) == "still answering"
    assert proxy.get_log().get(timeout=WAIT) == ["handed back"]
    assert flattened.is_pending()
    promise.set("done")
    # The caller gets the value, not the inner future.
    assert flattened.get(timeout=WAIT) == "done"


def test_flattening_through_a_plain_ask(worker: pykka.ActorRef[Worker]) -> None:
    promise: Promise[int] = Promise()
    asked = worker.ask(promise.future, block=False)
    assert isinstance(asked, Future)
    assert worker.ask("ping", timeout=WAIT) == ("received", "ping")
    assert asked.is_pending()
    promise.set(9)
    assert asked.get(timeout=WAIT) == 9


@pytest.mark.parametrize("outcome", ["failed", "discarded"])
def test_flattening_carries_failure_and_discard(
    worker: pykka.ActorRef[Worker], outcome: str
) -> None:
    promise: Promise[int] = Promise()
    flattened = worker.proxy().hand_back(promise.future)
    assert worker.proxy().echo(0).get(timeout=WAIT) == 0  # the hand_back was answered
    error = Boom("inner")
    if outcome == "failed":
        promise.fail(error)
        with pytest.raises(Boom):
            flattened.get(timeout=WAIT)
        assert flattened.failure() is error
    else:
        promise.discard()
        with pytest.raises(DiscardedError):
            flattened.get(timeout=WAIT)


def test_discarding_the_callers_future_reaches_the_returned_one(
    worker: pykka.ActorRef[Worker],
) -> None:
    promise: Promise[int] = Promise()
    flattened = worker.proxy().hand_back(promise.future)
    assert worker.proxy().echo(0).get(timeout=WAIT) == 0  # the hand_back was answered
    flattened.discard()
    assert promise.future.has_discard()


def test_ask_to_a_stopped_actor_fails_with_actor_dead_error() -> None:
    ref = Worker.start()
    ref.stop(timeout=WAIT)
    future = ref.ask("late", block=False)
    assert isinstance(future, Future)
    with pytest.raises(pykka.ActorDeadError):
        future.get(timeout=WAIT)


# -- defer ---------------------------------------------------------------------------


def test_defer_runs_on_the_actors_thread(worker: pykka.ActorRef[Worker]) -> None:
    actor_thread = worker.proxy().thread_name().get(timeout=WAIT)
    assert actor_thread != threading.current_thread().name
    deferred = defer(worker, lambda: threading.current_thread().name)
    result = deferred()
    assert isinstance(result, Future)
    assert result.get(timeout=WAIT) == actor_thread


def test_defer_binds_arguments_and_takes_more(worker: pykka.ActorRef[Worker]) -> None:
    calls: list[tuple[object, ...]] = []

    def fn(*args: object) -> int:
        calls.append(args)
        return len(args)

    deferred = defer(worker, fn, "a", "b")
    assert deferred("c", "d").get(timeout=WAIT) == 4
    assert deferred().get(timeout=WAIT) == 2  # a deferred callable can be called again
    assert calls == [("a", "b", "c", "d"), ("a", "b")]


def test_defer_runs_after_the_messages_already_queued(worker: pykka.ActorRef[Worker]) -> None:
    order: list[str] = []  # only ever appended to on the actor's thread
    gate = blocked(worker)
    proxy = worker.proxy()
    proxy.append_to(order, "queued before")
    worker.tell(("append", order, "told before"))
    done = defer(worker, order.append, "deferred")()
    proxy.append_to(order, "queued after")
    assert done.is_pending()
    gate.set()
    done.get(timeout=WAIT)
    proxy.echo(None).get(timeout=WAIT)
    assert order == ["queued before", "told before", "deferred", "queued after"]


def test_defer_result_failures_and_futures(worker: pykka.ActorRef[Worker]) -> None:
    error = Boom("deferred fn")

    def raising() -> None:
        raise error

    failed = defer(worker, raising)()
    with pytest.raises(Boom):
        failed.get(timeout=WAIT)
    assert failed.failure() is error

    promise: Promise[str] = Promise()
    flattened = defer(worker, lambda: promise.future)()
    assert worker.proxy().echo(1).get(timeout=WAIT) == 1
    assert flattened.is_pending()
    promise.set("later")
    assert flattened.get(timeout=WAIT) == "later"


def test_defer_as_a_callback_hops_onto_the_actor(worker: pykka.ActorRef[Worker]) -> None:
    actor_thread = worker.proxy().thread_name().get(timeout=WAIT)
    promise: Promise[int] = Promise()
    seen: list[tuple[str, int]] = []
    ran = threading.Event()

    def on_value(value: int) -> None:
        seen.append((threading.current_thread().name, value))
        ran.set()

    promise.future.on_ready(defer(worker, on_value))
    promise.set(5)
    assert ran.wait(WAIT)
    assert seen == [(actor_thread, 5)]


def test_defer_to_a_stopped_actor_fails_and_never_hangs() -> None:
    ref = Worker.start()
    deferred = defer(ref, lambda: "never")
    ref.stop(timeout=WAIT)
    future = deferred()
    with pytest.raises(pykka.ActorDeadError):
        future.get(timeout=WAIT)


def test_defer_queued_when_the_actor_stops_fails() -> None:
    ref = Worker.start()
    gate = blocked(ref)
    ran = threading.Event()
    stop = ref.stop(block=False)  # queued behind the blocking call
    late = defer(ref, ran.set)()  # queued behind the stop
    gate.set()
    assert stop.get(timeout=WAIT) is True
    with pytest.raises(pykka.ActorDeadError):
        late.get(timeout=WAIT)
    assert not ran.is_set()


def test_defer_needs_an_actors_actor() -> None:
    ref = PlainPykka.start()
    try:
        with pytest.raises(TypeError):
            defer(ref, lambda: None)
    finally:
        ref.stop(timeout=WAIT)


def _outcomes(futures: list[list[Future[int]]], per_sender: int) -> dict[str, int]:
    """How the futures of each sender ended; every one must have ended."""
    outcomes = {"ready": 0, "dead": 0, "discarded": 0}
    for index, sent in enumerate(futures):
        assert len(sent) == per_sender
        for future in sent:
            assert future.wait(WAIT), "a defer to a stopping actor never completed"
            if future.is_ready():
                assert future.get() == index
                outcomes["ready"] += 1
            elif future.is_failed():
                assert isinstance(future.failure(), pykka.ActorDeadError)
                outcomes["dead"] += 1
            else:
                outcomes["discarded"] += 1
    return outcomes


def test_defers_racing_with_stop_complete() -> None:
    """The actor stops while other threads keep deferring: every future completes."""
    ref = Worker.start()
    senders, per_sender = 8, 300
    futures: list[list[Future[int]]] = [[] for _ in range(senders)]
    start = threading.Barrier(senders + 1)
    answered = [0]
    lock = threading.Lock()
    some_answered = threading.Event()

    def count(_: int) -> None:
        with lock:
            answered[0] += 1
            if answered[0] == senders * 10:
                some_answered.set()

    def send(index: int) -> None:
        deferred = defer(ref, lambda i: i, index)
        start.wait(WAIT)
        for _ in range(per_sender):
            futures[index].append(deferred().on_ready(count))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
    for thread in threads:
        thread.start()
    start.wait(WAIT)
    assert some_answered.wait(WAIT)
    ref.stop(timeout=WAIT)  # while the senders are still sending
    for thread in threads:
        thread.join(WAIT)
    outcomes = _outcomes(futures, per_sender)
    assert sum(outcomes.values()) == senders * per_sender
    assert outcomes["ready"] >= senders * 10


def test_defer_that_passed_the_liveness_check_just_before_the_stop_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pykka checks ``is_alive()`` and then queues: a stop in between must not hang it.

    The race is replayed deterministically by making the check pass on a stopped actor.
    """
    ref = Worker.start()
    ref.stop(timeout=WAIT)
    monkeypatch.setattr(ref, "is_alive", lambda: True)
    ran = threading.Event()
    future = defer(ref, ran.set)()
    with pytest.raises(pykka.ActorDeadError):
        future.get(timeout=WAIT)
    assert not ran.is_set()
