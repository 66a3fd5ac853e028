"""``run_brief``: a brief blocking call that a waiting caller, idle otherwise, runs itself;
everywhere else it is ``run_blocking``'s, and it never costs the overlap of two calls."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from actors import Actor, Future, call, run_brief
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
