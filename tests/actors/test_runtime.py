"""The runtime under ``actors.Actor``: shared workers, managed blocking, ``run_blocking``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pykka
import pytest

import actors
from actors import Actor, Future, PoolExhaustedError, Promise, Sequence, collect, run_blocking
from tests.support.waits import NEGATIVE_WAIT, WAIT


class Boom(Exception):
    """A recognisable failure."""


@pytest.fixture
def configure() -> Iterator[Callable[..., None]]:
    """``actors.configure`` for one test; the limits are put back afterwards."""
    before = actors.statistics()
    yield actors.configure
    actors.configure(
        workers=before.workers.workers,
        max_workers=before.workers.max_workers,
        blocking_workers=before.blocking.max_workers,
    )


class Waiter(Actor):
    """Blocks in a handler on a future that only somebody else can complete."""

    def wait_on(self, future: Future[Any], entered: threading.Event) -> Any:
        entered.set()
        return future.get(timeout=WAIT)


class Releaser(Actor):
    def release(self, promise: Promise[str]) -> bool:
        return promise.set("released")


class Counter(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.handled = 0

    def count(self) -> None:
        self.handled += 1

    def flood(self, count: int, other: pykka.ActorRef[Any], seen: list[int]) -> None:
        """Queue ``count`` messages to itself, then one to ``other``."""
        for _ in range(count):
            self.actor_ref.tell(("count",))
        other.proxy().note(self, seen)

    def on_receive(self, message: Any) -> Any:
        if message == ("count",):
            self.count()
        return None

    def note(self, other: Counter, seen: list[int]) -> None:
        seen.append(other.handled)


def runtime_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("actors-worker")]


# -- no thread per actor ---------------------------------------------------------------


def test_starting_actors_starts_no_thread_of_their_own() -> None:
    before = {t.ident for t in threading.enumerate()}
    refs = [Counter.start() for _ in range(200)]
    collect([ref.proxy().count() for ref in refs]).get(timeout=WAIT)
    new = [t for t in threading.enumerate() if t.ident not in before]
    assert all(t.name.startswith("actors-worker") for t in new), new
    assert len(runtime_threads()) <= actors.statistics().workers.workers
    stats = actors.statistics()
    assert stats.actors == 200
    assert stats.workers.blocked == 0
    assert stats.workers.queued == 0


def test_a_worker_carries_the_running_actors_name() -> None:
    class Named(Actor):
        def name(self) -> str:
            return threading.current_thread().name

    ref = Named.start()
    name = ref.proxy().name().get(timeout=WAIT)
    assert name.startswith("Named-")
    assert ref.proxy().name().get(timeout=WAIT) == name  # the same actor, the same name
    assert all(not t.name.startswith("Named-") for t in threading.enumerate())


def test_thousands_of_live_sequences_keep_the_thread_count_bounded() -> None:
    """The resource test: 3,000 live Sequences (an actor each) cost no thread each."""
    threads_before = threading.active_count()
    actors_before = actors.statistics().actors
    sequences = [Sequence() for _ in range(3000)]
    collect([s.add(lambda i=i: i) for i, s in enumerate(sequences)]).get(timeout=WAIT)  # type: ignore[misc]
    assert all(s.is_alive() for s in sequences)
    assert threading.active_count() <= threads_before + actors.statistics().workers.max_workers
    assert actors.statistics().actors == actors_before + 3000
    collect([s.stop() for s in sequences]).get(timeout=WAIT)
    assert actors.shutdown(timeout=WAIT)
    assert actors.statistics().actors == 0
    assert pykka.ActorRegistry.get_all() == []
    assert threading.active_count() <= threads_before + actors.statistics().workers.max_workers


# -- one message at a time, in order, fairly ---------------------------------------------


def test_a_flooded_actor_yields_to_others() -> None:
    """An actor with thousands of messages queued lets another one run in between."""
    flooded, other = Counter.start(), Counter.start()
    seen: list[int] = []
    flooded.proxy().flood(10_000, other, seen).get(timeout=WAIT)
    assert other.proxy().handled.get(timeout=WAIT) == 0  # queued behind the note
    assert flooded.proxy().handled.get(timeout=WAIT) == 10_000
    assert len(seen) == 1
    assert seen[0] < 10_000, "the other actor waited until the flood was over"


def test_many_actors_many_senders_keep_order_per_sender() -> None:
    class Log(Actor):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[int, int]] = []
            self.inside = 0
            self.overlaps = 0

        def record(self, sender: int, index: int) -> None:
            self.inside += 1
            self.overlaps += self.inside > 1
            self.seen.append((sender, index))
            self.inside -= 1

    logs = [Log.start() for _ in range(20)]
    senders, per_sender = 4, 100
    start = threading.Barrier(senders)

    proxies = [ref.proxy() for ref in logs]

    def send(sender: int) -> None:
        start.wait(WAIT)
        for index in range(per_sender):
            for proxy in proxies:
                proxy.record(sender, index)

    threads = [threading.Thread(target=send, args=(s,)) for s in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    for ref in logs:
        seen = ref.proxy().seen.get(timeout=WAIT)
        assert ref.proxy().overlaps.get(timeout=WAIT) == 0
        for sender in range(senders):
            assert [i for s, i in seen if s == sender] == list(range(per_sender))


# -- a handler that blocks -----------------------------------------------------------------


def block_workers(count: int) -> tuple[Promise[str], list[Future[Any]]]:
    """``count`` actors blocked at once in ``Future.get`` on one pending future."""
    gate: Promise[str] = Promise()
    waiters = [Waiter.start() for _ in range(count)]
    entered = [threading.Event() for _ in waiters]
    results = [w.proxy().wait_on(gate.future, e) for w, e in zip(waiters, entered, strict=True)]
    for event in entered:
        assert event.wait(WAIT), "a waiter never got a worker"
    return gate, results


@pytest.mark.parametrize("extra", [0, 3])
def test_blocking_every_worker_on_a_future_does_not_hang(extra: int) -> None:
    """Every worker waits on a future only another actor completes: the pool lends one."""
    workers = actors.statistics().workers.workers
    gate, results = block_workers(workers + extra)
    stats = actors.statistics().workers
    assert stats.blocked == workers + extra
    assert stats.threads <= stats.max_workers
    releaser = Releaser.start()
    assert releaser.proxy().release(gate).get(timeout=WAIT) is True
    assert collect(results).get(timeout=WAIT) == ["released"] * (workers + extra)
    assert actors.statistics().workers.blocked == 0


def test_a_blocking_ask_between_actors_does_not_hang(configure: Callable[..., None]) -> None:
    """pykka's blocking ``ask`` in a handler, with one worker: the pool lends another."""
    configure(workers=1)

    class Asker(Actor):
        def ask_other(self, other: pykka.ActorRef[Releaser], promise: Promise[str]) -> Any:
            return other.ask(pykka.messages.ProxyCall(("release",), (promise,), {}), timeout=WAIT)

    promise: Promise[str] = Promise()
    asked = Asker.start().proxy().ask_other(Releaser.start(), promise)
    assert asked.get(timeout=WAIT) is True
    assert promise.future.get(timeout=0) == "released"


