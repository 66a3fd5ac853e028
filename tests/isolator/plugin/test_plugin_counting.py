"""The reference plugin's counting modes, read from the stream of Mounts and Unmounts as real
plugins read it (``plugin-call-balance.md``): ``calls`` (Docker's ``local`` driver, the
default), ``ids`` (a set of IDs) and ``refuse_duplicate_id`` (a loopback-style plugin); and
Docker's own call pattern beside a second agent, against ``calls``."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from isolator.plugin import VolumePlugin
from isolator.plugin.state import volume_file_name
from tests.support.docker_engine import DockerEngine, PluginRefused
from tests.support.plugin_http import err, ok

AGENT = "a" * 64
"""The second agent's one stable ID (the isolator's, or dvdcli's)."""
OTHER = "b" * 64


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="vpc-"))  # short socket paths
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start(workdir: Path, **options: Any) -> VolumePlugin:
    return VolumePlugin(socket_path=workdir / "p.sock", root=workdir / "root", **options).start()


@pytest.fixture
def plugin(workdir: Path) -> Iterator[VolumePlugin]:
    """The plugin with its defaults: ``calls``."""
    running = start(workdir)
    try:
        ok(running, "VolumeDriver.Create", {"Name": "v"})
        yield running
    finally:
        running.stop()


def status(plugin: VolumePlugin, name: str = "v") -> dict[str, Any]:
    result: dict[str, Any] = ok(plugin, "VolumeDriver.Get", {"Name": name})["Volume"]["Status"]
    return result


def path(plugin: VolumePlugin, name: str = "v") -> str:
    result: str = ok(plugin, "VolumeDriver.Path", {"Name": name})["Mountpoint"]
    return result


def mount(plugin: VolumePlugin, mount_id: str, name: str = "v") -> str:
    result: str = ok(plugin, "VolumeDriver.Mount", {"Name": name, "ID": mount_id})["Mountpoint"]
    return result


def unmount(plugin: VolumePlugin, mount_id: str, name: str = "v") -> None:
    assert ok(plugin, "VolumeDriver.Unmount", {"Name": name, "ID": mount_id}) == {"Err": ""}


# -- calls ----------------------------------------------------------------------------------


def test_calls_is_the_default_and_releases_only_after_as_many_unmounts_as_mounts(
    plugin: VolumePlugin,
) -> None:
    assert plugin.count == "calls"
    home = str(plugin.root / "volumes" / "v")
    for _ in range(3):  # what the isolator sent before issue 16: a Mount per container
        assert mount(plugin, AGENT) == home
    assert status(plugin) == {"count": 3, "mounts": {AGENT: 3}}
    for left in (2, 1):
        unmount(plugin, AGENT)
        assert status(plugin) == {"count": left, "mounts": {AGENT: left}}
        assert path(plugin) == home  # still mounted: the leak a one-Unmount agent leaves
    unmount(plugin, AGENT)
    assert status(plugin) == {"count": 0, "mounts": {}}
    assert path(plugin) == ""


def test_calls_counts_an_unmount_whatever_its_id(plugin: VolumePlugin) -> None:
    mount(plugin, AGENT)
    mount(plugin, AGENT)
    unmount(plugin, OTHER)  # Docker's local driver ignores the ID
    assert status(plugin) == {"count": 1, "mounts": {AGENT: 2}}
    unmount(plugin, "")
    assert status(plugin) == {"count": 0, "mounts": {}}
    assert path(plugin) == ""


def test_calls_an_unmount_at_zero_succeeds_and_changes_nothing(
    plugin: VolumePlugin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="isolator.plugin")
    mount(plugin, AGENT)
    unmount(plugin, AGENT)
    assert "volume v released: its mount count is 0" in caplog.messages
    unmount(plugin, AGENT)
    assert status(plugin) == {"count": 0, "mounts": {}}
    message = f"Unmount of volume v by ID {AGENT!r}, which is not mounted: nothing to release"
    assert message in caplog.messages
    mount(plugin, OTHER)  # a count that did not go below 0
    assert status(plugin) == {"count": 1, "mounts": {OTHER: 1}}


