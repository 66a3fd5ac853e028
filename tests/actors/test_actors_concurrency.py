"""Many threads against one future, one Sequence, one collect."""

from __future__ import annotations

import collections
import functools
import queue
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors import DiscardedError, Future, Promise, Sequence, State, await_, collect
from tests.support.waits import WAIT

ROUNDS = 200


class Boom(Exception):
    """A recognisable failure."""


def in_lockstep(workers: int, rounds: int, step: Callable[[int, int], None]) -> None:
    """Run ``step(worker, round)`` on ``workers`` threads, all starting each round together."""
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def run(worker: int) -> None:
        try:
            for round_ in range(rounds):
                barrier.wait(WAIT)
                step(worker, round_)
        except BaseException as error:  # reported by the test thread below
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 3)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    if errors:
        raise errors[0]


class Tally:
    """Thread-safe counts of how often each key happened."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: collections.Counter[Any] = collections.Counter()

    def hit(self, key: Any) -> None:
        with self._lock:
            self.counts[key] += 1

    def hitter(self, *key: Any, with_args: bool = False) -> Callable[..., None]:
        """A callback counting ``key`` (followed by its arguments when ``with_args``)."""

        def hit(*args: Any) -> None:
            self.hit((*key, *args) if with_args else key)

        return hit


# -- one future, many threads ------------------------------------------------------------


def test_racing_set_fail_discard_exactly_one_wins() -> None:
    promises: list[Promise[int]] = [Promise() for _ in range(ROUNDS)]
    errors = [Boom(f"fail {r}") for r in range(ROUNDS)]
    wins: list[list[tuple[str, bool]]] = [[] for _ in range(ROUNDS)]
    tally = Tally()
    for r, promise in enumerate(promises):
        promise.future.on_any(tally.hitter(r, "any"))
        promise.future.on_ready(tally.hitter(r, "ready", with_args=True))
        promise.future.on_failed(tally.hitter(r, "failed", with_args=True))
        promise.future.on_discarded(tally.hitter(r, "discarded"))

    actions = ["set", "set", "fail", "fail", "discard", "discard"]

    def step(worker: int, round_: int) -> None:
        promise = promises[round_]
        action = actions[worker]
        if action == "set":
            won = promise.set(worker)
        elif action == "fail":
            won = promise.fail(errors[round_])
        else:
            won = promise.discard()
        wins[round_].append((f"{action}:{worker}", won))

    in_lockstep(len(actions), ROUNDS, step)

    for r, promise in enumerate(promises):
        winners = [name for name, won in wins[r] if won]
        assert len(winners) == 1, (r, wins[r])
        action, worker = winners[0].split(":")
        future = promise.future
        assert tally.counts[(r, "any")] == 1
        if action == "set":
            assert future.state is State.READY
            assert future.get(timeout=0) == int(worker)
            assert tally.counts[(r, "ready", int(worker))] == 1
        elif action == "fail":
            assert future.state is State.FAILED
            assert future.failure() is errors[r]
            assert tally.counts[(r, "failed", errors[r])] == 1
        else:
            assert future.state is State.DISCARDED
            assert tally.counts[(r, "discarded")] == 1
    # Exactly the callbacks of the winning outcome ran, once each.
    assert sum(tally.counts.values()) == 2 * ROUNDS


def test_callbacks_registered_during_completion_run_exactly_once() -> None:
    registrars, per_registrar = 4, 25
    promises: list[Promise[int]] = [Promise() for _ in range(ROUNDS)]
    tally = Tally()

    def step(worker: int, round_: int) -> None:
        future = promises[round_].future
        if worker == registrars:  # the last worker completes the future
            promises[round_].set(round_)
            return
        for k in range(per_registrar):
            key = (round_, worker, k)
            if k % 2:
                future.on_any(tally.hitter(*key))
            else:
                future.on_ready(tally.hitter(*key))

    in_lockstep(registrars + 1, ROUNDS, step)
    expected = {
        (r, w, k): 1 for r in range(ROUNDS) for w in range(registrars) for k in range(per_registrar)
    }
    assert dict(tally.counts) == expected


def test_racing_discard_requests_are_made_once() -> None:
    threads_count = 6
    futures: list[Future[int]] = [Promise[int]().future for _ in range(ROUNDS)]
    made: list[list[bool]] = [[] for _ in range(ROUNDS)]
    tally = Tally()

    def step(worker: int, round_: int) -> None:
        future = futures[round_]
        if worker % 2:
            made[round_].append(future.discard())
        else:
            future.on_discard(tally.hitter(round_, worker))

    in_lockstep(threads_count, ROUNDS, step)
    for r, future in enumerate(futures):
        assert made[r].count(True) == 1
        assert future.has_discard()
        assert future.is_pending()
    assert set(tally.counts.values()) == {1}
    assert len(tally.counts) == ROUNDS * threads_count // 2


def test_then_from_many_threads_while_completing() -> None:
    workers = 6
    promises: list[Promise[int]] = [Promise() for _ in range(ROUNDS)]
    results: list[list[Future[int]]] = [[] for _ in range(ROUNDS)]
    lock = threading.Lock()

    def step(worker: int, round_: int) -> None:
        if worker == 0:
            promises[round_].set(round_)
            return
        chained = promises[round_].future.then(lambda v: v * 2)
        with lock:
            results[round_].append(chained)

    in_lockstep(workers, ROUNDS, step)
    for r, chained in enumerate(results):
        assert len(chained) == workers - 1
        assert all(f.get(timeout=WAIT) == 2 * r for f in chained)


# -- one Sequence, many adders -------------------------------------------------------


class Completer:
    """A daemon thread that completes items' futures later, off the sequence's thread."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            job()

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(WAIT)


