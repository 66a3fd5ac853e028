"""An actor's mailbox: its messages in arrival order, and whether it is on the run queue.

libprocess keeps the same pair per process: an event queue, and a state that says whether
the process is already on the ProcessManager's run queue (or running). A message put into
the mailbox of an idle actor puts the actor on the run queue; a message for an actor that
is already there only joins the queue. So an actor is never run by two threads at once,
and an idle actor holds no thread.
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeAlias

import pykka

from actors._workers import actor_pool

__all__ = ["Envelope", "Mailbox"]


Envelope: TypeAlias = Any
"""What a mailbox holds: pykka's envelope (``actors._pykka``), with ``message`` and
``reply_to``; typed loosely here so that this module needs nothing of pykka's internals."""


class Mailbox:
    """pykka's actor inbox (``put``/``get``/``empty``), scheduling its actor on ``put``.

    It refuses messages once its actor has drained it for the last time. pykka checks
    ``is_alive()`` and then puts; a message put between the actor's last drain and its
    exit would never be answered. Closing the mailbox before that drain turns such a late
    message into ``ActorDeadError`` instead of a hang.
    """

    __slots__ = ("_closed", "_lock", "_messages", "_resume", "_scheduled")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: collections.deque[Envelope] = collections.deque()
        # Until ``start``, messages wait: the actor's first run handles on_start first.
        self._scheduled = True
        self._closed = False
        self._resume: Callable[[], object] | None = None

    def start(self, resume: Callable[[], object], *, now: bool = True) -> None:
        """Run ``resume`` on the runtime whenever messages arrive, and at once if ``now``."""
        with self._lock:
            self._resume = resume
            if not now and not self._messages:
                self._scheduled = False
                return
        actor_pool.submit(resume)

    def put(self, envelope: Envelope, /, *, dead_ok: bool = False, lazy: bool = False) -> None:
        """Queue ``envelope``; once closed, fail its reply (or raise ``ActorDeadError`` for a
        tell, unless ``dead_ok``). ``lazy``: the sender will wait for the answer and run
        the actor's turn itself (``WorkerPool.submit``)."""
        with self._lock:
            closed = self._closed
            if not closed:
                self._messages.append(envelope)
                if self._scheduled:
                    return
                self._scheduled = True
                resume = self._resume
        if closed:
            error = pykka.ActorDeadError("actor stopped before handling the message")
            if envelope.reply_to is None:
                if dead_ok:
                    return
                raise error
            envelope.reply_to.set_exception((pykka.ActorDeadError, error, None))
            return
        assert resume is not None
        actor_pool.submit(resume, lazy=lazy)

    def get(self) -> Envelope:
        """The oldest message; never blocks (only the actor's own run reads it)."""
        try:
            return self._messages.popleft()
        except IndexError:
            raise queue.Empty from None

    def take(self) -> Envelope | None:
        """The oldest message, or None."""
        return self._messages.popleft() if self._messages else None

    def empty(self) -> bool:
        return not self._messages

    def yield_or_idle(self) -> None:
        """After a run: back on the run queue if messages wait, otherwise idle."""
        with self._lock:
            if not self._messages:
                self._scheduled = False
                return
            resume = self._resume
        assert resume is not None
        actor_pool.submit(resume)  # at the back: fair to the actors queued meanwhile

    def close_if_idle(self) -> bool:
        """Close the mailbox if its actor is neither queued nor running and has no
        message; True if it did (the caller then owns the actor's last step)."""
        with self._lock:
            if self._scheduled or self._messages or self._closed:
                return False
            self._closed = True
            self._resume = None
            return True

    def close(self) -> None:
        """Refuse every later message; the actor is drained one last time after this."""
        with self._lock:
            self._closed = True
            self._resume = None  # a stopped actor is not kept alive by its mailbox
