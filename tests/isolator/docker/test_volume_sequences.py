"""``VolumeSequences`` on its own: per-volume order, holders, and "maybe mounted"."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors import Future, Promise
from isolator.common.errors import DriverError, MountRefusedError
from isolator.docker.state import VolumeKey
from isolator.docker.volume_sequences import VolumeSequences
from tests.support.waits import WAIT

A = VolumeKey("d", "a")
B = VolumeKey("other", "b")


class Calls:
    """Driver calls that record themselves and answer as the test says."""

    def __init__(self) -> None:
        self.made: list[tuple[str, str]] = []
        self.pending: list[Promise[Any]] = []
        self._changed = threading.Condition()

    def wait_made(self, count: int) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.made) >= count, WAIT), self.made

    def call(self, op: str, volume: VolumeKey, answer: object = "ok") -> Callable[[], Future[Any]]:
        def make() -> Future[Any]:
            with self._changed:
                self.made.append((op, volume.name))
                self._changed.notify_all()
            if answer == "hold":
                promise: Promise[Any] = Promise()
                promise.future.on_discard(promise.discard)  # a driver that can give up
                self.pending.append(promise)
                return promise.future
            if isinstance(answer, BaseException):
                return Future.failed(answer)
            return Future.ready(f"/mnt/{volume.name}" if op == "mount" else None)

        return make


@pytest.fixture
def volumes() -> Iterator[VolumeSequences]:
    sequences = VolumeSequences(serialize=lambda fn: fn())  # the owner's thread: this one
    yield sequences
    sequences.stop()


def test_holders_are_counted_and_in_use_is_kept_by_driver(volumes: VolumeSequences) -> None:
    volumes.hold(A)
    volumes.hold(A)
    volumes.hold(B)
    assert (volumes.holders(A), volumes.holders(B)) == (2, 1)
    assert volumes.in_use() == {"d": 1, "other": 1}
    assert volumes.release(A) == 1
    assert volumes.release(A) == 0
    assert volumes.in_use() == {"d": 0, "other": 1}
    assert volumes.holders(VolumeKey("d", "never")) == 0


def test_calls_of_one_volume_run_in_order_and_another_volume_is_not_held_up(
    volumes: VolumeSequences,
) -> None:
    calls = Calls()
    volumes.hold(A)
    volumes.hold(B)
    slow = volumes.mount(A, calls.call("mount", A, "hold"))
    calls.wait_made(1)
    behind = volumes.unmount(A, calls.call("unmount", A))
    other = volumes.mount(B, calls.call("mount", B))
    assert other.get(WAIT) == "/mnt/b"
    assert calls.made == [("mount", "a"), ("mount", "b")]  # the unmount of 'a' waits
    calls.pending[0].set("/mnt/a")
    assert slow.get(WAIT) == "/mnt/a"
    assert behind.get(WAIT) is None
    assert calls.made[-1] == ("unmount", "a")


def test_a_refused_mount_is_never_unmounted(volumes: VolumeSequences) -> None:
    calls = Calls()
    volumes.hold(A)
    mounted = volumes.mount(A, calls.call("mount", A, MountRefusedError("no")))
    mounted.wait(WAIT)
    assert isinstance(mounted.failure(), MountRefusedError)
    volumes.release(A)
    assert volumes.unmount(A, calls.call("unmount", A)).get(WAIT) is None
    assert calls.made == [("mount", "a")]


@pytest.mark.parametrize("answer", ["ok", DriverError("timed out"), "discard"])
def test_a_mount_that_may_have_happened_is_unmounted(
    volumes: VolumeSequences, answer: object
) -> None:
    calls = Calls()
    volumes.hold(A)
    mounted = volumes.mount(A, calls.call("mount", A, "hold" if answer == "discard" else answer))
    if answer == "discard":  # the driver call is under way when it is given up
        calls.wait_made(1)
        mounted.discard()
    assert mounted.wait(WAIT)
    volumes.release(A)
    volumes.unmount(A, calls.call("unmount", A)).get(WAIT)
    assert calls.made == [("mount", "a"), ("unmount", "a")]


def test_an_unmount_clears_the_mount_and_a_failed_one_does_not(volumes: VolumeSequences) -> None:
    calls = Calls()
    volumes.hold(A, maybe_mounted=True)  # as recovery does
    volumes.release(A)
    with pytest.raises(DriverError):
        volumes.unmount(A, calls.call("unmount", A, DriverError("busy"))).get(WAIT)
    volumes.unmount(A, calls.call("unmount", A)).get(WAIT)  # still maybe mounted: retried
    volumes.unmount(A, calls.call("unmount", A)).get(WAIT)  # now known unmounted: skipped
    assert calls.made == [("unmount", "a"), ("unmount", "a")]


def test_a_volume_nobody_knows_needs_no_unmount(volumes: VolumeSequences) -> None:
    calls = Calls()
    assert volumes.unmount(A, calls.call("unmount", A)).get(WAIT) is None
    assert calls.made == []


def test_a_sequence_lives_only_while_its_volume_has_a_call(volumes: VolumeSequences) -> None:
    calls = Calls()
    volumes.hold(A)
    mounting = volumes.mount(A, calls.call("mount", A, "hold"))
    calls.wait_made(1)
    assert volumes.sequence_count() == 1  # a call in flight
    calls.pending[0].set("/mnt/a")
    mounting.get(WAIT)
    assert volumes.sequence_count() == 0  # held but idle: no actor kept for it
    assert volumes.holders(A) == 1
    assert volumes.mount_point(A) == "/mnt/a"  # still known, so reused, not mounted again
    volumes.release(A)
    volumes.unmount(A, calls.call("unmount", A)).get(WAIT)
    assert calls.made == [("mount", "a"), ("unmount", "a")]
    assert volumes.sequence_count() == 0


def test_forget_mount_drops_what_an_operator_gave_up(volumes: VolumeSequences) -> None:
    calls = Calls()
    volumes.hold(A, maybe_mounted=True)
    volumes.release(A)
    volumes.forget_mount(A)
    assert volumes.unmount(A, calls.call("unmount", A)).get(WAIT) is None
    assert calls.made == []
