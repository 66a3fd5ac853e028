"""A pykka actor that runs on the shared workers, whose asks give ``actors.Future``s, and
libprocess's ``defer``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

import pykka

from actors._mailbox import Mailbox
from actors._pykka import BATCH, ActorBase, Call, Deferred, Envelope, install_registry
from actors.future import Future, State

if TYPE_CHECKING:
    from actors._pykka import OptExcInfo

__all__ = [
    "BATCH",
    "Actor",
    "Addressee",
    "Call",
    "Deferred",
    "Reply",
    "call",
    "defer",
    "post",
    "tell",
]

install_registry()  # pykka's registry list would make stopping an actor O(actors alive)

T = TypeVar("T")


class Reply(Protocol):
    """Where an actor's answer goes: what pykka calls on an ask's future (``reply_to``)."""

    def set(self, value: Any = None) -> None: ...

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None: ...


class Addressee(Protocol):
    """What a message is posted to: a pykka ``ActorRef``, or an actor its owner holds."""

    @property
    def actor_inbox(self) -> Mailbox: ...

    @property
    def actor_stopped(self) -> threading.Event: ...


class Actor(ActorBase):
    """Base for every actor of this project: a pykka actor that holds no thread.

    Every actor runs on the runtime's shared worker threads (``actors.runtime``): a
    message to an idle actor puts it on the run queue, a worker handles up to ``BATCH``
    of its messages, one at a time and in arrival order, then takes the next actor. The
    hooks, replies and failures are pykka's, to the letter (``actors._pykka``).

    Asks and proxy calls return ``actors.Future``. A method that returns an
    ``actors.Future`` does not block its actor: the caller's future completes when the
    returned one does (libprocess ``dispatch`` flattening), and a discard request on the
    caller's future is passed on to it.
    """

    _future_type = Future


def post(
    to: Addressee | pykka.ActorRef[Any], message: Any, reply: Reply, *, lazy: bool = False
) -> None:
    """Send ``message``, its answer (or failure) to ``reply``: pykka's ``ask`` with the
    caller's own reply object. A dead actor fails it with ``ActorDeadError`` at once.

    ``lazy`` from a thread outside the runtime: wake no worker now, because the sender
    is about to wait for the answer and will run the turn itself; if it does not, a
    worker is woken within a few milliseconds (the runtime's nudge).
    """
    if to.actor_stopped.is_set():
        error = pykka.ActorDeadError(f"{to} not found")
        reply.set_exception((pykka.ActorDeadError, error, None))
        return
    envelope = Envelope(message, reply_to=reply)  # type: ignore[arg-type]
    inbox = to.actor_inbox
    if isinstance(inbox, Mailbox):
        inbox.put(envelope, lazy=lazy)
    else:  # a plain pykka actor's queue
        inbox.put(envelope)


def tell(to: Addressee, message: Any) -> None:
    """Send ``message`` with no reply; nothing happens if the actor is gone."""
    if not to.actor_stopped.is_set():
        to.actor_inbox.put(Envelope(message), dead_ok=True)


class _IfDead(Future[Any]):
    """A future whose ``ActorDeadError`` (however it arrives) becomes ``if_dead(error)``."""

    def __init__(self, if_dead: Callable[[pykka.ActorDeadError], BaseException]) -> None:
        super().__init__()
        self._if_dead = if_dead

    def _settle(
        self, state: State, *, value: Any = None, exception: BaseException | None = None
    ) -> bool:
        if isinstance(exception, pykka.ActorDeadError):
            exception = self._if_dead(exception)
        return super()._settle(state, value=value, exception=exception)


def call(
    actor_ref: pykka.ActorRef[Any],
    method: str,
    *args: Any,
    reply: Future[T] | None = None,
    if_dead: Callable[[pykka.ActorDeadError], BaseException] | None = None,
) -> Future[T]:
    """``actor_ref.proxy().method(*args)`` of an ``actors.Actor``, without the proxy.

    The same message on the actor, answered the same way (a returned ``Future`` is
    followed), minus pykka's attribute introspection: for the public methods an embedder
    calls often. A name the actor lacks fails the future with ``AttributeError``.
    ``reply`` is the future to complete (a subclass, say); a new one by default.
    ``if_dead`` rewords a dead actor: when the future would fail with
    ``pykka.ActorDeadError`` (the actor was gone, or stopped before it answered), it
    fails with ``if_dead(error)`` instead. It cannot be combined with ``reply``.
    """
    if if_dead is not None:
        if reply is not None:
            raise TypeError("call() takes reply or if_dead, not both")
        future: Future[T] = _IfDead(if_dead)
    else:
        future = Future() if reply is None else reply
    # Lazy: an embedder's call is most often waited for at once, and its thread then
    # runs the turn (``Future.wait``); a caller that chains instead gets its turn run
    # within a few milliseconds, or at once when it awaits the future.
    post(actor_ref, Call(method, args), future, lazy=True)
    return future


# Overloads so that a ``fn`` returning a Future types as the flattened Future it gives.
@overload
def defer(
    actor_ref: pykka.ActorRef[Any], fn: Callable[..., Future[T]], *bound_args: Any
) -> Callable[..., Future[T]]: ...


@overload
def defer(
    actor_ref: pykka.ActorRef[Any], fn: Callable[..., T], *bound_args: Any
) -> Callable[..., Future[T]]: ...


def defer(
    actor_ref: pykka.ActorRef[Any], fn: Callable[..., Any], *bound_args: Any
) -> Callable[..., Future[Any]]:
    """A callable that runs ``fn(*bound_args, *more)`` on the actor, as one of its messages.

    Each call queues behind the messages already in the actor's inbox and returns a
    ``Future`` of the result (flattened when ``fn`` returns a ``Future``). If the actor
    is gone, the future fails with ``pykka.ActorDeadError``; it never hangs.
    """
    if not issubclass(actor_ref.actor_class, Actor):
        raise TypeError(
            f"defer() needs an actors.Actor, not {actor_ref.actor_class.__name__}: "
            "derive the actor from actors.Actor"
        )

    def dispatch(*more: Any) -> Future[Any]:
        future: Future[Any] = Future()
        post(actor_ref, Deferred(fn, (*bound_args, *more)), future)
        return future

    return dispatch
