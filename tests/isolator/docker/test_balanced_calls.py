"""One Mount per mounted period, one Unmount with the same ID after the last holder
(issue 16, ``reference/plugin-call-balance.md``).

The driver here is ``RecordingDriverClient``, which counts as Docker's ``local`` driver does
(``count++`` per Mount, ``count--`` per Unmount): ``client.counts`` is what a counting plugin
would still hold. Each case failed before the isolator reused mounts: a Mount per container
left the count above 0 after the last cleanup.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path

import pytest

from actors import Future
from isolator import DockerVolumeIsolator, DriverClient, DriverError, Flags, IsolatorError
from isolator.common.errors import MountRefusedError
from isolator.messages import container_config, container_id, docker_volume
from isolator.protos import ContainerConfig, ContainerState
from isolator.testing import RecordingDriverClient
from tests.support.isolators import running_isolator, sandbox
from tests.support.waits import WAIT


def ops(client: RecordingDriverClient) -> list[tuple[str, str]]:
    return [(call.op, call.name) for call in client.calls]


def config_for(tmp_path: Path, name: str, *volumes: str) -> ContainerConfig:
    return container_config(
        sandbox(tmp_path, f"sandbox-{name}"), [docker_volume("d", v, f"m/{v}") for v in volumes]
    )


def source(launch_info: object) -> str:
    return launch_info.mounts[0].source  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("order", list(itertools.permutations("abc")))
def test_containers_sharing_a_volume_mount_it_once_in_any_cleanup_order(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient, order: tuple[str, ...]
) -> None:
    with running_isolator(flags, client) as isolator:
        infos = [
            isolator.prepare(container_id(n), config_for(tmp_path, n, "v")).get(WAIT) for n in "abc"
        ]
        assert {source(info) for info in infos} == {str(tmp_path / "volumes" / "d" / "v")}
        for done, name in enumerate(order, start=1):
            isolator.cleanup(container_id(name)).get(WAIT)
            expected_unmounts = 1 if done == len(order) else 0
            assert ops(client).count(("unmount", "v")) == expected_unmounts
    assert ops(client) == [("mount", "v"), ("unmount", "v")]
    assert client.counts == {}


def test_a_container_arriving_while_the_first_mount_is_in_flight_reuses_its_outcome(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    client.hold("mount", "d", "v")
    with running_isolator(flags, client) as isolator:
        first = isolator.prepare(container_id("a"), config_for(tmp_path, "a", "v"))
        client.wait_for_calls(1)
        second = isolator.prepare(container_id("b"), config_for(tmp_path, "b", "v"))
        client.release("mount", "d", "v", "/mnt/v\n")
        assert source(first.get(WAIT)) == source(second.get(WAIT)) == "/mnt/v"
        assert ops(client) == [("mount", "v")]


def test_when_the_first_mount_is_refused_the_waiting_container_sends_its_own(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    client.hold("mount", "d", "v")
    with running_isolator(flags, client) as isolator:
        first = isolator.prepare(container_id("a"), config_for(tmp_path, "a", "v"))
        client.wait_for_calls(1)
        second = isolator.prepare(container_id("b"), config_for(tmp_path, "b", "v"))
        client.script("mount", "d", "v", "/mnt/v")
        client.release("mount", "d", "v", MountRefusedError("no such volume"))
        with pytest.raises(IsolatorError, match="no such volume"):
            first.get(WAIT)
        assert source(second.get(WAIT)) == "/mnt/v"
        isolator.cleanup(container_id("b")).get(WAIT)
        isolator.cleanup(container_id("a")).get(WAIT)
    assert ops(client) == [("mount", "v"), ("mount", "v"), ("unmount", "v")]


def test_after_an_unknown_mount_outcome_the_next_container_asks_where_it_is(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    # The Mount attached the volume but its answer was lost (a timeout).
    client.script("mount", "d", "v", DriverError("'mount' timed out in 1mins"))
    client.script("path", "d", "v", "/mnt/v\n")
    with running_isolator(flags, client) as isolator:
        with pytest.raises(IsolatorError, match="timed out"):
            isolator.prepare(container_id("a"), config_for(tmp_path, "a", "v")).get(WAIT)
        info = isolator.prepare(container_id("b"), config_for(tmp_path, "b", "v")).get(WAIT)
        assert source(info) == "/mnt/v"
        info = isolator.prepare(container_id("c"), config_for(tmp_path, "c", "v")).get(WAIT)
        assert source(info) == "/mnt/v"  # known now: no second Path
        for name in "abc":
            isolator.cleanup(container_id(name)).get(WAIT)
    assert ops(client) == [("mount", "v"), ("path", "v"), ("unmount", "v")]


def test_after_an_unknown_outcome_that_mounted_nothing_the_next_container_mounts(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    client.script("mount", "d", "v", DriverError("connection lost"))
    with running_isolator(flags, client) as isolator:
        with pytest.raises(IsolatorError, match="connection lost"):
            isolator.prepare(container_id("a"), config_for(tmp_path, "a", "v")).get(WAIT)
        # The driver says it holds no mount (Path answers ""): a Mount of its own.
        isolator.prepare(container_id("b"), config_for(tmp_path, "b", "v")).get(WAIT)
        isolator.cleanup(container_id("a")).get(WAIT)
        isolator.cleanup(container_id("b")).get(WAIT)
    assert ops(client) == [("mount", "v"), ("path", "v"), ("mount", "v"), ("unmount", "v")]
    assert client.counts == {}


def test_after_a_restart_a_new_container_on_a_held_volume_sends_no_mount(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    with running_isolator(flags, client) as isolator:
        first = isolator.prepare(container_id("a"), config_for(tmp_path, "a", "v")).get(WAIT)
    # The agent restarts; 'a' still runs.
    with running_isolator(flags, client) as isolator:
        state = ContainerState(container_id=container_id("a"), pid=1, directory="/s")
        isolator.recover([state], []).get(WAIT)
        second = isolator.prepare(container_id("b"), config_for(tmp_path, "b", "v")).get(WAIT)
        assert source(second) == source(first)
        isolator.cleanup(container_id("a")).get(WAIT)
        assert ops(client) == [("mount", "v"), ("path", "v")]
        isolator.cleanup(container_id("b")).get(WAIT)
    assert ops(client) == [("mount", "v"), ("path", "v"), ("unmount", "v")]
    assert client.counts == {}


def test_two_unknown_orphans_sharing_a_volume_unmount_it_once(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    with running_isolator(flags, client) as isolator:
        for name in "ab":
            isolator.prepare(container_id(name), config_for(tmp_path, name, "v")).get(WAIT)
    with running_isolator(flags, client) as isolator:
        isolator.recover([], []).get(WAIT)
        for cleanup in isolator.orphan_cleanups().get(WAIT):
            cleanup.get(WAIT)
        # A container after the orphans' cleanup mounts the volume afresh.
        isolator.prepare(container_id("c"), config_for(tmp_path, "c", "v")).get(WAIT)
        isolator.cleanup(container_id("c")).get(WAIT)
    assert ops(client) == [("mount", "v"), ("unmount", "v"), ("mount", "v"), ("unmount", "v")]
    assert client.counts == {}


def test_a_failed_unmount_leaves_the_mount_point_untrusted(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    client.script("unmount", "d", "v", DriverError("device busy"))
    with running_isolator(flags, client) as isolator:
        isolator.prepare(container_id("a"), config_for(tmp_path, "a", "v")).get(WAIT)
        with pytest.raises(IsolatorError, match="device busy"):
            isolator.cleanup(container_id("a")).get(WAIT)
        isolator.prepare(container_id("b"), config_for(tmp_path, "b", "v")).get(WAIT)
        isolator.cleanup(container_id("b")).get(WAIT)
    # The plugin still held it (its Unmount failed): Path found it, no second Mount.
    assert ops(client) == [("mount", "v"), ("unmount", "v"), ("path", "v"), ("unmount", "v")]
    assert client.counts == {}


class _NoPathClient(DriverClient):
    """A client written before ``path`` existed: only mount and unmount."""

    def __init__(self, inner: RecordingDriverClient) -> None:
        self.inner = inner

    def mount(self, driver: str, name: str, options: Mapping[str, str]) -> Future[str]:
        return self.inner.mount(driver, name, options)

    def unmount(self, driver: str, name: str) -> Future[None]:
        return self.inner.unmount(driver, name)


def test_a_client_without_path_gets_a_mount_where_the_outcome_is_unknown(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    isolator = DockerVolumeIsolator.create(flags, _NoPathClient(client))
    try:
        isolator.prepare(container_id("a"), config_for(tmp_path, "a", "v")).get(WAIT)
        isolator.prepare(container_id("b"), config_for(tmp_path, "b", "v")).get(WAIT)
        assert ops(client) == [("mount", "v")]  # known mounted: reused without Path
    finally:
        isolator.stop()
    isolator = DockerVolumeIsolator.create(flags, _NoPathClient(client))
    try:
        state = ContainerState(container_id=container_id("a"), pid=1, directory="/s")
        isolator.recover([state], []).get(WAIT)
        isolator.prepare(container_id("c"), config_for(tmp_path, "c", "v")).get(WAIT)
        # Nothing to ask where it is: Mount, as Mesos would.
        assert ops(client) == [("mount", "v"), ("mount", "v")]
    finally:
        isolator.stop()
