"""A task's volume paths, names and mount points cannot reach the host through ``prepare``.

Links in a rootfs resolve inside it, links out of a sandbox are refused, ``..``, NUL and
control characters are refused before anything is made or any driver is called, and
``docker_volume_chown`` gives away only a real directory. Each test compares the tree around
the roots before and after, and the host's mount table.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from isolator import Flags, IsolatorError
from isolator.messages import container_config, container_id, docker_volume
from isolator.protos import ContainerConfig, ContainerLaunchInfo, Volume
from isolator.testing import RecordingDriverClient
from tests.support.hygiene import tree
from tests.support.isolators import running_isolator, sandbox
from tests.support.waits import WAIT

pytestmark = pytest.mark.usefixtures("host_unchanged")


@dataclass
class Host:
    """The test's corner of the host: a rootfs, a sandbox and a directory beside them."""

    tmp_path: Path
    flags: Flags
    client: RecordingDriverClient

    @property
    def rootfs(self) -> Path:
        return self.tmp_path / "rootfs"

    @property
    def box(self) -> Path:
        return self.tmp_path / "sandbox"

    def outside(self, root: str) -> list[str]:
        """The tree around ``root`` (``rootfs`` or ``sandbox``), but for what prepare makes."""
        return tree(self.tmp_path, skip=(root, "checkpoint", "volumes"))

    def prepared(self, config: ContainerConfig) -> ContainerLaunchInfo:
        with running_isolator(self.flags, self.client) as isolator:
            info = isolator.prepare(container_id("c"), config).get(WAIT)
        assert info is not None
        return info

    def refused(self, config: ContainerConfig) -> str:
        """The message of a refused prepare, which touched no driver and no file anywhere."""
        with running_isolator(self.flags, self.client) as isolator:
            before = tree(self.tmp_path)  # the checkpoint root exists from here on
            with pytest.raises(IsolatorError) as raised:
                isolator.prepare(container_id("c"), config).get(WAIT)
            assert self.client.calls == []
            assert tree(self.tmp_path) == before
        return str(raised.value)

    def refused_after_mount(self, config: ContainerConfig, *, chown: bool = False) -> str:
        flags = Flags(
            docker_volume_checkpoint_dir=self.flags.docker_volume_checkpoint_dir,
            docker_volume_chown=chown,
        )
        with (
            running_isolator(flags, self.client) as isolator,
            pytest.raises(IsolatorError) as raised,
        ):
            isolator.prepare(container_id("c"), config).get(WAIT)
        return str(raised.value)


@pytest.fixture
def host(tmp_path: Path, flags: Flags, client: RecordingDriverClient) -> Host:
    for directory in ("outside", "rootfs", "sandbox"):
        sandbox(tmp_path, directory)
    return Host(tmp_path, flags, client)


def volume_at(
    directory: Path, container_path: str, *, rootfs: Path | None = None
) -> ContainerConfig:
    return container_config(
        str(directory),
        [docker_volume("d", "n", container_path)],
        rootfs=None if rootfs is None else str(rootfs),
    )


# -- a rootfs: links resolve inside it ---------------------------------------------------


def test_rootfs_link_to_etc_makes_the_target_inside_the_rootfs(host: Host) -> None:
    rootfs, leaf = host.rootfs, f"confine-test-{uuid.uuid4().hex}"
    os.symlink("/etc", rootfs / "data")
    host_etc, outside = sorted(os.listdir("/etc")), host.outside("rootfs")
    info = host.prepared(volume_at(host.box, f"/data/{leaf}", rootfs=rootfs))
    assert [m.target for m in info.mounts] == [f"{rootfs}/etc/{leaf}"]
    assert (rootfs / "etc" / leaf).is_dir()
    assert sorted(os.listdir("/etc")) == host_etc
    assert host.outside("rootfs") == outside


def test_rootfs_link_up_three_levels_stops_at_the_rootfs(host: Host) -> None:
    rootfs = host.rootfs
    os.symlink("../../..", rootfs / "a")
    outside = host.outside("rootfs")
    info = host.prepared(volume_at(host.box, "/a/tmp/x", rootfs=rootfs))
    assert [m.target for m in info.mounts] == [f"{rootfs}/tmp/x"]
    assert (rootfs / "tmp" / "x").is_dir()
    assert host.outside("rootfs") == outside