def test_counts_survive_a_restart_in_each_mode(workdir: Path) -> None:
    first = start(workdir)
    try:
        ok(first, "VolumeDriver.Create", {"Name": "v"})
        mount(first, AGENT)
        mount(first, AGENT)
        mount(first, OTHER)
    finally:
        first.stop()
    again = start(workdir)
    try:
        assert status(again) == {"count": 3, "mounts": {AGENT: 2, OTHER: 1}}
    finally:
        again.stop()
    as_ids = start(workdir, count="ids")  # the same state read as a set of IDs
    try:
        assert status(as_ids) == {"count": 2, "mounts": {AGENT: 2, OTHER: 1}}
        unmount(as_ids, AGENT)
        assert status(as_ids) == {"count": 1, "mounts": {OTHER: 1}}
    finally:
        as_ids.stop()


# -- ids ------------------------------------------------------------------------------------


def test_ids_counts_callers_and_an_unmount_releases_its_id(workdir: Path) -> None:
    plugin = start(workdir, count="ids")
    try:
        ok(plugin, "VolumeDriver.Create", {"Name": "v"})
        for mount_id in (AGENT, AGENT, OTHER):
            mount(plugin, mount_id)
        assert status(plugin) == {"count": 2, "mounts": {AGENT: 2, OTHER: 1}}
        unmount(plugin, AGENT)  # one caller: however many Mounts it sent
        assert status(plugin) == {"count": 1, "mounts": {OTHER: 1}}
        unmount(plugin, AGENT)
        assert status(plugin)["count"] == 1
        unmount(plugin, OTHER)
        assert (status(plugin), path(plugin)) == ({"count": 0, "mounts": {}}, "")
    finally:
        plugin.stop()


# -- refuse_duplicate_id ----------------------------------------------------------------------


@pytest.mark.parametrize("count", ["calls", "ids"])
def test_a_duplicate_id_is_refused_until_it_unmounts(workdir: Path, count: str) -> None:
    plugin = start(workdir, count=count, refuse_duplicate_id=True)
    try:
        ok(plugin, "VolumeDriver.Create", {"Name": "v"})
        mount(plugin, AGENT)
        message = err(plugin, "VolumeDriver.Mount", {"Name": "v", "ID": AGENT})
        assert message == (
            f"volume v is already mounted by ID {AGENT!r}; unmount it before mounting it again"
        )
        assert status(plugin) == {"count": 1, "mounts": {AGENT: 1}}  # the refusal counts not
        mount(plugin, OTHER)  # another caller is welcome
        unmount(plugin, AGENT)
        mount(plugin, AGENT)  # after its Unmount, the same ID may mount again
        assert status(plugin) == {"count": 2, "mounts": {AGENT: 1, OTHER: 1}}
        unmount(plugin, AGENT)
        unmount(plugin, OTHER)
        assert (status(plugin), path(plugin)) == ({"count": 0, "mounts": {}}, "")
    finally:
        plugin.stop()


# -- the state: one file per volume -----------------------------------------------------------


def test_a_mount_rewrites_only_its_own_volumes_file(plugin: VolumePlugin) -> None:
    ok(plugin, "VolumeDriver.Create", {"Name": "w"})
    state = plugin.state_dir
    other = os.stat(state / volume_file_name("w"))
    before = os.stat(state / volume_file_name("v"))
    mount(plugin, AGENT)
    assert os.stat(state / volume_file_name("v")).st_ino != before.st_ino  # replaced
    untouched = os.stat(state / volume_file_name("w"))
    assert (untouched.st_ino, untouched.st_mtime_ns) == (other.st_ino, other.st_mtime_ns)
    ok(plugin, "VolumeDriver.Unmount", {"Name": "v", "ID": AGENT})
    ok(plugin, "VolumeDriver.Remove", {"Name": "v"})
    assert sorted(os.listdir(state)) == [volume_file_name("w")]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("v", "v-v.json"),
        ("a b/../c", "v-a%20b%2F..%2Fc.json"),
        (".hidden", "v-.hidden.json"),
        ("é", "v-%C3%A9.json"),
        ("\udcff", "v-%ED%B3%BF.json"),
    ],
)
def test_volume_file_names_are_never_a_path(name: str, expected: str) -> None:
    assert volume_file_name(name) == expected


