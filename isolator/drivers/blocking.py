"""Blocking file-system calls off the driver loop, on a few daemon threads.

Discovery stats sockets and reads spec files, and a mount is checked by a stat of its
mount point. On a hung NFS server each of these blocks in the kernel, for minutes or for
good: on the shared driver loop one of them would stall every plugin's calls, and with a
thread per call a flood of calls to a hung server would hold a thread each.

``BlockingPool`` runs them on the actors layer's blocking executor
(``actors.run_blocking``, daemon threads, so a call stuck in the kernel cannot keep the
agent from exiting), at most ``workers`` at a time, queueing the rest: a few hung
directories hold a few of the shared executor's threads, never all of them. Concurrent
runs asking the same thing (an equal ``key``) share one job, so one hung spec directory or
mount point holds one thread however many calls wait on it. A waiting caller gives up at
its own deadline (by being cancelled); the call itself cannot be interrupted and runs to
its end.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

from actors import run_blocking

__all__ = ["FS_WORKERS", "BlockingPool"]

FS_WORKERS: Final = 4
"""Threads per pool: a few hung directories still leave the other calls a thread."""

T = TypeVar("T")


@dataclass(frozen=True)
class _Job:
    call: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class BlockingPool:
    """At most ``workers`` daemon threads running blocking calls for one event loop.

    ``run`` is for one loop (the pool's jobs by key are touched only there); the
    threads are started on demand and exit as soon as no job is queued.
    """

    def __init__(self, workers: int = FS_WORKERS) -> None:
        if workers < 1:
            raise ValueError("a blocking pool needs at least one worker")
        self.workers = workers
        self._lock = threading.Lock()
        self._busy = 0  # threads alive, each running or about to take a job
        self._backlog: collections.deque[_Job] = collections.deque()
        self._jobs: dict[Hashable, asyncio.Future[Any]] = {}

    async def run(self, key: Hashable, call: Callable[[], T]) -> T:
        """``call()`` on a worker thread; concurrent runs with an equal ``key`` share one call.

        Cancelling the caller (a deadline) ends its wait only; the shared call goes on for
        the others, and a later run with the same key joins it while it lasts.
        """
        future = self._jobs.get(key)
        if future is None:
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            self._jobs[key] = future
            future.add_done_callback(functools.partial(self._finished, key))
            self._submit(_Job(call, loop, future))
        return cast("T", await asyncio.shield(future))

    def busy(self) -> int:
        """Threads running (or about to take) a job: never more than ``workers``."""
        with self._lock:
            return self._busy

    def _submit(self, job: _Job) -> None:
        with self._lock:
            if self._busy >= self.workers:
                self._backlog.append(job)
                return
            self._busy += 1
        run_blocking(self._work, job)

    def _work(self, job: _Job) -> None:
        while True:
            _run_job(job)
            with self._lock:
                if not self._backlog:
                    self._busy -= 1
                    return
                job = self._backlog.popleft()

    def _finished(self, key: Hashable, future: asyncio.Future[Any]) -> None:
        if self._jobs.get(key) is future:
            del self._jobs[key]
        if not future.cancelled():
            future.exception()  # seen: its waiters may all have given up


def _run_job(job: _Job) -> None:
    try:
        result = job.call()
    except BaseException as error:  # handed to the waiters, whatever it is
        settle = functools.partial(_fail, job.future, error)
    else:
        settle = functools.partial(_succeed, job.future, result)
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        job.loop.call_soon_threadsafe(settle)


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
