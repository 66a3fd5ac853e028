"""A thread outside the runtime that waits on a future runs the actors' turns meanwhile,
and a call whose caller waits at once wakes no worker; one whose caller does not wait
still runs."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from actors import Actor, Promise, Timeout, call
from benchmarks.hops import count
from tests.support.waits import WAIT


class _Where(Actor):
    def thread(self) -> int:
        return threading.get_ident()

    def signal(self, event: threading.Event) -> None:
        event.set()


def test_a_waiting_caller_runs_the_turn_itself() -> None:
    ref = _Where.start()
    here = threading.get_ident()
    ran_here = sum(call(ref, "thread").get(timeout=WAIT) == here for _ in range(20))
    # A nudge may hand one turn to a worker on a loaded machine; nearly all run here.
    assert ran_here >= 15
    ref.stop()


def test_a_caller_that_does_not_wait_still_gets_its_call_run() -> None:
    ref = _Where.start()

    def caller() -> None:  # a thread of its own that never waits on the future
        for _ in range(3):
            handled = threading.Event()
            call(ref, "signal", handled)
            assert handled.wait(WAIT), "a lazy call was never run"

    thread = threading.Thread(target=caller)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive()
    ref.stop()


def test_a_waiting_caller_times_out_on_a_future_nobody_completes() -> None:
    with pytest.raises(Timeout):
        Promise[int]().future.get(timeout=0.05)


def test_one_round_trip_costs_what_ordering_needs() -> None:
    """Counted, not timed (``python -m benchmarks.hops``), as a guard against regressions.

    Per prepare+cleanup: the two calls, the checkpoint write's and the removal's outcome
    back on the isolator, a driver call on the volume's sequence each way, and one trip
    back per call for the sequence's bookkeeping and the call's last step together: eight
    messages. The checkpoint I/O runs on the blocking executor, but the waiting caller,
    idle otherwise, runs it itself (``actors.run_brief``), so only the timer's nudges
    sleep: about one a round trip (seven before ``run_brief``, ten messages before the
    merged trip back).
    """
    counts = count(rounds=60)
    assert counts["messages"] <= 8, counts
    assert counts["turns"] <= 8, counts
    assert counts["futures"] <= 19, counts
    assert counts["sleeps"] < 3, counts


class _Slow(Actor):
    def slow(self, started: threading.Event) -> str:
        started.set()
        # Long enough for the signal to arrive while this turn runs on the waiting thread.
        threading.Event().wait(0.3)
        return "done"

    def alive(self) -> bool:
        return True


def test_ctrl_c_while_the_main_thread_runs_a_turn_interrupts_the_wait_not_the_actors() -> None:
    """pykka stops every actor on a BaseException inside a turn; a Ctrl-C that lands while
    the waiting main thread runs one must interrupt the wait instead, as it always did."""
    assert threading.current_thread() is threading.main_thread()
    ref = _Slow.start()
    started = threading.Event()

    def interrupt() -> None:
        if started.wait(WAIT):
            os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt)
    sender.start()
    with pytest.raises(KeyboardInterrupt):
        call(ref, "slow", started).get(timeout=WAIT)
    sender.join(WAIT)
    assert started.is_set()
    assert ref.is_alive()
    assert call(ref, "alive").get(timeout=WAIT) is True
    ref.stop()
