"""A bounded pool of daemon threads running tasks from one FIFO run queue.

Threads are started on demand, only when a task is queued and no idle thread is there
to take it, up to ``workers``; those stay, idle, for the next tasks.

Hand-offs: a task queued by one of the pool's own threads while it runs a task (an actor
sending to another) wakes no idle thread: the running thread takes it next, unless the
queue has not moved for ``NUDGE`` seconds (the task went on that long, or blocks in a
system call), when an idle thread is woken for it. With the GIL, waking a second thread
for every message only hands the GIL back and forth (it nearly halved the isolator's
throughput). A thread outside the pool that waits on a future runs tasks meanwhile
(``wait_helping``), and the brief blocking calls its turns park (``park``) when it is idle.

Managed blocking (for the actors' pool): a worker that is about to wait on a future
calls ``blocking()``. While it waits it does not count against ``workers``, so a task
queued meanwhile gets a new thread, up to ``max_workers`` in all (libprocess runs the
awaited process on the waiting thread instead). A lent thread exits as soon as it finds
no task while the pool has more threads than ``workers`` not waiting. When every thread
would be waiting and no more may be started, ``blocking()`` raises
``PoolExhaustedError`` instead of hanging the pool.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from actors._donor import Donor, SignalGuard
from actors._parking import hand_off_all, parking, settle
from actors._timer import call_later
from actors.errors import PoolExhaustedError

__all__ = ["NUDGE", "PoolStatistics", "WorkerPool", "current_pool"]

NUDGE = 0.002
"""Seconds a task queued by a busy worker waits for it before an idle thread is woken."""

logger = logging.getLogger("actors")


class _Local(threading.local):
    pool: WorkerPool | None = None  # the pool this thread works for, now
    donor = False  # a thread of its own, running the pool's tasks while it waits


_local = _Local()


def current_pool() -> WorkerPool | None:
    """The pool whose worker is the calling thread (or that it lends itself to), or None."""
    return _local.pool


@dataclass(frozen=True)
class PoolStatistics:
    """A snapshot of one pool."""

    threads: int
    """Threads alive, idle or busy."""
    idle: int
    """Threads waiting for a task."""
    blocked: int
    """Threads inside ``blocking()``: waiting on a future, not counted as workers."""
    queued: int
    """Tasks waiting for a thread."""
    workers: int
    """Threads that may run tasks at once, not counting blocked ones."""
    max_workers: int
    """Threads in all, blocked ones included: the hard maximum."""


class WorkerPool:
    """Runs ``submit``ted tasks in FIFO order on at most ``workers`` busy threads.

    ``submit`` never blocks. A task that raises is logged on the ``actors`` logger; the
    thread goes on with the next task.
    """

    def __init__(
        self,
        name: str,
        *,
        limits: Callable[[], tuple[int, int]],
        managed_blocking: bool,
    ) -> None:
        self._name = name
        self._managed_blocking = managed_blocking
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._tasks: collections.deque[Callable[[], object]] = collections.deque()
        # (workers, max_workers), asked for on first use: nothing is read at import.
        self._limits: Callable[[], tuple[int, int]] | None = limits
        self._workers = 0
        self._max_workers = 0
        self._threads = 0
        self._idle = 0
        self._blocked = 0
        self._nudging = False  # a nudge is scheduled
        self._taken = 0  # tasks taken off the queue so far: the nudge's sign of progress
        self._taken_at_nudge = 0
        self._sleeping_donors: list[Donor] = []
        # Threads whose lazy tasks are queued, and those that once left one for the
        # nudge (they call and then wait on something else): their tasks wake at once.
        self._lazy_senders: set[int] = set()
        self._eager_senders: set[int] = set()
        self._ids = itertools.count()

    def _load_limits(self) -> None:
        """Ask for the limits once, before the first task (it may raise: a bad value)."""
        limits = self._limits
        if limits is None:
            return
        workers, max_workers = limits()
        with self._lock:
            if self._limits is not None:
                self._limits = None
                self._workers, self._max_workers = workers, max_workers

    def configure(self, *, workers: int, max_workers: int) -> None:
        """New limits; threads beyond them exit once idle, new tasks obey them at once."""
        with self._lock:
            self._limits = None
            self._workers, self._max_workers = workers, max_workers
            self._wakeup.notify_all()  # idle threads now beyond the limit exit
            start = self._should_start()
        if start:
            self._start_thread()

    def submit(self, task: Callable[[], object], *, lazy: bool = False) -> None:
        """Queue ``task``; an idle thread takes it, or a new one if none is idle.

        From one of this pool's threads (running a task, not waiting), the task is left
        for that thread, and a nudge is scheduled in case it is still queued by then. So
        is a ``lazy`` task from any thread: one whose sender is about to wait for its
        outcome, and so to run it itself (``wait_helping``).
        """
        if self._limits is not None:
            self._load_limits()
        with self._lock:
            self._tasks.append(task)
            if lazy and _local.pool is None:
                sender = threading.get_ident()
                lazy = sender not in self._eager_senders
                if lazy:
                    self._lazy_senders.add(sender)
            if lazy or (_local.pool is self and (_local.donor or self._threads > self._blocked)):
                self._nudge_later()
                return
            start = self._wake()
        if start:
            self._start_thread()

    def _nudge_later(self) -> None:
        """Lock held: make sure a nudge looks at the queue ``NUDGE`` from now."""
        if not self._nudging:
            self._nudging = True
            self._taken_at_nudge = self._taken
            call_later(NUDGE, self._nudge)

    def _wake(self) -> bool:
        """Wake a sleeping thread for the queued tasks, or say one must be started (lock
        held). A donor comes first: it waits anyway, and the task may be what it awaits."""
        if self._tasks:
            donor = None
            if self._sleeping_donors:
                donor = next((d for d in reversed(self._sleeping_donors) if not d.notified), None)
            if donor is not None:
                donor.notified = True
                assert donor.condition is not None
                donor.condition.notify()
            elif self._idle:
                self._wakeup.notify()
        return self._should_start()

    def flush(self) -> None:
        """Wake a thread now for what is queued (for a sender that will not wait after all)."""
        with self._lock:
            start = self._wake()
        if start:
            self._start_thread()

    def wait_helping(
        self, on_done: Callable[[Callable[[object], object]], object], timeout: float | None
    ) -> bool:
        """libprocess's donation: a thread outside the pool runs its tasks in queue order
        until what it awaits is done (``on_done(callback)`` calls back then), so the call
        it awaits and the turns that call queues need no wake-up; False on ``timeout``.
        Tasks it leaves behind get a nudge (a sleeping donor is woken for them at once)."""
        donor = Donor()

        def _done(_: object) -> None:
            with self._lock:
                donor.done = True
                if donor.condition is not None:
                    donor.condition.notify()

        on_done(_done)
        with self._lock:
            # It came to run them: its next calls may leave their turn to it again.
            sender = threading.get_ident()
            self._lazy_senders.discard(sender)
            self._eager_senders.discard(sender)
        deadline = None if timeout is None else time.monotonic() + timeout
        previous = _local.pool, _local.donor
        _local.pool, _local.donor = self, True

        def idle() -> bool:  # nothing else for this thread: it would sleep
            with self._lock:
                return not self._tasks and not donor.done

        try:
            with parking(donor=True) as parked, SignalGuard() as signals:
                while not isinstance(task := self._donor_task(donor, deadline, signals), bool):
                    try:
                        task()
                    except BaseException:
                        logger.exception(
                            "Task %r raised on %s", task, threading.current_thread().name
                        )
                    del task
                    if parked:
                        settle(parked, idle=idle, progress=self._moved)
                    signals.deliver()
                return task
        finally:
            _local.pool, _local.donor = previous

    def _donor_task(
        self, donor: Donor, deadline: float | None, signals: SignalGuard
    ) -> Callable[[], object] | bool:
        """A donor's next task; True once it is done, False once its time is up."""
        with self._lock:
            while not donor.done and not self._tasks:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                if donor.condition is None:
                    donor.condition = threading.Condition(self._lock)
                self._sleeping_donors.append(donor)
                signals.sleeping = True
                try:
                    donor.condition.wait(remaining)
                finally:
                    signals.sleeping = False
                    self._sleeping_donors.remove(donor)
                    donor.notified = False
            if donor.done:
                if self._tasks:
                    self._leave_tasks()
                return True
            self._taken += 1
            return self._tasks.popleft()

    def _moved(self) -> None:
        """A thread goes on with brief parked work: progress, for the nudge."""
        with self._lock:
            self._taken += 1

    def _leave_tasks(self) -> None:
        """Lock held: a donor leaves queued tasks; a sleeping donor takes them, else a nudge."""
        if any(not d.notified for d in self._sleeping_donors):
            self._wake()
        else:
            self._nudge_later()

    def _nudge(self) -> None:
        """On the timer thread: tasks left for a busy worker get a thread if none was taken
        off the queue for ``NUDGE`` seconds; while the queue moves, it looks again ``NUDGE``
        later (one timer wake-up per ``NUDGE``, not one per hand-off)."""
        start = False
        with self._lock:
            if not self._tasks:
                self._nudging = False
                return
            if self._taken == self._taken_at_nudge:
                start = self._wake()
                # Their senders did not come to run them: wake at once for them from now.
                self._eager_senders |= self._lazy_senders
            self._lazy_senders.clear()
            self._taken_at_nudge = self._taken
        call_later(NUDGE, self._nudge)
        if start:
            self._start_thread()

    def _should_start(self) -> bool:
        """Whether a queued task needs a new thread; counts it as started. Lock held."""
        if (
            len(self._tasks) > self._idle + len(self._sleeping_donors)
            and self._threads - self._blocked < self._workers
            and self._threads < self._max_workers
        ):
            self._threads += 1
            return True
        return False

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"{self._name}-{next(self._ids)}", daemon=True
        )
        try:
            thread.start()
        except BaseException:
            with self._lock:
                self._threads -= 1
            raise

    def _next_task(self) -> Callable[[], object] | None:
        """The next task, or None when this thread is one too many and should exit."""
        with self._lock:
            # One too many first, even with tasks queued: the others are enough for them.
            while self._threads - self._blocked <= self._workers:
                if self._tasks:
                    self._taken += 1
                    return self._tasks.popleft()
                self._idle += 1
                self._wakeup.wait()
                self._idle -= 1
            self._threads -= 1
            return None

    def _work(self) -> None:
        _local.pool, _local.donor = self, False
        with parking(donor=False) as parked:
            while (task := self._next_task()) is not None:
                try:
                    task()
                except BaseException:
                    logger.exception("Task %r raised on %s", task, threading.current_thread().name)
                del task  # let what the task holds go while this thread waits
                if parked:
                    settle(parked, idle=_never, progress=self._moved)

    @contextmanager
    def blocking(self) -> Iterator[None]:
        """Around a wait on a worker thread: another thread may run tasks meanwhile.

        Raises ``PoolExhaustedError`` (without waiting) when this is the last thread not
        waiting and the pool may start no other.
        """
        self._load_limits()
        if _local.donor:
            # Not one of the pool's threads: nothing to count or lend, but what it
            # queued or parked for itself needs a thread now.
            hand_off_all()
            self.flush()
            yield
            return
        hand_off_all()  # what this thread parked cannot wait for it
        with self._lock:
            if self._threads - self._blocked <= 1 and self._threads >= self._max_workers:
                raise PoolExhaustedError(
                    f"all {self._threads} threads of {self._name} (the maximum) would be "
                    "waiting on futures, and none would be left to complete them. Chain "
                    "with then()/defer() instead of calling get() in a handler, run "
                    "blocking calls with actors.run_blocking(), or raise the maximum "
                    "(actors.configure(max_workers=...) or ACTORS_MAX_WORKERS)."
                )
            self._blocked += 1
            start = self._wake()  # what this thread queued for itself needs another now
        if start:
            self._start_thread()
        try:
            yield
        finally:
            with self._lock:
                self._blocked -= 1
                if self._idle and self._threads - self._blocked > self._workers:
                    self._wakeup.notify()  # the thread lent meanwhile may go

    @property
    def managed_blocking(self) -> bool:
        return self._managed_blocking

    def statistics(self) -> PoolStatistics:
        self._load_limits()
        with self._lock:
            return PoolStatistics(
                threads=self._threads,
                idle=self._idle,
                blocked=self._blocked,
                queued=len(self._tasks),
                workers=self._workers,
                max_workers=self._max_workers,
            )


def _never() -> bool:
    return False
