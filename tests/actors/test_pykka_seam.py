"""One seam to pykka: its private names are used in ``actors/_pykka.py`` only, and that
module refuses a pykka version it was not checked against."""

from __future__ import annotations

import re
import threading
from importlib import metadata
from pathlib import Path

import pykka
import pytest

import actors
from actors import Actor, Future, Sequence, call
from actors._pykka import TESTED, check_version
from tests.support.waits import WAIT

ROOT = Path(__file__).resolve().parents[2]

# pykka's private modules and fields, and the completion method pykka never had but that
# an override would reach for; the same pattern the grep uses.
PRIVATE = re.compile(
    r"_complete|pykka\._|_actor_refs|_actor_loop_running|_envelope|_types\b|_Unset"
)


def test_pykkas_private_names_appear_in_the_seam_only() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in ("actors", "isolator")
        for path in sorted((ROOT / package).rglob("*"))
        if path.suffix in {".py", ".md"} and path.name != "_pykka.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert found == []


def test_the_seam_itself_does_use_them() -> None:
    """The grep above can fail: the names it looks for are there, in the seam."""
    seam = (ROOT / "actors" / "_pykka.py").read_text(encoding="utf-8")
    assert PRIVATE.search(seam)


def test_the_installed_pykka_is_a_tested_one() -> None:
    check_version(metadata.version("pykka"))  # what the import of actors already did


@pytest.mark.parametrize("version", ["4.6.0", "5.0.0", "4.4.9", "3.1", "unknown"])
def test_an_untested_pykka_fails_with_its_version_and_what_to_do(version: str) -> None:
    with pytest.raises(ImportError) as raised:
        check_version(version)
    message = str(raised.value)
    assert f"not pykka {version}" in message
    major, minor = TESTED[0]
    assert f"pip install 'pykka>={major}.{minor},<{major}.{minor + 1}'" in message
    assert "setup.cfg" in message


def test_a_tested_pykka_patch_release_passes() -> None:
    major, minor = TESTED[0]
    check_version(f"{major}.{minor}.7")


def test_setup_cfg_pins_the_tested_range() -> None:
    setup = (ROOT / "setup.cfg").read_text(encoding="utf-8")
    major, minor = TESTED[0]
    assert f"pykka>={major}.{minor},<{major}.{minor + 1}" in setup


# -- the public hook that replaced the handle's override -------------------------------------


class _Echo(Actor):
    def echo(self, value: object) -> object:
        return value

    def on_receive(self, message: object) -> object:
        assert isinstance(message, threading.Event)
        message.wait(WAIT)  # until the test has queued what must be failed
        raise _Gone("a tell that crashes the actor")


class _Gone(Exception):
    pass


def test_if_dead_rewords_a_stopped_actor() -> None:
    ref = _Echo.start()
    assert call(ref, "echo", 1, if_dead=lambda e: _Gone(str(e))).get(timeout=WAIT) == 1
    ref.stop()
    future: Future[object] = call(ref, "echo", 2, if_dead=lambda e: _Gone(str(e)))
    with pytest.raises(_Gone, match="not found"):
        future.get(timeout=WAIT)


def test_if_dead_rewords_an_actor_that_stops_before_it_answers() -> None:
    ref = _Echo.start()
    gate = threading.Event()
    ref.tell(gate)  # handled first: the actor dies with the call still queued
    queued: Future[object] = call(ref, "echo", 3, if_dead=lambda e: _Gone(str(e)))
    gate.set()
    with pytest.raises(_Gone, match="stopped before handling the message"):
        queued.get(timeout=WAIT)


def test_if_dead_leaves_other_failures_alone() -> None:
    ref = _Echo.start()
    future: Future[object] = call(ref, "missing", if_dead=lambda e: _Gone(str(e)))
    with pytest.raises(AttributeError):
        future.get(timeout=WAIT)
    ref.stop()


def test_if_dead_and_reply_are_exclusive() -> None:
    ref = _Echo.start()
    with pytest.raises(TypeError, match="reply or if_dead"):
        call(ref, "echo", 1, reply=Future(), if_dead=lambda e: _Gone(str(e)))
    ref.stop()


# -- owned sequences: no URN, ref or registry entry ---------------------------------------------


def test_a_sequence_has_no_urn_ref_or_registry_entry_yet_is_stopped_by_stop_all() -> None:
    sequence = Sequence()
    assert sequence.add(lambda: "ran").get(timeout=WAIT) == "ran"
    assert pykka.ActorRegistry.get_all() == []
    actor = sequence._actor
    assert not hasattr(actor, "actor_urn")
    with pytest.raises(AttributeError):
        _ = actor.actor_ref
    pykka.ActorRegistry.stop_all()  # application shutdown: sequences stop too
    assert sequence.stop().get(timeout=WAIT) is None
    assert not sequence.is_alive()


def test_an_idle_sequence_stops_at_once_without_a_turn() -> None:
    before = actors.statistics().actors
    sequence = Sequence()  # no on_start: starting it queued no turn either
    assert actors.statistics().workers.queued == 0
    assert actors.statistics().actors == before + 1
    stopped = sequence.stop()
    assert stopped.is_ready()  # stopped on this thread, in this call
    assert actors.statistics().actors == before
    late = sequence.add(lambda: "never")
    assert late.is_discarded()