def test_waiting_that_would_hang_the_pool_fails_at_once(configure: Callable[..., None]) -> None:
    configure(workers=1, max_workers=2)
    gate, results = block_workers(1)  # the one worker waits; the second thread is lent
    entered = threading.Event()
    last = Waiter.start().proxy().wait_on(Promise[str]().future, entered)
    with pytest.raises(PoolExhaustedError, match=r"run_blocking\(\).*ACTORS_MAX_WORKERS"):
        last.get(timeout=WAIT)
    assert entered.is_set()
    gate.set("released")
    assert collect(results).get(timeout=WAIT) == ["released"]


def test_get_on_a_complete_future_in_a_handler_never_counts_as_blocking(
    configure: Callable[..., None],
) -> None:
    configure(workers=1, max_workers=1)

    class Reader(Actor):
        def read(self, future: Future[int]) -> int:
            return future.get() + future.get(timeout=0)

    assert Reader.start().proxy().read(Future.ready(2)).get(timeout=WAIT) == 4


# -- run_blocking ---------------------------------------------------------------------------


def test_run_blocking_runs_off_the_callers_thread_and_gives_a_future() -> None:
    future = run_blocking(lambda a, b=0: (a + b, threading.current_thread().name), 1, b=2)
    assert isinstance(future, Future)
    value, thread = future.get(timeout=WAIT)
    assert value == 3
    assert thread.startswith("actors-blocking")
    error = Boom("blocking call")

    def raising() -> None:
        raise error

    failed = run_blocking(raising)
    with pytest.raises(Boom):
        failed.get(timeout=WAIT)
    assert failed.failure() is error


def test_run_blocking_is_bounded_and_skips_a_call_discarded_before_it_started(
    configure: Callable[..., None],
) -> None:
    configure(blocking_workers=1)
    entered, gate, ran = threading.Event(), threading.Event(), threading.Event()

    def hold() -> str:
        entered.set()
        gate.wait(WAIT)
        return "held"

    held = run_blocking(hold)
    assert entered.wait(WAIT)
    skipped = run_blocking(ran.set)
    queued = run_blocking(lambda: "queued")
    assert not queued.wait(NEGATIVE_WAIT)  # one thread, and it is busy
    assert skipped.discard() is True
    assert skipped.is_discarded()  # at once: it had not started
    gate.set()
    assert queued.get(timeout=WAIT) == "queued"
    assert held.get(timeout=WAIT) == "held"
    assert not ran.is_set()


