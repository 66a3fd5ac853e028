"""``isolator-ctl plugins`` and ``doctor`` against the reference plugin as a real process,
and fake plugins for what it never does (another plugin kind, a hang)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from isolator.common.filesystems import filesystem_of
from isolator.ctl import main
from isolator.ctl.doctor import REBOOT_WARNING
from isolator.docker.state import VolumeKey, checkpoint_container
from isolator.protos import ContainerID
from tests.support.plugin_fakes import Hang, Reply, fake_plugin_loop, plugin_env
from tests.support.plugin_http import UnixConnection, post
from tests.support.plugin_process import serving
from tests.support.repo import REPO

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the isolator's host checks need root")


@dataclass
class Host:
    """Plugin directories under a short root (unix socket paths are limited)."""

    root: Path

    @property
    def sockets(self) -> Path:
        return self.root / "run"

    @property
    def specs(self) -> Path:
        return self.root / "etc"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def dirs(self) -> list[str]:
        return ["--socket-dir", str(self.sockets), "--spec-dir", str(self.specs)]


@pytest.fixture
def host() -> Iterator[Host]:
    root = Path(tempfile.mkdtemp(dir="/tmp", prefix="ctl-"))
    try:
        found = Host(root)
        found.sockets.mkdir()
        found.specs.mkdir()
        yield found
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def local_plugin(host: Host) -> Iterator[Path]:
    """``isolator-volume-plugin`` serving as ``local`` in the socket directory."""
    sock = host.sockets / "local.sock"
    with serving("--socket", str(sock), "--root", str(host.root / "plugin")):
        yield sock


def stale_socket(path: Path) -> None:
    """A socket file nobody listens on: a plugin that died."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))


def ctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv), environ={})
    out, err = capsys.readouterr()
    assert err == ""
    return code, out


def ctl_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code, out = ctl(capsys, *argv, "--json")
    return code, json.loads(out)


# -- plugins -------------------------------------------------------------------------------