def test_a_long_name_gets_a_hashed_file_name(workdir: Path) -> None:
    name = "ü" * 200  # 400 bytes of UTF-8: longer than a file name may be
    assert volume_file_name(name).startswith("v#")
    assert len(volume_file_name(name)) == len("v#.json") + 64
    plugin = start(workdir, allowed_mountpoints=[workdir])
    try:
        target = str(workdir / "long")
        ok(plugin, "VolumeDriver.Create", {"Name": name, "Opts": {"mountpoint": target}})
        mount(plugin, AGENT, name)
    finally:
        plugin.stop()
    again = start(workdir, allowed_mountpoints=[workdir])
    try:
        assert status(again, name) == {"count": 1, "mounts": {AGENT: 1}}
    finally:
        again.stop()


def test_a_version_1_state_json_is_imported_once(workdir: Path) -> None:
    root = workdir / "root"
    (root / "volumes" / "v").mkdir(parents=True)
    record = {
        "mountpoint": str(root / "volumes" / "v"),
        "created_at": "2024-01-01T00:00:00Z",
        "managed": True,
        "mounts": {AGENT: 2},
    }
    legacy = json.dumps({"version": 1, "volumes": {"v": record}})
    (root / "state.json").write_text(legacy)
    plugin = start(workdir)
    try:
        assert status(plugin) == {"count": 2, "mounts": {AGENT: 2}}  # each Mount counts
    finally:
        plugin.stop()
    assert not (root / "state.json").exists()
    assert (root / "state.json.imported").read_text() == legacy  # kept, not deleted
    assert os.listdir(root / "state") == ["v-v.json"]
    (root / "state.json").write_text("{oops")  # once imported, an old file is ignored
    again = start(workdir)
    again.stop()


# -- Docker beside another agent ----------------------------------------------------------------


def test_docker_and_a_second_agent_share_a_volume_and_it_is_released_after_both(
    plugin: VolumePlugin,
) -> None:
    docker = DockerEngine(plugin.socket_path)
    first = docker.start("shared")  # Docker's implicit Create, then its Mount
    agent_mountpoint = mount(plugin, AGENT, "shared")  # the agent's one Mount
    second = docker.start("shared")
    assert first.mountpoint == second.mountpoint == agent_mountpoint
    assert first.id != second.id
    assert status(plugin, "shared")["count"] == 3
    docker.stop(first)
    unmount(plugin, AGENT, "shared")  # the agent's last container is gone
    assert status(plugin, "shared") == {"count": 1, "mounts": {second.id: 1}}
    assert path(plugin, "shared") == agent_mountpoint  # Docker still runs a container
    docker.stop(second)
    assert docker.balanced()
    assert status(plugin, "shared") == {"count": 0, "mounts": {}}
    assert path(plugin, "shared") == ""
    mounts = [c.body["ID"] for c in plugin.calls if c.method == "VolumeDriver.Mount"]
    unmounts = [c.body["ID"] for c in plugin.calls if c.method == "VolumeDriver.Unmount"]
    assert sorted(mounts) == sorted(unmounts)  # every ID balanced, Docker's and the agent's


def test_docker_alone_against_the_refusing_plugin_is_never_refused(workdir: Path) -> None:
    plugin = start(workdir, refuse_duplicate_id=True)
    try:
        docker = DockerEngine(plugin.socket_path)
        containers = [docker.start("v") for _ in range(3)]
        docker.stop(containers[1])
        containers.append(docker.start("v"))
        docker.stop_all()
        assert docker.balanced()
        assert status(plugin) == {"count": 0, "mounts": {}}
        docker.call("VolumeDriver.Mount", {"Name": "v", "ID": AGENT})
        with pytest.raises(PluginRefused, match="already mounted"):  # unlike a stable ID
            docker.call("VolumeDriver.Mount", {"Name": "v", "ID": AGENT})
    finally:
        plugin.stop()
