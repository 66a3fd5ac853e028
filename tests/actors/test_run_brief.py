"""``run_brief``: a brief blocking call that a waiting caller, idle otherwise, runs itself;
everywhere else it is ``run_blocking``'s, and it never costs the overlap of two calls.
``run_after_turn``: every such call runs on the thread that ran the turn, after it."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from actors import Actor, Future, call, run_after_turn, run_brief
from tests.support.waits import WAIT


def _thread() -> int:
    return threading.get_ident()


class _Starter(Actor):
    """Starts brief calls from its turn and answers with their future."""

    def one(self) -> Future[int]:
        return run_brief(_thread)

    def two_that_meet(self, barrier: threading.Barrier) -> Future[list[int]]:
        first = run_brief(_meet, barrier)
        second = run_brief(_meet, barrier)
        return first.then(lambda a: second.then(lambda b: [a, b]))

    def waits_on_its_own(self) -> int:
        return run_brief(_thread).get(timeout=WAIT)  # a handler that blocks on it

    def after_turn(self, count: int) -> tuple[int, list[Future[int]]]:
        return threading.get_ident(), [run_after_turn(_thread) for _ in range(count)]

    def waits_after_turn(self) -> int:
        return run_after_turn(_thread).get(timeout=WAIT)

    def answers_at_once(self, started: list[Future[int]]) -> str:
        started.append(run_brief(_thread))
        return "answered"


def _meet(barrier: threading.Barrier) -> int:
    barrier.wait()  # breaks (and fails the call) unless the other call runs meanwhile
    return threading.get_ident()


@pytest.fixture
def starter() -> Any:
    ref = _Starter.start()
    yield ref
    ref.stop()


def test_a_waiting_caller_runs_the_brief_call_itself(starter: Any) -> None:
    here = threading.get_ident()
    ran_here = sum(call(starter, "one").get(timeout=WAIT) == here for _ in range(20))
    # A nudge may hand a turn to a worker on a loaded machine; nearly all run here.
    assert ran_here >= 15


def test_from_a_plain_thread_it_runs_on_the_executor() -> None:
    assert run_brief(_thread).get(timeout=WAIT) != threading.get_ident()


def test_two_calls_of_one_turn_still_overlap(starter: Any) -> None:
    barrier = threading.Barrier(2, timeout=WAIT)
    threads: list[int] = call(starter, "two_that_meet", barrier).get(timeout=WAIT)
    assert threads[0] != threads[1]


def test_a_turn_that_waits_on_its_own_brief_call_does_not_hang(starter: Any) -> None:
    assert call(starter, "waits_on_its_own").get(timeout=WAIT) != threading.get_ident()


def test_a_caller_whose_answer_is_in_leaves_the_call_to_the_executor(starter: Any) -> None:
    started: list[Future[int]] = []
    for _ in range(5):
        assert call(starter, "answers_at_once", started).get(timeout=WAIT) == "answered"
    here = threading.get_ident()
    assert all(future.get(timeout=WAIT) != here for future in started)


def test_a_brief_call_discarded_before_it_starts_never_runs() -> None:
    ran = threading.Event()
    gate = threading.Event()
    # Every executor thread busy first, so the brief call must wait its turn.
    blockers = [run_brief(gate.wait, WAIT) for _ in range(64)]
    late = run_brief(ran.set)
    late.discard()
    gate.set()
    for blocker in blockers:
        blocker.get(timeout=WAIT)
    assert late.is_discarded()
    assert not ran.is_set()


def test_after_the_turn_every_call_runs_on_the_thread_that_ran_it(starter: Any) -> None:
    answer: tuple[int, list[Future[int]]] = call(starter, "after_turn", 3).get(timeout=WAIT)
    turn_thread, futures = answer  # a waiting caller ran the turn
    assert turn_thread == threading.get_ident()
    assert [future.get(timeout=WAIT) for future in futures] == [turn_thread] * 3
    # A caller that does not wait: a worker runs the turn, and then the calls.
    answered = threading.Event()
    on_worker: Future[tuple[int, list[Future[int]]]] = call(starter, "after_turn", 3)
    on_worker.on_any(lambda _: answered.set())
    assert answered.wait(WAIT)
    turn_thread, futures = on_worker.get(timeout=0)
    assert turn_thread != threading.get_ident()
    done = threading.Event()
    futures[-1].on_any(lambda _: done.set())
    assert done.wait(WAIT)
    assert [future.get(timeout=0) for future in futures] == [turn_thread] * 3


def test_after_the_turn_from_a_plain_thread_runs_on_the_executor() -> None:
    assert run_after_turn(_thread).get(timeout=WAIT) != threading.get_ident()


def test_a_turn_that_waits_on_its_after_turn_call_does_not_hang(starter: Any) -> None:
    assert call(starter, "waits_after_turn").get(timeout=WAIT) != threading.get_ident()
