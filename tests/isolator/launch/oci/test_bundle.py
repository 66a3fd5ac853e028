"""The bundle's ``config.json``, as written from a launch info (no runtime needed)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from isolator.common.linux import CLONE_NEWNS, MS_BIND, MS_RDONLY, MS_REC
from isolator.launch.mounting import LaunchError
from isolator.launch.oci import remove_bundle, write_bundle
from isolator.launch.oci_bundle import (
    DEFAULT_CAPABILITIES,
    SANDBOX_ANNOTATION,
    bundle_config,
)
from isolator.protos import ContainerLaunchInfo
from tests.support.oci import EXTRA_GID, TASK_GID, TASK_UID


def _bind(source: Path, target: Path, *, read_only: bool = False) -> ContainerLaunchInfo:
    info = ContainerLaunchInfo(clone_namespaces=[CLONE_NEWNS])
    info.mounts.add(
        source=str(source),
        target=str(target),
        flags=MS_BIND | MS_REC | (MS_RDONLY if read_only else 0),
    )
    return info


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    path = tmp_path / "volume"
    path.mkdir()
    return path


@pytest.fixture
def box(tmp_path: Path) -> Path:
    path = tmp_path / "sandbox"
    (path / "data").mkdir(parents=True)
    return path


def test_the_sandbox_comes_first_then_the_volumes_inside_the_container(
    rootfs: Path, box: Path, volume: Path
) -> None:
    (rootfs / "srv").mkdir()
    info = _bind(volume, rootfs / "srv", read_only=True)
    info.mounts.add(
        source=str(volume), target=str(rootfs / "mnt/mesos/sandbox/data"), flags=MS_BIND | MS_REC
    )
    config = bundle_config(info, ["true"], rootfs=str(rootfs), sandbox=str(box), env={}, cwd=None)
    binds = [m for m in config["mounts"] if m["type"] == "bind"]
    assert binds == [
        {"destination": "/mnt/mesos/sandbox", "type": "bind", "source": str(box),
         "options": ["rbind", "rw"]},
        {"destination": "/srv", "type": "bind", "source": str(volume),
         "options": ["rbind", "rro"]},
        {"destination": "/mnt/mesos/sandbox/data", "type": "bind", "source": str(volume),
         "options": ["rbind", "rw"]},
    ]  # fmt: skip
    assert config["root"] == {"path": str(rootfs), "readonly": False}
    assert config["annotations"] == {SANDBOX_ANNOTATION: str(box)}
    assert config["process"]["cwd"] == "/mnt/mesos/sandbox"


def test_namespaces_privileges_and_proc_hardening(rootfs: Path) -> None:
    config = bundle_config(
        ContainerLaunchInfo(), ["sh"], rootfs=str(rootfs), sandbox=None, env=None, cwd="/"
    )
    linux = config["linux"]
    assert [n["type"] for n in linux["namespaces"]] == ["mount", "pid", "ipc", "uts"]
    assert linux["rootfsPropagation"] == "rslave"
    assert {"/proc/kcore", "/proc/keys", "/sys/firmware"} <= set(linux["maskedPaths"])
    assert {"/proc/sys", "/proc/sysrq-trigger"} <= set(linux["readonlyPaths"])
    process = config["process"]
    assert process["noNewPrivileges"] is True
    assert process["terminal"] is False
    assert process["capabilities"]["bounding"] == list(DEFAULT_CAPABILITIES)
    assert "CAP_SYS_ADMIN" not in DEFAULT_CAPABILITIES
    assert len(DEFAULT_CAPABILITIES) == 14
    assert process["env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def test_a_network_namespace_only_when_asked(rootfs: Path) -> None:
    info = ContainerLaunchInfo(clone_namespaces=[CLONE_NEWNS, 0x40000000])
    config = bundle_config(info, ["sh"], rootfs=str(rootfs), sandbox=None, env={}, cwd=None)
    assert "network" in [n["type"] for n in config["linux"]["namespaces"]]


def test_the_user_is_resolved_in_the_rootfs(rootfs: Path) -> None:
    info = ContainerLaunchInfo(user="task")
    config = bundle_config(info, ["id"], rootfs=str(rootfs), sandbox=None, env={}, cwd=None)
    assert config["process"]["user"] == {
        "uid": TASK_UID, "gid": TASK_GID, "additionalGids": [EXTRA_GID],
    }  # fmt: skip
    # A non-root task keeps the capabilities only as a bound, as exec would leave them.
    assert config["process"]["capabilities"]["effective"] == []


def test_a_user_missing_from_the_rootfs_is_a_clear_error(rootfs: Path) -> None:
    info = ContainerLaunchInfo(user="nobody-here")
    with pytest.raises(LaunchError) as raised:
        bundle_config(info, ["id"], rootfs=str(rootfs), sandbox=None, env={}, cwd=None)
    assert str(raised.value) == (
        f"Failed to resolve user 'nobody-here' in the rootfs '{rootfs}': "
        "no such user in /etc/passwd"
    )


def test_the_passwd_file_is_never_read_through_a_link_out(rootfs: Path, tmp_path: Path) -> None:
    host = tmp_path / "host-passwd"
    host.write_text("evil:x:0:0::/:/bin/sh\n")
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to(f"../../../..{host}")
    info = ContainerLaunchInfo(user="evil")
    with pytest.raises(LaunchError, match="cannot read /etc/passwd"):
        bundle_config(info, ["id"], rootfs=str(rootfs), sandbox=None, env={}, cwd=None)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("{tmp}/elsewhere", "it is outside the rootfs"),
        ("{rootfs}", "it is outside the rootfs"),
        ("{rootfs}/srv/../../elsewhere", "it must be an absolute path without '..'"),
        ("{rootfs}/out/x", "points outside"),
        ("{rootfs}/mnt/mesos/sandbox/escape/x", "points outside"),
        ("{rootfs}/inner/x", "has a symbolic link along it"),
    ],
    ids=["outside", "the_rootfs_itself", "dotdot", "link_out", "sandbox_link_out", "any_link"],
)
def test_hostile_targets_are_refused(
    rootfs: Path, box: Path, volume: Path, tmp_path: Path, *, target: str, reason: str
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (rootfs / "srv").mkdir()
    (rootfs / "out").symlink_to(f"../../..{elsewhere}")
    (rootfs / "inner").symlink_to("srv")
    (box / "escape").symlink_to(str(elsewhere))
    info = ContainerLaunchInfo()
    info.mounts.add(
        source=str(volume),
        target=target.format(tmp=tmp_path, rootfs=rootfs),
        flags=MS_BIND | MS_REC,
    )
    with pytest.raises(LaunchError, match=reason):
        bundle_config(info, ["true"], rootfs=str(rootfs), sandbox=str(box), env={}, cwd=None)
    assert list(elsewhere.iterdir()) == []  # nothing was made where a link pointed


@pytest.mark.parametrize(
    "field",
    ["pre_exec_commands", "enter_namespaces", "clone_namespaces", "command"],
)
def test_what_a_bundle_cannot_carry_is_refused(rootfs: Path, field: str) -> None:
    info = ContainerLaunchInfo()
    if field == "pre_exec_commands":
        info.pre_exec_commands.add(value="mount")
    elif field == "enter_namespaces":
        info.enter_namespaces.append(CLONE_NEWNS)
    elif field == "clone_namespaces":
        info.clone_namespaces.append(0x10000000)  # CLONE_NEWUSER
    else:
        info.command.value = "true"
    with pytest.raises(
        LaunchError, match=f"Unsupported launch info for a rootfs container: {field}"
    ):
        bundle_config(info, ["true"], rootfs=str(rootfs), sandbox=None, env={}, cwd=None)


def test_a_relative_working_directory_is_refused(rootfs: Path) -> None:
    with pytest.raises(LaunchError, match="must be an absolute path inside the container"):
        bundle_config(
            ContainerLaunchInfo(), ["true"], rootfs=str(rootfs), sandbox=None, env={}, cwd="tmp"
        )


def test_the_bundle_is_private_and_removed_whole(tmp_path: Path) -> None:
    bundle = write_bundle(b'{"ociVersion": "1.0.2"}', parent=str(tmp_path))
    assert stat.S_IMODE(os.stat(bundle).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(bundle, "config.json")).st_mode) == 0o600
    remove_bundle(bundle)
    assert list(tmp_path.iterdir()) == []


def test_the_launchers_help_documents_the_rootfs_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "isolator.launcher", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    for option in ("--rootfs=DIR", "--sandbox=DIR", "--runtime=NAME", "--runtime-root=DIR"):
        assert option in done.stdout
    assert "/run/isolator/oci/<runtime name>" in done.stdout
    assert "/mnt/mesos/sandbox" in done.stdout