def test_plugins_lists_an_activated_volume_driver(
    host: Host, local_plugin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = ctl(capsys, "plugins", *host.dirs())
    assert code == 0
    address = f"unix://{local_plugin}"
    assert out.splitlines() == [
        "NAME    ADDRESS".ljust(8 + len(address)) + "   ACTIVATED   IMPLEMENTS     CAPABILITIES",
        f"local   {address}   yes         VolumeDriver   Scope=local",
    ]
    code, document = ctl_json(capsys, "plugins", *host.dirs())
    assert code == 0
    assert document == {
        "socket_dir": str(host.sockets),
        "spec_dirs": [str(host.specs)],
        "plugins": [
            {
                "name": "local",
                "address": address,
                "source": str(local_plugin),
                "activated": True,
                "implements": ["VolumeDriver"],
                "capabilities": {"Scope": "local"},
                "error": None,
            }
        ],
    }


def test_plugins_in_discovery_order_with_their_failures(
    host: Host, local_plugin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale_socket(host.sockets / "dead.sock")
    (host.specs / "bad.spec").write_text("ftp://127.0.0.1:21")
    code, document = ctl_json(capsys, "plugins", *host.dirs())
    assert code == 1
    plugins = {entry["name"]: entry for entry in document["plugins"]}
    assert list(plugins) == ["dead", "local", "bad"]  # sockets by name, then spec files
    assert plugins["local"]["activated"] is True
    assert plugins["dead"]["activated"] is False
    assert plugins["dead"]["error"].startswith(
        f"Docker volume plugin 'dead' at unix://{host.sockets}/dead.sock is not answering "
        "Plugin.Activate: "
    )
    assert plugins["bad"]["address"] == ""
    assert "Unknown protocol in 'ftp://127.0.0.1:21'" in plugins["bad"]["error"]
    code, out = ctl(capsys, "plugins", *host.dirs())
    assert code == 1
    assert "\ndead: Docker volume plugin 'dead' at " in out
    assert "\nbad: Docker volume plugin 'bad': " in out


def test_plugins_shows_other_kinds_and_hangs_within_the_timeout(
    host: Host, capsys: pytest.CaptureFixture[str]
) -> None:
    def network_driver(body: Any) -> Reply:
        return 200, {"Implements": ["NetworkDriver"]}

    def hang(body: Any) -> Reply:
        return Hang()

    with fake_plugin_loop() as loop, plugin_env(loop) as env:
        env.plugin("net", Plugin_Activate=network_driver)
        env.plugin("slow", Plugin_Activate=hang)
        argv = ["plugins", "--socket-dir", str(env.sockets), "--spec-dir", str(env.etc)]
        code, document = ctl_json(capsys, *argv, "--timeout", "0.5")
    assert code == 1
    net, slow = document["plugins"]
    assert (net["name"], net["activated"], net["implements"]) == ("net", True, ["NetworkDriver"])
    assert net["capabilities"] is None
    assert (slow["name"], slow["activated"]) == ("slow", False)
    assert slow["error"] == "did not answer within 0.5 s"


def test_no_plugins_is_no_failure(host: Host, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = ctl(capsys, "plugins", *host.dirs())
    assert code == 0
    assert out.endswith(f"No plugins in {host.sockets}, {host.specs}\n")


def test_request_lines_stay_out_of_info_logs(host: Host, local_plugin: Path) -> None:
    def stderr_at(level: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "isolator.ctl", "--log-level", level, "plugins", *host.dirs()],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            cwd=REPO,
        )
        return done.stderr

    info = stderr_at("INFO")
    assert "activated Docker volume plugin 'local'" in info
    assert "HTTP Request" not in info
    assert "HTTP Request: POST http://plugin.moby.localhost/Plugin.Activate" in stderr_at("DEBUG")


# -- doctor --------------------------------------------------------------------------------


@needs_root
def test_doctor_passes_on_a_good_host(
    host_unchanged: None, host: Host, local_plugin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host.checkpoints.mkdir()
    argv = ["doctor", *host.dirs(), "--checkpoint-dir", str(host.checkpoints)]
    code, out = ctl(capsys, *argv)
    assert code == 0, out
    lines = out.splitlines()
    assert "OK    root: running as root" in lines
    assert "OK    mount namespaces: the launcher ran a command in a new mount namespace" in lines
    assert f"OK    checkpoint directory: '{host.checkpoints}' exists and is writable" in lines
    assert "OK    checkpoints: none" in lines
    assert f"OK    plugin socket directory: '{host.sockets}' exists" in lines
    assert f"OK    plugin spec directory: '{host.specs}' exists" in lines
    assert f"OK    plugin local: activated at unix://{local_plugin}" in lines
    assert not [line for line in lines if line.startswith("FAIL")]
    assert lines[-1].startswith("0 failure(s), ")
    assert os.listdir(host.checkpoints) == []  # the write check leaves nothing behind
    code, document = ctl_json(capsys, *argv)
    assert code == 0
    assert document["failures"] == 0
    assert {"check": "root", "status": "ok", "detail": "running as root"} in document["checks"]


@needs_root
def test_doctor_fails_on_a_broken_host(
    host: Host, local_plugin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = host.root / "file"
    blocker.write_text("")
    stale_socket(host.sockets / "dead.sock")
    checkpoints = host.root / "ckpt"
    checkpoints.mkdir()
    (checkpoints / "c1").mkdir()
    (checkpoints / "c1" / "volumes").write_text("{")
    code, out = ctl(capsys, "doctor", *host.dirs(), f"--docker_volume_checkpoint_dir={blocker}/x")
    assert code == 1
    lines = out.splitlines()
    assert (
        f"FAIL  checkpoint directory: '{blocker}/x' does not exist and cannot be created "
        f"under '{blocker}'"
    ) in lines
    assert any(line.startswith("FAIL  plugin dead: does not activate: ") for line in lines)
    assert f"OK    plugin local: activated at unix://{local_plugin}" in lines
    code, out = ctl(capsys, "doctor", *host.dirs(), "--checkpoint-dir", str(checkpoints))
    assert code == 1
    assert "FAIL  checkpoints: recovery would fail on 1 unreadable: c1: JSON parse failed: " in out


@needs_root
def test_doctor_checks_dvdcli_when_it_is_the_driver_client(
    host: Host, capsys: pytest.CaptureFixture[str]
) -> None:
    host.checkpoints.mkdir()
    argv = ["doctor", "--docker_volume_driver_client=dvdcli"]
    argv += ["--checkpoint-dir", str(host.checkpoints)]
    missing = str(host.root / "no-dvdcli")
    code, out = ctl(capsys, *argv, f"--dvdcli_path={missing}")
    assert code == 1
    assert (
        "FAIL  dvdcli: The 'docker/volume' isolator cannot get dvdcli command "
        f"('{missing}' is not found on PATH or is not executable)"
    ) in out.splitlines()
    assert "plugin" not in out
    dvdcli = host.root / "dvdcli"
    dvdcli.write_text("#!/bin/sh\n")
    dvdcli.chmod(stat.S_IRWXU)
    code, out = ctl(capsys, *argv, f"--dvdcli_path={dvdcli}")
    assert code == 0, out
    assert f"OK    dvdcli: '{dvdcli}'" in out.splitlines()


def test_doctor_reports_a_user_that_is_not_root(
    host: Host, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code, document = ctl_json(capsys, "doctor", *host.dirs(), "--checkpoint-dir", str(host.root))
    assert code == 1
    assert document["checks"][0] == {
        "check": "root",
        "status": "fail",
        "detail": "The 'docker/volume' isolator requires root permissions (running as uid 1000)",
    }


def test_doctor_warns_that_tmpfs_checkpoints_do_not_survive_a_reboot(
    capsys: pytest.CaptureFixture[str],
) -> None:
    if not os.path.isdir("/dev/shm") or filesystem_of("/dev/shm")[0] != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm")
    directory = tempfile.mkdtemp(dir="/dev/shm", prefix="ctl-")
    try:
        argv = ["doctor", "--checkpoint-dir", directory]
        argv += ["--socket-dir", directory, "--spec-dir", directory]
        _, document = ctl_json(capsys, *argv)
    finally:
        shutil.rmtree(directory)
    (check,) = [c for c in document["checks"] if c["check"] == "checkpoint filesystem"]
    assert check["status"] == "warn"
    assert check["detail"] == f"'{directory}' is on tmpfs (mounted at /dev/shm): {REBOOT_WARNING}"


def test_the_filesystem_of_a_path_is_its_innermost_mount() -> None:
    assert filesystem_of("/proc/self/status") == ("proc", "/proc")
    assert filesystem_of("/proc/no/such/path")[1] == "/proc"


def test_volumes_asks_the_plugin_where_each_volume_is_mounted(
    host: Host, local_plugin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    connection = UnixConnection(str(local_plugin))
    try:
        for name in ("busy", "idle"):
            body = json.dumps({"Name": name}).encode()
            assert post(connection, "VolumeDriver.Create", body).status == 200
        mounted = post(connection, "VolumeDriver.Mount", b'{"Name": "busy", "ID": "agent"}')
        mount_point = mounted.json()["Mountpoint"]
    finally:
        connection.close()
    for value, volume in (("c1", "busy"), ("c2", "busy"), ("c3", "idle")):
        checkpoint_container(
            str(host.checkpoints), ContainerID(value=value), [VolumeKey("local", volume)]
        )
    code, out = ctl(capsys, "volumes", "--checkpoint-dir", str(host.checkpoints), *host.dirs())
    assert code == 0
    assert out.splitlines() == [
        "DRIVER   VOLUME   HOLDERS   MOUNT POINT" + " " * (len(mount_point) - 8) + "CONTAINERS",
        f"local    busy     2         {mount_point}   c1, c2",
        "local    idle     1         (not mounted)" + " " * (len(mount_point) - 10) + "c3",
    ]
