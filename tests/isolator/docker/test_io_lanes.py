"""``IOLanes``: the isolator's checkpoint I/O, at most a few calls at once, in order."""

from __future__ import annotations

import threading

import pytest

from isolator.docker.io_lanes import IOLanes
from tests.support.waits import WAIT


def test_at_most_lanes_calls_run_at_once() -> None:
    lanes = IOLanes(brief=False, lanes=2)
    gate = threading.Event()
    changed = threading.Condition()
    running, most = [0], [0]

    def call(index: int) -> int:
        with changed:
            running[0] += 1
            most[0] = max(most[0], running[0])
            changed.notify_all()
        gate.wait(WAIT)
        with changed:
            running[0] -= 1
        return index

    futures = [lanes.submit(call, i) for i in range(6)]
    with changed:
        assert changed.wait_for(lambda: running[0] == 2, timeout=WAIT)
    gate.set()
    assert [f.get(WAIT) for f in futures] == list(range(6))
    assert most[0] == 2  # two lanes ran together, never a third


def test_queued_calls_run_in_the_order_they_came() -> None:
    lanes = IOLanes(brief=False, lanes=1)
    gate = threading.Event()
    order: list[int] = []
    first = lanes.submit(gate.wait, WAIT)
    futures = [lanes.submit(order.append, i) for i in range(5)]
    gate.set()
    assert first.get(WAIT) is True
    for future in futures:
        future.get(WAIT)
    assert order == [0, 1, 2, 3, 4]


def test_a_failing_call_fails_its_future_and_the_lane_goes_on() -> None:
    lanes = IOLanes(brief=False, lanes=1)

    def fail() -> None:
        raise OSError("disk gone")

    failed, after = lanes.submit(fail), lanes.submit(lambda: "next")
    with pytest.raises(OSError, match="disk gone"):
        failed.get(WAIT)
    assert after.get(WAIT) == "next"


def test_no_lanes_is_refused() -> None:
    with pytest.raises(ValueError, match="lanes must be at least 1, not 0"):
        IOLanes(brief=False, lanes=0)
