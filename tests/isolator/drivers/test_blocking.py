"""``BlockingPool``: blocking calls off the loop, on a bounded number of threads, shared by
key, each waiter free to give up; and ``Backoff`` giving up at a deadline."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from isolator.drivers.blocking import BlockingPool
from isolator.drivers.deadline import Deadline
from isolator.drivers.transport import Backoff
from tests.support.waits import WAIT


class _Gate:
    """Blocking calls that wait for ``open``; ``started`` counts those that began."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.calls = 0
        self._open = threading.Event()

    def call(self, value: int) -> Callable[[], int]:
        def blocked() -> int:
            self.calls += 1
            self.started.release()
            assert self._open.wait(WAIT)
            return value

        return blocked

    def open(self) -> None:
        self._open.set()


def test_at_most_workers_calls_run_at_once_and_all_complete() -> None:
    pool, gate = BlockingPool(2), _Gate()

    async def scenario() -> list[int]:
        runs = [asyncio.ensure_future(pool.run(i, gate.call(i))) for i in range(6)]
        for _ in range(2):
            await asyncio.to_thread(gate.started.acquire)
        assert pool.busy() == 2
        assert not gate.started.acquire(timeout=0)  # the other four are queued
        gate.open()
        return await asyncio.gather(*runs)

    assert asyncio.run(scenario()) == list(range(6))
    assert gate.calls == 6


def test_runs_with_the_same_key_share_one_call() -> None:
    pool, gate = BlockingPool(4), _Gate()

    async def scenario() -> list[int]:
        runs = [asyncio.ensure_future(pool.run("same", gate.call(7))) for _ in range(5)]
        await asyncio.to_thread(gate.started.acquire)
        gate.open()
        return await asyncio.gather(*runs)

    assert asyncio.run(scenario()) == [7] * 5
    assert gate.calls == 1


def test_a_waiter_giving_up_leaves_the_call_to_the_others() -> None:
    pool, gate = BlockingPool(1), _Gate()

    async def scenario() -> int:
        impatient = asyncio.ensure_future(pool.run("k", gate.call(3)))
        patient = asyncio.ensure_future(pool.run("k", gate.call(4)))
        await asyncio.to_thread(gate.started.acquire)
        impatient.cancel()
        with pytest.raises(asyncio.CancelledError):
            await impatient
        gate.open()
        return await patient

    assert asyncio.run(scenario()) == 3


def test_errors_reach_every_waiter() -> None:
    pool = BlockingPool(1)

    def fails() -> int:
        raise OSError(5, "Input/output error")

    async def scenario() -> None:
        for _ in range(2):
            with pytest.raises(OSError, match="Input/output error"):
                await pool.run("k", fails)

    asyncio.run(scenario())


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        BlockingPool(0)


def test_backoff_starts_no_retry_past_the_deadline() -> None:
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)

    async def refused() -> None:
        raise ConnectionRefusedError

    async def scenario() -> str:
        backoff = Backoff(base_delay=0.25, budget=30.0, sleep=sleep)
        try:
            await backoff.retry(
                refused,
                (ConnectionRefusedError,),
                on_retry=lambda error, delay: None,
                give_up=lambda error, attempts, elapsed: ValueError(f"{attempts} attempt(s)"),
                deadline=Deadline.after(1.0),  # fake sleeps: the loop's clock barely moves
            )
        except ValueError as error:
            return str(error)
        raise AssertionError("no give-up")

    # Waits of 0.25 and 0.5 s fit in the second left; 1 s does not.
    assert asyncio.run(scenario()) == "3 attempt(s)"
    assert sleeps == [0.25, 0.5]
