"""libprocess's actor toolkit (futures, promises, ``collect``/``await``, ``defer``,
``Sequence``) and its M:N runtime, rebuilt under pykka's actor API.

How it maps onto libprocess:

- ``Future``/``Promise``: the same four states (pending, ready, failed, discarded);
  ``on_any``/``on_ready``/``on_failed``/``on_discarded`` are ``onAny`` & co.; ``then``,
  ``after`` and ``discard`` (a request; ``on_discard`` is ``onDiscard``) behave alike.
  ``Future`` is also a ``pykka.Future``, so pykka actors complete it and ``pykka.get_all``
  reads it; its ``map``/``filter``/``reduce``/``join`` are eager, not pykka's lazy hooks.
- ``collect``/``await_``: as libprocess, but driven by callbacks instead of a process;
  ``collect`` fails with the failing input's own exception (libprocess rewrites the
  message as "Collect failed: ...").
- ``Actor`` is a pykka actor that holds no thread: all actors share a few worker threads
  (``actors.runtime``, libprocess's ``ProcessManager``), one message at a time per
  actor; ``configure``, ``statistics`` and ``shutdown`` manage them, and ``run_blocking``
  runs blocking calls elsewhere (``run_brief``, ``run_after_turn``: brief ones, by the
  thread that ran the turn, once it is free). Returning a ``Future`` from a method is
  libprocess's ``dispatch`` flattening. ``defer(ref, fn, ...)`` is ``defer(pid, fn, ...)``:
  the call is queued on that actor; if it is gone the future fails with ``pykka.ActorDeadError``
  (libprocess abandons it).
- ``Sequence``: as libprocess's, except ``stop()`` does not wait for the running item.
  Callbacks run on the completing thread (libprocess runs them on the completing
  process); use ``defer`` to get back onto an actor.
- ``EventLoopThread``: no libprocess counterpart; one asyncio loop for blocking I/O.
"""

from actors.actor import Actor, call, defer
from actors.aio import EventLoopThread
from actors.combinators import await_, collect
from actors.errors import DiscardedError, PoolExhaustedError, Timeout
from actors.future import Future, Promise, State
from actors.runtime import (
    RuntimeStatistics,
    configure,
    freeze_long_lived,
    run_after_turn,
    run_blocking,
    run_brief,
    shutdown,
    statistics,
)
from actors.sequence import Sequence, SequenceActor

__all__ = [
    "Actor",
    "DiscardedError",
    "EventLoopThread",
    "Future",
    "PoolExhaustedError",
    "Promise",
    "RuntimeStatistics",
    "Sequence",
    "SequenceActor",
    "State",
    "Timeout",
    "await_",
    "call",
    "collect",
    "configure",
    "defer",
    "freeze_long_lived",
    "run_after_turn",
    "run_blocking",
    "run_brief",
    "shutdown",
    "statistics",
]