def test_absolute_link_inside_the_rootfs_restarts_at_the_rootfs(host: Host) -> None:
    rootfs = host.rootfs
    (rootfs / "srv").mkdir()
    os.symlink("/srv/data", rootfs / "data")  # dangling until prepare makes it
    outside = host.outside("rootfs")
    info = host.prepared(volume_at(host.box, "/data/db", rootfs=rootfs))
    assert [m.target for m in info.mounts] == [f"{rootfs}/srv/data/db"]
    assert (rootfs / "srv" / "data" / "db").is_dir()
    assert host.outside("rootfs") == outside


def test_rootfs_link_loop_is_refused_naming_the_link(host: Host) -> None:
    rootfs = host.rootfs
    os.symlink("loop", rootfs / "loop")
    assert host.refused(volume_at(host.box, "/loop/x", rootfs=rootfs)) == (
        f"Failed to create the target of the mount at '{rootfs}/loop/x': Too many levels of "
        f"symbolic links (at the symbolic link '{rootfs}/loop' -> 'loop')"
    )


# -- a sandbox: links that leave it are refused --------------------------------------------


@pytest.mark.parametrize("with_rootfs", [False, True], ids=["no_rootfs", "rootfs"])
@pytest.mark.parametrize(("link", "target"), [("data", "/etc"), ("a", "../../..")])
def test_sandbox_link_out_is_refused_naming_the_link(
    host: Host, link: str, target: str, with_rootfs: bool
) -> None:
    box = host.box
    os.symlink(target, box / link)
    config = volume_at(box, f"{link}/x", rootfs=host.rootfs if with_rootfs else None)
    assert host.refused(config) == (
        f"Failed to create the target of the mount at '{box}/{link}/x': the symbolic link "
        f"'{box}/{link}' -> '{target}' points outside '{box}'"
    )


def test_sandbox_link_that_stays_inside_is_followed(host: Host) -> None:
    box = host.box
    (box / "work").mkdir()
    os.symlink("work", box / "data")
    outside = host.outside("sandbox")
    info = host.prepared(volume_at(box, "data/x"))
    assert [m.target for m in info.mounts] == [f"{box}/work/x"]
    assert host.outside("sandbox") == outside


# -- container paths refused before anything is made -------------------------------------


@pytest.mark.parametrize(
    ("container_path", "with_rootfs", "problem"),
    [
        ("../x", False, "must not contain a '..' component"),
        ("tmp/../../x", True, "must not contain a '..' component"),
        ("/a/../../etc", True, "must not contain a '..' component"),
        ("/tmp/../etc", False, "must not contain a '..' component"),
        ("tgt\0/../../../etc", False, "must not contain a NUL character"),
        ("/abs\0", True, "must not contain a NUL character"),
        ("", False, "must name a directory below the root"),
        (".", True, "must name a directory below the root"),
        ("/", True, "must name a directory below the root"),
        ("/", False, "must name a directory below the root"),
    ],
)
def test_container_path_is_refused(
    host: Host, container_path: str, with_rootfs: bool, problem: str
) -> None:
    config = volume_at(host.box, container_path, rootfs=host.rootfs if with_rootfs else None)
    shown = container_path.replace("\0", "\\0")
    assert host.refused(config) == f"Invalid container path '{shown}' for container c: {problem}"


def test_every_volume_is_checked_before_any_directory_is_made(host: Host) -> None:
    box = host.box
    config = container_config(
        str(box), [docker_volume("d", "good", "tmp/good"), docker_volume("d", "bad", "../bad")]
    )
    assert host.refused(config) == (
        "Invalid container path '../bad' for container c: must not contain a '..' component"
    )
    assert not (box / "tmp").exists()


def test_a_missing_absolute_path_prints_escaped(host: Host) -> None:
    config = volume_at(host.box, f"{host.tmp_path}/no\nsuch")
    assert host.refused(config) == (
        f"Absolute container path '{host.tmp_path}/no\\nsuch' does not exist"
    )


