"""The plugin's socket: mode 0660 whatever the umask (under ``umask 000`` it was
``srwxrwxrwx``, so any local user could Mount or Remove volumes), group ``--socket-group``."""

from __future__ import annotations

import grp
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from isolator.plugin import SOCKET_MODE, PluginError, VolumePlugin
from tests.support.plugin_http import ok
from tests.support.plugin_process import console_script, serving
from tests.support.waits import WAIT


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="vps-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def other_group() -> grp.struct_group:
    """A group the socket may be given that is not this process's own."""
    allowed = None if os.geteuid() == 0 else set(os.getgroups())
    for group in grp.getgrall():
        if group.gr_gid != os.getegid() and (allowed is None or group.gr_gid in allowed):
            return group
    pytest.skip("no second group to give the socket to")


def mode(path: Path) -> int:
    info = os.lstat(path)
    assert stat.S_ISSOCK(info.st_mode)
    return stat.S_IMODE(info.st_mode)


def test_the_socket_is_0660_under_umask_000(workdir: Path) -> None:
    sock = workdir / "p.sock"
    with serving("--socket", str(sock), "--root", str(workdir / "r"), umask=0o000):
        assert mode(sock) == SOCKET_MODE == 0o660
        assert os.stat(sock).st_gid == os.getegid()
        assert [p.name for p in workdir.iterdir() if p.name.startswith(".")] == []
    assert not sock.exists()


def test_the_socket_is_0660_in_process_too(workdir: Path) -> None:
    with VolumePlugin(socket_path=workdir / "p.sock", root=workdir / "r") as plugin:
        assert mode(Path(plugin.socket_path)) == 0o660
        assert ok(plugin, "Plugin.Activate") == {"Implements": ["VolumeDriver"]}


@pytest.mark.parametrize("by", ["name", "gid"])
def test_socket_group_by_name_or_gid(workdir: Path, by: str) -> None:
    group = other_group()
    sock = workdir / "p.sock"
    given = group.gr_name if by == "name" else str(group.gr_gid)
    args = ["--socket", str(sock), "--root", str(workdir / "r"), "--socket-group", given]
    with serving(*args, umask=0o000) as (_, stderr):
        info = os.stat(sock)
        assert (info.st_gid, stat.S_IMODE(info.st_mode)) == (group.gr_gid, 0o660)
    assert f"socket mode 660, group {group.gr_gid}".encode() in stderr


def test_an_unknown_socket_group_fails_start_naming_it(workdir: Path) -> None:
    sock = workdir / "p.sock"
    argv = ["--socket", str(sock), "--root", str(workdir / "r"), "--socket-group", "no-such-grp"]
    proc = console_script(*argv)
    out, err = proc.communicate(timeout=2 * WAIT)
    assert (proc.returncode, out) == (1, b"")
    message = "cannot start the volume plugin: unknown socket group 'no-such-grp': no such group"
    assert message in err.decode()
    assert not sock.exists()
    with pytest.raises(PluginError, match="unknown socket group 'x-no-such'"):
        VolumePlugin(socket_path=sock, root=workdir / "r", socket_group="x-no-such").start()
