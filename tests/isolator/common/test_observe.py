"""What the isolator reports to an observer, and the usage snapshot it gives."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from actors import DiscardedError, Future, Promise
from isolator import DockerVolumeIsolator, Flags, IsolatorError
from isolator.common.errors import MountRefusedError
from isolator.common.observe import Gauges, Observer, OperationEvent, report_when_done
from isolator.docker.containers import Usage
from isolator.docker.state import VolumeKey
from isolator.messages import container_config, container_id, docker_volume
from isolator.testing import RecordingDriverClient
from tests.support.isolators import sandbox
from tests.support.waits import WAIT


class Recorder(Observer):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[OperationEvent] = []
        self.gauges: list[Gauges] = []

    def on_operation(self, event: OperationEvent) -> None:
        with self.lock:
            self.events.append(event)

    def on_gauges(self, gauges: Gauges) -> None:
        with self.lock:
            self.gauges.append(gauges)

    def summary(self) -> list[tuple[str, str, str]]:
        with self.lock:
            return sorted((e.operation, e.driver, e.status) for e in self.events)


class Broken(Observer):
    def on_operation(self, event: OperationEvent) -> None:
        raise RuntimeError("observer bug")

    def on_gauges(self, gauges: Gauges) -> None:
        raise RuntimeError("observer bug")


def test_operations_and_gauges_are_reported(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    recorder = Recorder()
    client.script("mount", "other", "bad", MountRefusedError("refused"))
    isolator = DockerVolumeIsolator.create(flags, client, observer=recorder)
    try:
        isolator.recover([], []).get(WAIT)
        config = container_config(
            sandbox(tmp_path, "s"),
            [docker_volume("d", "a", "x"), docker_volume("d", "b", "y")],
        )
        isolator.prepare(container_id("c"), config).get(WAIT)
        assert recorder.gauges[-1].containers == 1
        assert recorder.gauges[-1].volumes_in_use == {"d": 2}
        isolator.cleanup(container_id("c")).get(WAIT)
        bad = container_config(sandbox(tmp_path, "t"), [docker_volume("other", "bad", "z")])
        with pytest.raises(IsolatorError):
            isolator.prepare(container_id("t"), bad).get(WAIT)
        isolator.cleanup(container_id("t")).get(WAIT)
        # Sequences stop after the replies: a call queued behind them sees the last count.
        isolator.sequence_count().get(WAIT)
    finally:
        isolator.stop()
    assert recorder.summary() == [
        ("cleanup", "", "success"),
        ("cleanup", "", "success"),
        ("mount", "d", "success"),
        ("mount", "d", "success"),
        ("mount", "other", "error"),
        ("prepare", "", "error"),
        ("prepare", "", "success"),
        ("recover", "", "success"),
        ("unmount", "d", "success"),
        ("unmount", "d", "success"),
    ]
    assert all(event.seconds >= 0 for event in recorder.events)
    last = recorder.gauges[-1]
    assert (last.containers, last.volume_sequences) == (0, 0)
    assert last.volumes_in_use == {"d": 0, "other": 0}


def test_a_failing_observer_breaks_nothing(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    isolator = DockerVolumeIsolator.create(flags, client, observer=Broken())
    try:
        config = container_config(sandbox(tmp_path, "s"), [docker_volume("d", "a", "x")])
        assert isolator.prepare(container_id("c"), config).get(WAIT) is not None
        assert isolator.cleanup(container_id("c")).get(WAIT) is None
    finally:
        isolator.stop()


def test_usage_shows_who_holds_what(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    client.hold("unmount", "d", "solo")
    isolator = DockerVolumeIsolator.create(flags, client)
    try:
        parent = container_id("p")
        for cid, volumes in [
            (parent, ["shared"]),
            (container_id("child", parent), ["shared", "solo"]),
        ]:
            config = container_config(
                sandbox(tmp_path, cid.value), [docker_volume("d", v, v) for v in volumes]
            )
            isolator.prepare(cid, config).get(WAIT)
        isolator.cleanup(container_id("child", parent))
        client.wait_for_calls(3)  # two mounts ('shared' once), the unmount of 'solo' held
        usage = isolator.usage().get(WAIT)
        client.release("unmount", "d", "solo", None)
    finally:
        isolator.stop()
    assert usage == Usage(
        containers={
            "p": (VolumeKey("d", "shared"),),
            "p.child": (VolumeKey("d", "shared"), VolumeKey("d", "solo")),
        },
        phases={"p": "prepared", "p.child": "cleaning"},
        holders={VolumeKey("d", "shared"): ("p",)},
        mount_points={VolumeKey("d", "shared"): str(tmp_path / "volumes" / "d" / "shared")},
    )


def test_report_when_done_times_each_outcome_once_it_completes() -> None:
    recorder = Recorder()
    pending: Promise[str] = Promise()
    started = time.monotonic()
    report_when_done(recorder, pending.future, "mount", started, driver="d")
    report_when_done(recorder, Future.failed(MountRefusedError("no")), "unmount", started)
    discarded: Promise[None] = Promise()
    report_when_done(recorder, discarded.future, "cleanup", started)
    assert [e.operation for e in recorder.events] == ["unmount"]  # only the completed one
    pending.set("/mnt")
    discarded.discard()
    events = {e.operation: e for e in recorder.events}
    assert len(recorder.events) == len(events) == 3  # each reported once
    mount, unmount, cleanup = events["mount"], events["unmount"], events["cleanup"]
    assert (mount.operation, mount.driver, mount.error) == ("mount", "d", None)
    assert 0 <= mount.seconds <= time.monotonic() - started
    assert isinstance(unmount.error, MountRefusedError)
    assert unmount.driver == ""
    assert (cleanup.operation, type(cleanup.error)) == ("cleanup", DiscardedError)