def test_a_handler_hands_blocking_work_to_run_blocking() -> None:
    """The pattern for a blocking call in an actor: return ``run_blocking``'s future."""
    gate = threading.Event()

    class Client(Actor):
        def slow(self) -> Future[str]:
            return run_blocking(lambda: "done" if gate.wait(WAIT) else "timed out")

        def ping(self) -> str:
            return "pong"

    proxy = Client.start().proxy()
    slow = proxy.slow()
    assert proxy.ping().get(timeout=WAIT) == "pong"  # the actor is not held
    assert slow.is_pending()
    gate.set()
    assert slow.get(timeout=WAIT) == "done"


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"workers": 0}, "workers must be at least 1, not 0"),
        ({"workers": 3, "max_workers": 2}, r"max_workers \(2\) must be at least workers \(3\)"),
        ({"blocking_workers": -1}, "blocking_workers must be at least 1, not -1"),
    ],
)
def test_configure_refuses_bad_limits_and_changes_nothing(
    limits: dict[str, int], message: str
) -> None:
    before = actors.statistics()
    with pytest.raises(ValueError, match=message):
        actors.configure(**limits)
    after = actors.statistics()
    assert after.workers.workers == before.workers.workers
    assert after.workers.max_workers == before.workers.max_workers
    assert after.blocking.max_workers == before.blocking.max_workers


def _limits_in_a_fresh_interpreter(**environment: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import actors; s = actors.statistics(); "
        "print(s.workers.workers, s.workers.max_workers, s.blocking.max_workers)"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_environment_sets_the_limits() -> None:
    done = _limits_in_a_fresh_interpreter(
        ACTORS_WORKERS="3", ACTORS_MAX_WORKERS="7", ACTORS_BLOCKING_WORKERS="5"
    )
    assert done.stdout.split() == ["3", "7", "5"], done.stderr
    defaults = _limits_in_a_fresh_interpreter(ACTORS_WORKERS="40")
    assert defaults.stdout.split()[:2] == ["40", "40"], defaults.stderr


def test_a_bad_environment_value_names_the_variable() -> None:
    done = _limits_in_a_fresh_interpreter(ACTORS_WORKERS="many")
    assert done.returncode != 0
    assert "ACTORS_WORKERS must be a whole number, not 'many'" in done.stderr


# -- statistics and shutdown -----------------------------------------------------------------


def test_shutdown_waits_for_every_actor_crashed_ones_included() -> None:
    class Crashing(Actor):
        def on_receive(self, message: Any) -> Any:
            raise Boom("tell crash")

    crashing = Crashing.start()
    crashing.tell("crash")
    Counter.start()
    assert actors.shutdown(timeout=WAIT)
    assert actors.statistics().actors == 0
    assert pykka.ActorRegistry.get_all() == []


def test_shutdown_says_so_when_an_actor_is_not_gone_yet() -> None:
    """What the suite's leak check relies on: an actor not torn down is seen."""
    entered, gate = threading.Event(), threading.Event()

    class Stuck(Actor):
        def on_stop(self) -> None:
            entered.set()
            gate.wait(WAIT)

    ref = Stuck.start()
    stopping = ref.stop(block=False)
    assert entered.wait(WAIT)
    assert actors.shutdown(timeout=NEGATIVE_WAIT) is False
    assert actors.statistics().actors == 1
    gate.set()
    assert stopping.get(timeout=WAIT) is True
    assert actors.shutdown(timeout=WAIT)


# -- hand-offs ---------------------------------------------------------------------------


class Relay(Actor):
    """Sends to another actor, then blocks its worker (not on a future) until answered."""

    def relay_and_block(self, other: pykka.ActorRef[Any], answered: threading.Event) -> bool:
        promise: Promise[str] = Promise()
        promise.future.on_ready(lambda _: answered.set())
        other.tell(_Release(promise))  # queued by this busy worker: left for it at first
        return answered.wait(WAIT)  # a blocking wait the runtime cannot see


class _Release(NamedTuple):
    promise: Promise[str]


class TellReleaser(Actor):
    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Release):
            message.promise.set("released")
        return None


def test_a_message_sent_before_its_sender_blocks_still_runs(
    configure: Callable[..., None],
) -> None:
    """A task a busy worker queued does not wait for that worker's blocking handler: the
    nudge hands it to another worker."""
    configure(workers=2)
    relay, releaser = Relay.start(), TellReleaser.start()
    answered = threading.Event()
    assert relay.proxy().relay_and_block(releaser, answered).get(timeout=WAIT)


def test_an_actors_stopped_flag_can_still_be_waited_on() -> None:
    ref = Counter.start()
    stopped = threading.Event()

    def wait() -> None:
        if ref.actor_stopped.wait(WAIT):
            stopped.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert not ref.actor_stopped.is_set()
    ref.stop()
    waiter.join(WAIT)
    assert stopped.is_set()


def test_call_is_a_proxy_call_without_the_proxy() -> None:
    ref = Counter.start()
    actors.call(ref, "count").get(timeout=WAIT)
    assert actors.call(ref, "count").get(timeout=WAIT) is None
    assert ref.proxy().handled.get(timeout=WAIT) == 2
    missing: Future[Any] = actors.call(ref, "no_such_method")
    assert isinstance(missing.failure() if missing.wait(WAIT) else None, AttributeError)
    ref.stop()
    assert isinstance(actors.call(ref, "count").failure(), pykka.ActorDeadError)
