"""The one module that knows pykka's internals; the rest of ``actors`` uses its public API.

``actors`` runs pykka actors on shared workers through the hooks pykka offers implementors
of new actor types (``_create_actor_inbox``, ``_create_future``, ``_start_actor_loop``)
and handles each message exactly as pykka 4.5's own loop (``_actor_loop_running``) does.
It also reuses pykka's ``Envelope``, its future's get-hook fields and its registry's list.
None of that is public, so a pykka release may change any of it: the version is checked
at import against the range these were read from and tested with (``TESTED``, pinned the
same in ``setup.cfg``), and anything else fails at once with what to do.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from types import TracebackType
from typing import Any, ClassVar, NamedTuple, TypeAlias, TypeVar, overload

import pykka
from pykka._envelope import Envelope
from pykka._future import _Unset
from pykka.messages import _ActorStop

from actors._flag import Flag
from actors._mailbox import Mailbox
from actors._workers import actor_finished, actor_started, owned_actors

__all__ = [
    "BATCH",
    "TESTED",
    "ActorBase",
    "Call",
    "Deferred",
    "Envelope",
    "FutureBase",
    "OptExcInfo",
    "check_version",
    "install_registry",
]

TESTED = ((4, 5),)
"""The pykka (major, minor) versions this module was checked against."""


def check_version(installed: str) -> None:
    """Raise ``ImportError`` unless pykka ``installed`` is a ``TESTED`` version."""
    parts = installed.split(".")
    try:
        major_minor = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        major_minor = None
    if major_minor in TESTED:
        return
    tested = ", ".join(f"{major}.{minor}.x" for major, minor in TESTED)
    pins = " or ".join(f"'pykka>={major}.{minor},<{major}.{minor + 1}'" for major, minor in TESTED)
    raise ImportError(
        f"actors needs pykka {tested}, not pykka {installed}: actors uses pykka internals "
        f"that another version may have changed. Install a tested version (pip install "
        f"{pins}), or check actors/_pykka.py against pykka {installed} and add it to TESTED "
        "there and to the pin in setup.cfg"
    )


check_version(metadata.version("pykka"))

T = TypeVar("T")

OptExcInfo: TypeAlias = tuple[
    type[BaseException] | None, BaseException | None, TracebackType | None
]
"""What ``sys.exc_info()`` gives: what pykka passes to ``Future.set_exception``."""

logger = logging.getLogger("pykka")  # pykka's own messages, on pykka's logger

BATCH = 32
"""Messages an actor handles in one turn before it yields its worker to the next actor."""


# -- futures ---------------------------------------------------------------------------------


class FutureBase(pykka.Future[T]):
    """``pykka.Future`` without its ``__init__``: the get-hook fields are class defaults, so
    a future that never gets a hook (all but ``ActorRef.stop``'s) does not carry them."""

    _get_hook = None
    _get_hook_result: Any = _Unset()

    def __init__(self) -> None:  # pykka.Future.__init__ only sets the fields above
        pass

    def has_get_hook(self) -> bool:
        """Whether pykka set a get hook (``ActorRef.stop`` does): ``get`` is then pykka's."""
        return self._get_hook is not None


# -- the registry ----------------------------------------------------------------------------


class _Refs:
    """The actor refs, in start order; ``in``, ``append`` and ``remove`` are O(1).

    pykka's registry keeps a list and scans it twice to unregister, so stopping an actor
    cost O(actors alive). Used only under the registry's lock, as pykka's list was.
    """

    __slots__ = ("_refs",)

    def __init__(self, refs: Iterable[pykka.ActorRef[Any]] = ()) -> None:
        self._refs: dict[pykka.ActorRef[Any], None] = dict.fromkeys(refs)

    def append(self, ref: pykka.ActorRef[Any]) -> None:
        self._refs[ref] = None

    def remove(self, ref: pykka.ActorRef[Any]) -> None:
        try:
            del self._refs[ref]
        except KeyError:
            raise ValueError(f"{ref!r} is not registered") from None

    def __contains__(self, ref: object) -> bool:
        return ref in self._refs

    def __iter__(self) -> Iterator[pykka.ActorRef[Any]]:
        return iter(list(self._refs))

    def __len__(self) -> int:
        return len(self._refs)

    @overload
    def __getitem__(self, index: int) -> pykka.ActorRef[Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[pykka.ActorRef[Any]]: ...

    def __getitem__(self, index: int | slice) -> pykka.ActorRef[Any] | list[pykka.ActorRef[Any]]:
        return list(self._refs)[index]


def install_registry() -> None:
    """Swap pykka's registry list for ``_Refs``, and make ``ActorRegistry.stop_all`` stop
    the owned actors too, after the registered ones (once; what is there is kept)."""
    registry = pykka.ActorRegistry
    with registry._actor_refs_lock:
        if not isinstance(registry._actor_refs, _Refs):
            registry._actor_refs = _Refs(registry._actor_refs)  # type: ignore[assignment]
        if getattr(registry.stop_all, "_stops_owned", False):
            return
        pykkas = registry.stop_all.__func__  # type: ignore[attr-defined]

        def stop_all(
            cls: type[pykka.ActorRegistry], *, block: bool = True, timeout: float | None = None
        ) -> Any:
            stopped = pykkas(cls, block=block, timeout=timeout)
            _stop_owned(block=block, timeout=timeout)
            return stopped

        stop_all._stops_owned = True  # type: ignore[attr-defined]
        registry.stop_all = classmethod(stop_all)  # type: ignore[assignment,method-assign]


def _stop_owned(*, block: bool, timeout: float | None) -> None:
    """Stop every owned actor, last started first, as ``stop_all`` does registered ones."""
    for actor in reversed(list(owned_actors)):
        if actor.actor_stopped.is_set():
            continue
        # An ask, as pykka's ``ActorRef.stop``: waiting on its future on a worker is a
        # managed wait, and teardown answers it once the actor is gone.
        stopped = actor._create_future()
        actor.actor_inbox.put(Envelope(_ActorStop(), reply_to=stopped))
        if block:
            with contextlib.suppress(pykka.ActorDeadError):  # it stopped first: as good
                stopped.get(timeout=timeout)


# -- actors -----------------------------------------------------------------------------------


class Deferred(NamedTuple):
    """Run ``fn(*args)`` on the actor (``defer``)."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]


class Call(NamedTuple):
    """Call the actor's ``method(*args)`` (``call``)."""

    method: str
    args: tuple[Any, ...]


_names = itertools.count()


class ActorBase(pykka.Actor):
    """A pykka actor that holds no thread: its turns run on the shared workers.

    An actor started with pykka's ``start()`` has pykka's URN, ref and registry entry.
    One started with ``_start_owned()`` has none of them: only its owner, which holds the
    actor itself, can address it (``Sequence`` does this); ``actors.shutdown()`` still
    stops it.
    """

    actor_inbox: Mailbox
    _future_type: ClassVar[Callable[[], pykka.Future[Any]]]
    _owned = False  # started by _start_owned: no URN, ref or registry entry

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if self._owned:
            self.actor_inbox = Mailbox()
        else:
            super().__init__(*args, **kwargs)
        # pykka's Event, as a Flag: a live actor is walked by every garbage collection.
        self.actor_stopped = Flag()
        if not self._owned:
            self._actor_ref.actor_stopped = self.actor_stopped
        # Private (name-mangled) so that no subclass attribute can collide with them.
        self.__torn_down = False
        # pykka's thread name: a worker running this actor carries it, so logs and
        # ``threading.current_thread().name`` still tell which actor runs.
        self.__name = f"{self.__class__.__name__}-{next(_names)}"

    @classmethod
    def _start_owned(cls, *args: Any, **kwargs: Any) -> Any:
        """Start an actor only its owner addresses: the actor itself, not a ref."""
        actor = cls.__new__(cls)
        actor._owned = True
        actor.__init__(*args, **kwargs)  # type: ignore[misc]
        owned_actors[actor] = None
        actor._start_actor_loop()
        return actor

    def __str__(self) -> str:
        if self._owned:
            return f"{self.__class__.__name__} ({self.__name})"
        return super().__str__()

    def stop(self) -> None:
        """pykka's ``Actor.stop()``; an owned actor gets the same message from its owner."""
        if not self._owned:
            super().stop()
        elif not self.actor_stopped.is_set():
            self.actor_inbox.put(Envelope(_ActorStop()), dead_ok=True)  # stopping: as good

    @classmethod
    def _create_future(cls) -> pykka.Future[Any]:
        return cls._future_type()

    @staticmethod
    def _create_actor_inbox() -> Mailbox:
        return Mailbox()

    def _start_actor_loop(self) -> None:
        actor_started()
        # No first turn for an actor whose on_start does nothing: nothing to run yet.
        self.__set_up = type(self).on_start is pykka.Actor.on_start
        self.actor_inbox.start(self._actor_loop_turn, now=not self.__set_up)

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
            pykka.ActorRegistry.stop_all()  # the owned actors too (install_registry)

    def _stop_now_if_idle(self) -> bool:
        """Stop at once, on the calling thread, if the actor is idle with nothing queued:
        what its stop message would do in its next turn, without the turn. False (and
        nothing done) otherwise."""
        if self.actor_stopped.is_set() or not self.actor_inbox.close_if_idle():
            return False
        try:
            self._stop()
        finally:
            self._actor_loop_teardown()
        return True

    def _actor_loop_teardown(self) -> None:
        """pykka's teardown (what is queued fails, queued stops are answered), once."""
        if self.__torn_down:
            return
        self.__torn_down = True
        self.actor_inbox.close()
        try:
            while (envelope := self.actor_inbox.take()) is not None:
                if envelope.reply_to is None:
                    continue
                if isinstance(envelope.message, _ActorStop):
                    envelope.reply_to.set(None)
                    continue
                where = self if self._owned else self.actor_ref
                error = pykka.ActorDeadError(f"{where} stopped before handling the message")
                envelope.reply_to.set_exception(exc_info=(pykka.ActorDeadError, error, None))
        finally:
            owned_actors.pop(self, None)
            actor_finished()

    def _unregister(self) -> None:
        if not self._owned:
            pykka.ActorRegistry.unregister(self.actor_ref)

    def _stop(self) -> None:
        """pykka's ``_stop``: stopped at once, then ``on_stop``; unregistered if registered."""
        self._unregister()
        self.actor_stopped.set()
        logger.debug(f"Stopped {self}")
        try:
            self.on_stop()
        except Exception:
            self._handle_failure(*sys.exc_info())

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """pykka's: log the failure, then stop (unregistered if registered)."""
        logger.error(
            f"Unhandled exception in {self}:",
            exc_info=(exception_type, exception_value, traceback),  # type: ignore[arg-type]
        )
        self._unregister()
        self.actor_stopped.set()

    def _handle_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is Deferred:
            return message.fn(*message.args)
        if kind is Call:
            return getattr(self, message.method)(*message.args)
        return super()._handle_receive(message)