@pytest.fixture
def completer() -> Iterator[Completer]:
    c = Completer()
    yield c
    c.close()


class OverlapWatch:
    """Items that record how many of them run at once, half finishing later on a thread."""

    def __init__(self, completer: Completer) -> None:
        self._completer = completer
        self._lock = threading.Lock()
        self._running = 0
        self.max_running = 0
        self.calls: list[tuple[int, int]] = []

    def _enter(self, adder: int, index: int) -> None:
        with self._lock:
            self._running += 1
            self.max_running = max(self.max_running, self._running)
            self.calls.append((adder, index))

    def _leave(self) -> None:
        with self._lock:
            self._running -= 1

    def item(self, adder: int, index: int) -> Callable[[], Any]:
        def fn() -> Any:
            self._enter(adder, index)
            if index % 2:  # finishes at once
                self._leave()
                return (adder, index)
            promise: Promise[tuple[int, int]] = Promise()

            def finish() -> None:
                self._leave()
                promise.set((adder, index))

            self._completer.jobs.put(finish)
            return promise.future

        return fn


def test_many_adders_keep_order_and_never_overlap(completer: Completer) -> None:
    adders, per_adder = 8, 40
    seq = Sequence()
    watch = OverlapWatch(completer)
    added: list[list[Future[tuple[int, int]]]] = [[] for _ in range(adders)]
    barrier = threading.Barrier(adders)

    def add_all(adder: int) -> None:
        barrier.wait(WAIT)
        for index in range(per_adder):
            added[adder].append(seq.add(watch.item(adder, index)))

    threads = [threading.Thread(target=add_all, args=(a,)) for a in range(adders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    try:
        for adder, futures in enumerate(added):
            assert [f.get(timeout=WAIT) for f in futures] == [(adder, i) for i in range(per_adder)]
    finally:
        seq.stop().get(timeout=WAIT)

    assert watch.max_running == 1, "two items of one sequence ran at the same time"
    assert len(watch.calls) == adders * per_adder
    assert collections.Counter(watch.calls) == {
        (a, i): 1 for a in range(adders) for i in range(per_adder)
    }
    for adder in range(adders):
        mine = [index for a, index in watch.calls if a == adder]
        assert mine == list(range(per_adder)), "an adder's items ran out of order"


def counted_item(tally: Tally, index: int) -> Callable[[], int]:
    def fn() -> int:
        tally.hit(index)
        return index

    return fn


def test_discards_from_other_threads_while_adding() -> None:
    """Whatever the timing, an item was called exactly when its future is ready."""
    seq = Sequence()
    rng = random.Random(7)
    called = Tally()
    futures: list[Future[int]] = []
    to_discard: queue.SimpleQueue[Future[int] | None] = queue.SimpleQueue()

    def discarder() -> None:
        while (future := to_discard.get()) is not None:
            future.discard()

    discarders = [threading.Thread(target=discarder) for _ in range(3)]
    for thread in discarders:
        thread.start()
    try:
        for index in range(300):
            future = seq.add(counted_item(called, index))
            futures.append(future)
            if rng.random() < 0.3:
                to_discard.put(future)
    finally:
        for _ in discarders:
            to_discard.put(None)
        for thread in discarders:
            thread.join(WAIT)
    try:
        for index, future in enumerate(futures):
            assert future.wait(WAIT)
            if future.is_ready():
                assert future.get() == index
                assert called.counts[index] == 1
            else:
                assert future.is_discarded()
                assert called.counts[index] == 0
    finally:
        seq.stop().get(timeout=WAIT)


# -- collect and await over many futures ---------------------------------------------------


def complete_from_threads(actions: list[Callable[[], object]], threads: int) -> None:
    """Run ``actions`` shuffled, split over ``threads`` threads."""
    shuffled = list(actions)
    random.Random(42).shuffle(shuffled)
    chunks = [shuffled[i::threads] for i in range(threads)]
    start = threading.Barrier(threads)

    def run(chunk: list[Callable[[], object]]) -> None:
        start.wait(WAIT)
        for action in chunk:
            action()

    workers = [threading.Thread(target=run, args=(c,)) for c in chunks]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(WAIT)


def test_collect_over_hundreds_of_futures_completed_from_many_threads() -> None:
    count = 600
    promises: list[Promise[int]] = [Promise() for _ in range(count)]
    result = collect([p.future for p in promises])
    assert result.is_pending()
    complete_from_threads([functools.partial(p.set, i) for i, p in enumerate(promises)], threads=12)
    assert result.get(timeout=WAIT) == list(range(count))


def test_collect_fails_with_one_input_failing_among_hundreds() -> None:
    count = 400
    promises: list[Promise[int]] = [Promise() for _ in range(count)]
    error = Boom("one of many")
    result = collect([p.future for p in promises])
    actions: list[Callable[[], object]] = [
        functools.partial(p.set, i) for i, p in enumerate(promises) if i != 123
    ]
    actions.append(lambda: promises[123].fail(error))
    complete_from_threads(actions, threads=8)
    with pytest.raises(Boom):
        result.get(timeout=WAIT)
    assert result.failure() is error


def test_await_over_hundreds_of_mixed_outcomes_from_many_threads() -> None:
    count = 450
    promises: list[Promise[int]] = [Promise() for _ in range(count)]
    errors = {i: Boom(str(i)) for i in range(count) if i % 3 == 1}
    result = await_([p.future for p in promises])

    def outcome(i: int, p: Promise[int]) -> Callable[[], object]:
        if i % 3 == 0:
            return lambda: p.set(i)
        if i % 3 == 1:
            return lambda: p.fail(errors[i])
        return p.discard

    complete_from_threads([outcome(i, p) for i, p in enumerate(promises)], threads=9)
    awaited = result.get(timeout=WAIT)
    assert len(awaited) == count
    for i, future in enumerate(awaited):
        assert future is promises[i].future
        if i % 3 == 0:
            assert future.get(timeout=0) == i
        elif i % 3 == 1:
            assert future.failure() is errors[i]
        else:
            with pytest.raises(DiscardedError):
                future.get(timeout=0)
