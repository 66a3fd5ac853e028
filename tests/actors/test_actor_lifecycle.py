"""``actors.Actor`` keeps pykka's lifecycle and failure rules to the letter, on shared workers.

Each test is a row of the failure-semantics table of pykka 4.5 (``_actor.py``): what
happens to the caller, to the actor, and to ``on_start``/``on_stop``/``on_failure``.
"""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

import actors
from actors import Actor
from tests.support.waits import NEGATIVE_WAIT, WAIT


class Boom(Exception):
    """A recognisable failure."""


class Hooked(Actor):
    """Records its hooks; ``fail_on_start`` makes on_start raise."""

    def __init__(self, events: list[str], *, fail_on_start: bool = False) -> None:
        super().__init__()
        self.events = events
        self.fail_on_start = fail_on_start

    def on_start(self) -> None:
        self.events.append("on_start")
        if self.fail_on_start:
            raise Boom("on_start")

    def on_stop(self) -> None:
        self.events.append(f"on_stop alive={self.actor_ref.is_alive()}")

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self.events.append(f"on_failure {exception_value!r}")

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, BaseException):
            raise message
        if isinstance(message, threading.Event):
            message.wait(WAIT)  # holds the actor, so that what follows queues
            return None
        self.events.append(f"got {message}")
        return message


class PlainPykka(pykka.ThreadingActor):
    def __init__(self, events: list[str] | None = None) -> None:
        super().__init__()
        self.events = events if events is not None else []

    def on_stop(self) -> None:
        self.events.append("plain on_stop")

    def ask_ours(self, ref: pykka.ActorRef[Any], message: object) -> Any:
        return ref.ask(message, timeout=WAIT)


def test_on_start_runs_before_the_first_message() -> None:
    events: list[str] = []
    ref = Hooked.start(events)
    assert ref.ask("first", timeout=WAIT) == "first"
    assert events == ["on_start", "got first"]


def test_an_ask_that_raises_fails_the_caller_and_the_actor_lives() -> None:
    events: list[str] = []
    ref = Hooked.start(events)
    with pytest.raises(Boom, match="asked"):
        ref.ask(Boom("asked"), timeout=WAIT)
    assert ref.is_alive()
    assert ref.ask("after", timeout=WAIT) == "after"
    assert events == ["on_start", "got after"]


def test_a_tell_that_raises_calls_on_failure_and_the_actor_dies() -> None:
    events: list[str] = []
    ref = Hooked.start(events)
    gate = threading.Event()
    ref.tell(gate)
    error = Boom("told")
    ref.tell(error)
    queued = ref.ask("queued behind the crash", block=False)
    gate.set()
    with pytest.raises(pykka.ActorDeadError, match="stopped before handling the message"):
        queued.get(timeout=WAIT)
    assert not ref.is_alive()
    assert ref not in pykka.ActorRegistry.get_all()
    assert events == ["on_start", f"on_failure {error!r}"]  # no on_stop
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("too late")


def test_on_start_raising_stops_the_actor_without_on_failure_or_on_stop() -> None:
    events: list[str] = []
    ref = Hooked.start(events, fail_on_start=True)
    queued = ref.ask("sent before on_start ran", block=False)
    with pytest.raises(pykka.ActorDeadError):
        queued.get(timeout=WAIT)
    assert not ref.is_alive()
    assert events == ["on_start"]


def test_stop_returns_after_on_stop_and_the_teardown() -> None:
    events: list[str] = []
    ref = Hooked.start(events)
    before = actors.statistics().actors
    assert ref.stop(timeout=WAIT) is True
    # is_alive() turns False before on_stop runs, as in pykka.
    assert events == ["on_start", "on_stop alive=False"]
    assert actors.statistics().actors == before - 1
    assert ref.stop(timeout=WAIT) is False  # already dead


def test_messages_queued_behind_a_stop_fail_and_queued_stops_answer() -> None:
    events: list[str] = []
    ref = Hooked.start(events)
    gate = threading.Event()
    ref.tell(gate)
    first_stop = ref.stop(block=False)
    late = ref.ask("after the stop", block=False)
    second_stop = ref.stop(block=False)
    gate.set()
    assert first_stop.get(timeout=WAIT) is True
    with pytest.raises(pykka.ActorDeadError):
        late.get(timeout=WAIT)
    assert second_stop.get(timeout=WAIT) is True  # a queued stop gets None, not an error
    assert events == ["on_start", "on_stop alive=False"]


def test_a_base_exception_in_a_handler_stops_every_actor() -> None:
    events: list[str] = []
    other_events: list[str] = []
    ref = Hooked.start(events)
    other = Hooked.start(other_events)
    plain = PlainPykka.start(other_events)
    in_flight = ref.ask(SystemExit("handler exits"), block=False)
    for stopped in (ref, other, plain):
        assert stopped.actor_stopped.wait(WAIT)
    assert events == ["on_start", "on_stop alive=False"]
    assert "on_stop alive=False" in other_events
    assert "plain on_stop" in other_events
    # As in pykka, the ask whose handler raised is never answered.
    with pytest.raises(pykka.Timeout):
        in_flight.get(timeout=NEGATIVE_WAIT)
    assert actors.shutdown(timeout=WAIT)


def test_plain_pykka_actors_and_ours_ask_each_other() -> None:
    ours = Hooked.start([])
    plain = PlainPykka.start()
    # A plain actor blocks in its handler on our actor's answer; get_all reads both kinds.
    assert plain.proxy().ask_ours(ours, "from plain").get(timeout=WAIT) == "from plain"
    asked = ours.ask(pykka.messages.ProxyGetAttr(("events",)), timeout=WAIT)
    assert asked == ["on_start", "got from plain"]
    futures = [ours.ask("x", block=False), plain.proxy().events]
    value, events = pykka.get_all(futures, timeout=WAIT)
    assert value == "x"
    assert events == []


def test_the_registry_sees_our_actors_and_stops_them_last_started_first() -> None:
    stopped: list[str] = []

    class Named(Actor):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def on_stop(self) -> None:
            stopped.append(self.name)

    refs = [Named.start(name) for name in ("a", "b", "c")]
    assert pykka.ActorRegistry.get_by_class(Named) == refs
    assert pykka.ActorRegistry.get_by_urn(refs[1].actor_urn) is refs[1]
    assert pykka.ActorRegistry.stop_all(timeout=WAIT) == [True, True, True]
    assert stopped == ["c", "b", "a"]
    assert actors.statistics().actors == 0
