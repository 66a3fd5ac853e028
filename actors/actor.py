"""A pykka actor that runs on the shared workers, whose asks give ``actors.Future``s, and
libprocess's ``defer``."""

from __future__ import annotations

import itertools
import logging
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar, overload

import pykka
from pykka._envelope import Envelope

from actors._flag import Flag
from actors._mailbox import Mailbox
from actors._registry import install
from actors.future import Future
from actors.runtime import actor_finished, actor_started

if TYPE_CHECKING:
    from pykka._types import OptExcInfo

__all__ = ["Actor", "Reply", "call", "defer", "post"]

install()  # pykka's registry list would make stopping an actor O(actors alive)

T = TypeVar("T")

logger = logging.getLogger("pykka")  # pykka's own messages, on pykka's logger


class _Deferred(NamedTuple):
    fn: Callable[..., Any]
    args: tuple[Any, ...]


class _Call(NamedTuple):
    method: str
    args: tuple[Any, ...]


class Reply(Protocol):
    """Where an actor's answer goes: what pykka calls on an ask's future (``reply_to``)."""

    def set(self, value: Any = None) -> None: ...

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None: ...


BATCH = 32
"""Messages an actor handles in one turn before it yields its worker to the next actor."""

_names = itertools.count()


class Actor(pykka.Actor):
    """Base for every actor of this project: a pykka actor that holds no thread.

    Every actor runs on the runtime's shared worker threads (``actors.runtime``): a
    message to an idle actor puts it on the run queue, a worker handles up to ``BATCH``
    of its messages, one at a time and in arrival order, then takes the next actor. The
    hooks, replies and failures are pykka's, to the letter (see ``_actor_loop_handle``).

    Asks and proxy calls return ``actors.Future``. A method that returns an
    ``actors.Future`` does not block its actor: the caller's future completes when the
    returned one does (libprocess ``dispatch`` flattening), and a discard request on the
    caller's future is passed on to it.
    """

    actor_inbox: Mailbox

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # pykka's Event, as a Flag: a live actor is walked by every garbage collection.
        self.actor_stopped = self._actor_ref.actor_stopped = Flag()

    @staticmethod
    def _create_future() -> Future[Any]:
        return Future()

    @staticmethod
    def _create_actor_inbox() -> Mailbox:
        return Mailbox()

    def _start_actor_loop(self) -> None:
        # Private (name-mangled) so that no subclass attribute can collide with them.
        self.__set_up = self.__torn_down = False
        # pykka's thread name: a worker running this actor carries it, so logs and
        # ``threading.current_thread().name`` still tell which actor runs.
        self.__name = f"{self.__class__.__name__}-{next(_names)}"
        actor_started()
        self.actor_inbox.start(self._actor_loop_turn)

    def _actor_loop_turn(self) -> None:
        """One turn on a worker, under the actor's name: a batch of messages."""
        thread = threading.current_thread()
        worker_name, thread.name = thread.name, self.__name
        try:
            self._actor_loop_batch()
        finally:
            thread.name = worker_name

    def _actor_loop_batch(self) -> None:
        """on_start the first time, then up to ``BATCH`` messages; then yield or idle."""
        try:
            if not self.__set_up:
                self.__set_up = True
                self._actor_loop_setup()
            for _ in range(BATCH):
                if self.actor_stopped.is_set():
                    break
                envelope = self.actor_inbox.take()
                if envelope is None:
                    break
                self._actor_loop_handle(envelope)
        except BaseException:  # from on_start: pykka would lose the actor's thread
            self._handle_failure(*sys.exc_info())
        if self.actor_stopped.is_set():
            self._actor_loop_teardown()
        else:
            self.actor_inbox.yield_or_idle()

    def _actor_loop_handle(self, envelope: Envelope[Any]) -> None:
        """pykka 4.5's ``_actor_loop_running`` for one message, with one change: the actor
        that this message stopped is torn down before the answer, so that
        ``ref.stop(block=True)`` returns once the actor is gone, not only after on_stop."""
        try:
            response = self._handle_receive(envelope.message)
            if self.actor_stopped.is_set():
                self._actor_loop_teardown()
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                logger.info(f"Exception returned from {self} to caller:", exc_info=sys.exc_info())
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
        except BaseException:
            logger.debug(f"{sys.exc_info()[1]!r} in {self}. Stopping all actors.")
            self._stop()
            pykka.ActorRegistry.stop_all()

    def _actor_loop_teardown(self) -> None:
        if self.__torn_down:
            return
        self.__torn_down = True
        self.actor_inbox.close()
        try:
            super()._actor_loop_teardown()
        finally:
            actor_finished()

    def _handle_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is _Deferred:
            return message.fn(*message.args)
        if kind is _Call:
            return getattr(self, message.method)(*message.args)
        return super()._handle_receive(message)


def post(actor_ref: pykka.ActorRef[Any], message: Any, reply: Reply) -> None:
    """Send ``message``, its answer (or failure) to ``reply``: pykka's ``ask`` with the
    caller's own reply object. A dead actor fails it with ``ActorDeadError`` at once."""
    if actor_ref.actor_stopped.is_set():
        error = pykka.ActorDeadError(f"{actor_ref} not found")
        reply.set_exception((pykka.ActorDeadError, error, None))
        return
    actor_ref.actor_inbox.put(Envelope(message, reply_to=reply))  # type: ignore[arg-type]


def call(
    actor_ref: pykka.ActorRef[Any], method: str, *args: Any, reply: Future[T] | None = None
) -> Future[T]:
    """``actor_ref.proxy().method(*args)`` of an ``actors.Actor``, without the proxy.

    The same message on the actor, answered the same way (a returned ``Future`` is
    followed), minus pykka's attribute introspection: for the public methods an embedder
    calls often. A name the actor lacks fails the future with ``AttributeError``.
    ``reply`` is the future to complete (a subclass, say); a new one by default.
    """
    future: Future[T] = Future() if reply is None else reply
    post(actor_ref, _Call(method, args), future)
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


def defer(actor_ref: pykka.ActorRef[Any], fn: Callable[..., Any], *bound_args: Any) -> Callable[
    ..., Future[Any]
]:
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
        post(actor_ref, _Deferred(fn, (*bound_args, *more)), future)
        return future

    return dispatch