# -- names a driver sees ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("driver", "name", "options", "message"),
    [
        ("d\nx", "n", {}, "Invalid docker volume driver 'd\\nx'"),
        ("d", "a\nb", {}, "Invalid docker volume name 'a\\nb'"),
        ("d", "n\0", {}, "Invalid docker volume name 'n\\0'"),
        ("d", "n", {"k\0": "v"}, "Invalid docker volume driver option 'k\\0'"),
        (
            "d",
            "n",
            {"size": "1\x1b[2J"},
            "Invalid value of docker volume driver option 'size' '1\\x1b[2J'",
        ),
        ("d", "n\u202e", {}, "Invalid docker volume name 'n\\u202e'"),
    ],
    ids=["driver", "name", "name_nul", "option_key", "option_value", "bidi_override"],
)
def test_names_with_control_characters_are_refused(
    host: Host, driver: str, name: str, options: dict[str, str], message: str
) -> None:
    config = container_config(str(host.box), [docker_volume(driver, name, "data", options)])
    assert host.refused(config) == (
        f"{message} for container c: must not contain control characters"
    )


def test_a_missing_driver_message_escapes_the_name(host: Host) -> None:
    config = container_config(str(host.box), [docker_volume(None, "a\nb", "data")])
    assert host.refused(config) == (
        "The volume driver is not specified for volume 'a\\nb' with container c"
    )


def test_other_volume_types_keep_their_paths_unchecked(host: Host) -> None:
    """Only Docker volumes are this isolator's: another isolator judges a host path volume."""
    host_path = Volume(container_path="../elsewhere", mode=Volume.RW)
    host_path.source.type = Volume.Source.HOST_PATH
    config = container_config(str(host.box), [host_path])
    with running_isolator(host.flags, host.client) as isolator:
        assert isolator.prepare(container_id("c"), config).get(WAIT) is None


# -- what the driver answers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("mount_point", "problem"),
    [
        ("/vol\0/../etc", "must not contain a NUL character"),
        ("relative/vol", "must be an absolute path"),
    ],
)
def test_a_mount_point_no_launcher_can_bind_is_refused(
    host: Host, mount_point: str, problem: str
) -> None:
    host.client.script("mount", "d", "n", mount_point)
    shown = mount_point.replace("\0", "\\0")
    assert host.refused_after_mount(volume_at(host.box, "data")) == (
        f"Invalid mount point '{shown}' from driver 'd' for volume 'n': {problem}"
    )


# -- docker_volume_chown gives away only a real directory ---------------------------------


def owner(path: str | Path) -> tuple[int, int]:
    status = os.lstat(path)
    return status.st_uid, status.st_gid


def as_user(config: ContainerConfig, user: str) -> ContainerConfig:
    config.user = user
    return config


@pytest.mark.parametrize("mount_point", ["/", "//", "/tmp/.."])
def test_chown_refuses_the_root_directory(host: Host, mount_point: str) -> None:
    host.client.script("mount", "d", "n", mount_point)
    before = owner("/")
    config = as_user(volume_at(host.box, "data"), "nobody")
    assert host.refused_after_mount(config, chown=True) == (
        f"Failed to set 'nobody' as the docker volume '{mount_point}' owner: "
        "it is the root directory '/'"
    )
    assert owner("/") == before


@pytest.mark.parametrize(
    ("kind", "problem"),
    [("symlink", "it is a symbolic link, not a directory"), ("file", "it is not a directory")],
)
def test_chown_refuses_what_is_not_a_real_directory(host: Host, kind: str, problem: str) -> None:
    aimed_at = host.tmp_path / "outside" / "host-dir"
    aimed_at.mkdir()
    mount_point = host.tmp_path / "mount-point"
    if kind == "symlink":
        mount_point.symlink_to(aimed_at)
    else:
        mount_point.write_text("")
    before = (owner(aimed_at), owner(mount_point))
    host.client.script("mount", "d", "n", str(mount_point))
    config = as_user(volume_at(host.box, "data"), "nobody")
    assert host.refused_after_mount(config, chown=True) == (
        f"Failed to set 'nobody' as the docker volume '{mount_point}' owner: {problem}"
    )
    assert (owner(aimed_at), owner(mount_point)) == before


def test_chown_message_escapes_the_user(host: Host) -> None:
    mount_point = sandbox(host.tmp_path, "mount-point")
    host.client.script("mount", "d", "n", mount_point)
    config = as_user(volume_at(host.box, "data"), "no\nbody")
    assert host.refused_after_mount(config, chown=True) == (
        f"Failed to set 'no\\nbody' as the docker volume '{mount_point}' owner: "
        "No such user 'no\\nbody'"
    )
