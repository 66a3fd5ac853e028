"""A pykka actor whose asks give ``actors.Future``s, and libprocess's ``defer``."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar, cast, overload

import pykka
from pykka._envelope import Envelope

from actors.future import Future

__all__ = ["Actor", "defer"]

T = TypeVar("T")


class _Inbox(queue.Queue[Envelope[Any]]):
    """An inbox that refuses messages once its actor has drained it for the last time.

    pykka checks ``is_alive()`` and then puts; a message put in between the actor's last
    drain and its exit would never be answered. Closing the inbox before that drain
    turns such a late message into ``ActorDeadError`` instead of a hang.
    """

    def __init__(self) -> None:
        super().__init__()
        self._closed = False
        self._close_lock = threading.Lock()

    def put(self, item: Envelope[Any], block: bool = True, timeout: float | None = None) -> None:
        with self._close_lock:
            if not self._closed:
                super().put(item, block, timeout)
                return
        error = pykka.ActorDeadError("actor stopped before handling the message")
        if item.reply_to is None:
            raise error
        item.reply_to.set_exception((pykka.ActorDeadError, error, None))

    def close(self) -> None:
        with self._close_lock:
            self._closed = True


class _Deferred(NamedTuple):
    fn: Callable[..., Any]
    args: tuple[Any, ...]


class Actor(pykka.ThreadingActor):
    """Base for every actor of this project.

    Asks and proxy calls return ``actors.Future``. A method that returns an
    ``actors.Future`` does not block its actor: the caller's future completes when the
    returned one does (libprocess ``dispatch`` flattening), and a discard request on the
    caller's future is passed on to it.
    """

    @staticmethod
    def _create_future() -> Future[Any]:
        return Future()

    @staticmethod
    def _create_actor_inbox() -> _Inbox:
        return _Inbox()

    def _actor_loop_teardown(self) -> None:
        cast("_Inbox", self.actor_inbox).close()
        super()._actor_loop_teardown()

    def _handle_receive(self, message: Any) -> Any:
        if isinstance(message, _Deferred):
            return message.fn(*message.args)
        return super()._handle_receive(message)


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
    """A callable that runs ``fn(*bound_args, *more)`` on the actor's thread.

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
        return cast("Future[Any]", actor_ref.ask(_Deferred(fn, (*bound_args, *more)), block=False))

    return dispatch
