"""The reference volume plugin, driven over its unix socket exactly as Docker or dvdcli would."""

from __future__ import annotations

import http.client
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from isolator.plugin import (
    CONTENT_TYPE,
    PluginError,
    StateError,
    VolumePlugin,
    main,
)
from tests.support.plugin_http import UnixConnection, call, err, ok, post
from tests.support.plugin_process import console_script, serving
from tests.support.waits import WAIT

ID_A = "a" * 64
ID_B = "b" * 64


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short directory under /tmp (unix socket paths are limited to ~107 bytes)."""
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="vp-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def allowed(workdir: Path) -> Path:
    """A directory the operator allows mountpoints in (``--allow-mountpoint``)."""
    path = workdir / "allowed"
    path.mkdir()
    return path


@pytest.fixture
def plugin(workdir: Path, allowed: Path) -> Iterator[VolumePlugin]:
    with VolumePlugin(
        socket_path=workdir / "p.sock", root=workdir / "root", allowed_mountpoints=[allowed]
    ) as running:
        yield running


# -- the protocol ---------------------------------------------------------------------------


def test_activate_with_an_empty_body(plugin: VolumePlugin) -> None:
    assert ok(plugin, "Plugin.Activate") == {"Implements": ["VolumeDriver"]}
    assert plugin.calls[-1] == ("Plugin.Activate", {})


def test_requests_need_no_content_type(plugin: VolumePlugin) -> None:
    body = b'{"Name":"v","Opts":null}\n'
    request = (
        b"POST /VolumeDriver.Create HTTP/1.1\r\nHost: plugin.moby.localhost\r\n"
        b"Accept: application/vnd.docker.plugins.v1.2+json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(plugin.socket_path)
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    head, _, payload = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert f"Content-Type: {CONTENT_TYPE}".encode() in head
    assert json.loads(payload) == {"Err": ""}
    assert ok(plugin, "VolumeDriver.Get", {"Name": "v"})["Volume"]["Name"] == "v"


def test_a_chunked_body_is_read(plugin: VolumePlugin) -> None:
    conn = UnixConnection(plugin.socket_path)
    try:
        conn.request("POST", "/VolumeDriver.Create", body=iter([b'{"Name":', b'"c"}\n']))
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())) == (200, {"Err": ""})
    finally:
        conn.close()
    assert ok(plugin, "VolumeDriver.List", {})["Volumes"][0]["Name"] == "c"


def test_a_kept_alive_connection_serves_many_requests(plugin: VolumePlugin) -> None:
    conn = UnixConnection(plugin.socket_path)
    try:
        for _ in range(3):
            assert post(conn, "Plugin.Activate", b"").status == 200
    finally:
        conn.close()


def test_full_lifecycle(plugin: VolumePlugin) -> None:
    assert ok(plugin, "VolumeDriver.Create", {"Name": "v", "Opts": {}}) == {"Err": ""}
    home = plugin.root / "volumes" / "v"
    assert home.is_dir()

    volume = ok(plugin, "VolumeDriver.Get", {"Name": "v"})["Volume"]
    assert volume["Name"] == "v"
    assert volume["Mountpoint"] == str(home)
    assert volume["Status"] == {"count": 0, "mounts": {}}
    time.strptime(volume["CreatedAt"], "%Y-%m-%dT%H:%M:%SZ")  # RFC 3339, UTC
    assert ok(plugin, "VolumeDriver.Path", {"Name": "v"}) == {"Mountpoint": "", "Err": ""}

    reply = ok(plugin, "VolumeDriver.Mount", {"Name": "v", "ID": ID_A})
    assert reply == {"Mountpoint": str(home), "Err": ""}
    assert ok(plugin, "VolumeDriver.Path", {"Name": "v"}) == {"Mountpoint": str(home), "Err": ""}
    assert ok(plugin, "VolumeDriver.List", {}) == {
        "Volumes": [dict(volume, Status={"count": 1, "mounts": {ID_A: 1}})],
        "Err": "",
    }
    assert ok(plugin, "VolumeDriver.Capabilities", {}) == {"Capabilities": {"Scope": "local"}}

    assert ok(plugin, "VolumeDriver.Unmount", {"Name": "v", "ID": ID_A}) == {"Err": ""}
    assert ok(plugin, "VolumeDriver.Remove", {"Name": "v"}) == {"Err": ""}
    assert not home.exists()
    assert ok(plugin, "VolumeDriver.List", {}) == {"Volumes": [], "Err": ""}
    assert err(plugin, "VolumeDriver.Get", {"Name": "v"}) == "volume v not found"


def test_list_and_capabilities_accept_an_empty_body(plugin: VolumePlugin) -> None:
    assert ok(plugin, "VolumeDriver.List") == {"Volumes": [], "Err": ""}
    assert ok(plugin, "VolumeDriver.Capabilities") == {"Capabilities": {"Scope": "local"}}


@pytest.mark.parametrize(
    "body", [{"Name": "v"}, {"Name": "v", "Opts": None}, {"Name": "v", "Opts": {}}]
)
def test_create_is_idempotent(plugin: VolumePlugin, body: dict[str, object]) -> None:
    ok(plugin, "VolumeDriver.Create", {"Name": "v"})
    created = ok(plugin, "VolumeDriver.Get", {"Name": "v"})["Volume"]
    assert ok(plugin, "VolumeDriver.Create", body) == {"Err": ""}
    assert ok(plugin, "VolumeDriver.List", {})["Volumes"] == [created]


def test_mountpoint_option(plugin: VolumePlugin, allowed: Path) -> None:
    target = allowed / "data" / "images"
    ok(plugin, "VolumeDriver.Create", {"Name": "img", "Opts": {"mountpoint": str(target)}})
    assert target.is_dir()
    target.rmdir()  # Mount recreates a missing directory
    reply = ok(plugin, "VolumeDriver.Mount", {"Name": "img", "ID": ID_A})
    assert reply["Mountpoint"] == str(target)
    assert target.is_dir()
    (target / "keep").write_text("data")
    ok(plugin, "VolumeDriver.Unmount", {"Name": "img", "ID": ID_A})
    ok(plugin, "VolumeDriver.Remove", {"Name": "img"})
    assert (target / "keep").read_text() == "data"  # only the plugin's own directories go


def test_relative_mountpoint_is_refused(plugin: VolumePlugin) -> None:
    message = err(plugin, "VolumeDriver.Create", {"Name": "v", "Opts": {"mountpoint": "rel/dir"}})
    assert "mountpoint" in message
    assert "absolute" in message
    assert ok(plugin, "VolumeDriver.List", {})["Volumes"] == []


def test_unknown_option_is_refused(plugin: VolumePlugin) -> None:
    message = err(plugin, "VolumeDriver.Create", {"Name": "v", "Opts": {"size": "10G"}})
    assert "'size'" in message
    assert ok(plugin, "VolumeDriver.List", {})["Volumes"] == []


@pytest.mark.parametrize("name", ["", "a/b", ".", "..", "a\0b", None])
def test_invalid_names_are_refused(plugin: VolumePlugin, name: str | None) -> None:
    body = {} if name is None else {"Name": name}
    assert "invalid volume name" in err(plugin, "VolumeDriver.Create", body)
    assert ok(plugin, "VolumeDriver.List", {})["Volumes"] == []


def test_unknown_volume_is_an_error_everywhere_but_unmount(plugin: VolumePlugin) -> None:
    for method in ("Remove", "Mount", "Path", "Get"):
        body = {"Name": "nope", "ID": ID_A}
        assert err(plugin, f"VolumeDriver.{method}", body) == "volume nope not found"


@pytest.mark.parametrize("name", ["nope", "a/b", ""])
def test_unmount_of_an_unknown_volume_succeeds_and_creates_nothing(
    plugin: VolumePlugin, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    # After a failed prepare the isolator unmounts volumes whose Create this plugin refused:
    # an error would strand the isolator's checkpoint (issue 10).
    caplog.set_level("INFO", logger="isolator.plugin")
    assert ok(plugin, "VolumeDriver.Unmount", {"Name": name, "ID": ID_A}) == {"Err": ""}
    assert ok(plugin, "VolumeDriver.List", {})["Volumes"] == []
    assert os.listdir(plugin.root / "volumes") == []
    assert (
        f"Unmount of volume {name!r}, which does not exist: nothing to release" in caplog.messages
    )


# -- mount counting -------------------------------------------------------------------------


def mounts(plugin: VolumePlugin, name: str) -> dict[str, int]:
    result: dict[str, int] = ok(plugin, "VolumeDriver.Get", {"Name": name})["Volume"]["Status"][
        "mounts"
    ]
    return result


@pytest.fixture
def ids_plugin(workdir: Path) -> Iterator[VolumePlugin]:
    """The plugin counting a set of IDs (``--count ids``)."""
    with VolumePlugin(socket_path=workdir / "i.sock", root=workdir / "ids", count="ids") as p:
        yield p


def test_mounts_are_counted_per_id_in_ids_mode(ids_plugin: VolumePlugin) -> None:
    plugin = ids_plugin
    ok(plugin, "VolumeDriver.Create", {"Name": "v"})
    for mount_id in (ID_A, ID_B, ID_A):
        ok(plugin, "VolumeDriver.Mount", {"Name": "v", "ID": mount_id})
    assert mounts(plugin, "v") == {ID_A: 2, ID_B: 1}

    # An ID is one caller: its Unmount releases it, however many Mounts it sent.
    ok(plugin, "VolumeDriver.Unmount", {"Name": "v", "ID": ID_A})
    assert mounts(plugin, "v") == {ID_B: 1}
    assert ok(plugin, "VolumeDriver.Path", {"Name": "v"})["Mountpoint"] != ""
    ok(plugin, "VolumeDriver.Unmount", {"Name": "v", "ID": ID_B})
    assert mounts(plugin, "v") == {}
    assert ok(plugin, "VolumeDriver.Path", {"Name": "v"})["Mountpoint"] == ""

    mount_calls = [c.body["ID"] for c in plugin.calls if c.method == "VolumeDriver.Mount"]
    assert mount_calls == [ID_A, ID_B, ID_A]


def test_unmount_by_an_id_that_holds_no_mount_succeeds_and_releases_nothing_in_ids_mode(
    ids_plugin: VolumePlugin, caplog: pytest.LogCaptureFixture
) -> None:
    # As Docker's local driver: a re-sent Unmount, or one after a plugin restart, is fine.
    plugin = ids_plugin
    caplog.set_level("INFO", logger="isolator.plugin")
    ok(plugin, "VolumeDriver.Create", {"Name": "v"})
    ok(plugin, "VolumeDriver.Mount", {"Name": "v", "ID": ID_A})
    assert ok(plugin, "VolumeDriver.Unmount", {"Name": "v", "ID": ID_B}) == {"Err": ""}
    assert mounts(plugin, "v") == {ID_A: 1}
    ok(plugin, "VolumeDriver.Unmount", {"Name": "v", "ID": ID_A})
    assert ok(plugin, "VolumeDriver.Unmount", {"Name": "v", "ID": ID_A}) == {"Err": ""}  # twice
    assert mounts(plugin, "v") == {}
    assert (plugin.root / "volumes" / "v").is_dir()
    expected = f"Unmount of volume v by ID {ID_A!r}, which holds no mount: nothing to release"
    assert expected in caplog.messages


def test_a_missing_id_counts_as_the_empty_id(ids_plugin: VolumePlugin) -> None:
    plugin = ids_plugin
    ok(plugin, "VolumeDriver.Create", {"Name": "v", "Opts": {}})
    ok(plugin, "VolumeDriver.Mount", {"Name": "v"})  # dvdcli / Docker <= 1.11
    assert mounts(plugin, "v") == {"": 1}
    ok(plugin, "VolumeDriver.Unmount", {"Name": "v", "ID": ID_A})  # another caller: no change
    assert mounts(plugin, "v") == {"": 1}
    ok(plugin, "VolumeDriver.Unmount", {"Name": "v"})
    assert mounts(plugin, "v") == {}


def test_remove_while_mounted_is_refused(plugin: VolumePlugin) -> None:
    ok(plugin, "VolumeDriver.Create", {"Name": "v"})
    ok(plugin, "VolumeDriver.Mount", {"Name": "v", "ID": ID_A})
    ok(plugin, "VolumeDriver.Mount", {"Name": "v", "ID": ID_B})
    message = err(plugin, "VolumeDriver.Remove", {"Name": "v"})
    assert message == "volume v is in use (mount count 2, by 2 ID(s))"
    ok(plugin, "VolumeDriver.Unmount", {"Name": "v", "ID": ID_B})
    assert err(plugin, "VolumeDriver.Remove", {"Name": "v"}) == (
        "volume v is in use (mount count 1, by 1 ID(s))"
    )
    assert (plugin.root / "volumes" / "v").is_dir()
    ok(plugin, "VolumeDriver.Unmount", {"Name": "v", "ID": ID_A})
    ok(plugin, "VolumeDriver.Remove", {"Name": "v"})


def test_concurrent_mounts_and_unmounts_end_at_zero(plugin: VolumePlugin) -> None:
    ok(plugin, "VolumeDriver.Create", {"Name": "v"})
    start = threading.Barrier(20)
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        mount_id = f"{index:064x}"
        try:
            start.wait(timeout=10)
            ok(plugin, "VolumeDriver.Mount", {"Name": "v", "ID": mount_id})
            ok(plugin, "VolumeDriver.Mount", {"Name": "v", "ID": mount_id})
            ok(plugin, "VolumeDriver.Unmount", {"Name": "v", "ID": mount_id})
            ok(plugin, "VolumeDriver.Unmount", {"Name": "v", "ID": mount_id})
        except BaseException as error:  # reported below, from the test's own thread
            failures.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures
    assert mounts(plugin, "v") == {}
    assert sum(c.method == "VolumeDriver.Mount" for c in plugin.calls) == 40


# -- errors of the transport ----------------------------------------------------------------


def test_unknown_endpoint_is_404_plain_text(plugin: VolumePlugin) -> None:
    reply = call(plugin, "VolumeDriver.Frobnicate", {})
    assert reply.status == 404
    assert reply.content_type is not None
    assert reply.content_type.startswith("text/plain")
    assert reply.body == b"404 page not found\n"


@pytest.mark.parametrize(
    "raw", [b"{not json", b'["Name"]', b'{"Name": 5}', b'{"Name":"v","Opts":[]}']
)
def test_malformed_bodies_are_400_with_err(plugin: VolumePlugin, raw: bytes) -> None:
    reply = call(plugin, "VolumeDriver.Create", raw=raw)
    assert reply.status == 400
    assert reply.content_type == CONTENT_TYPE
    assert reply.json()["Err"].startswith("bad request")
    assert ok(plugin, "VolumeDriver.List", {})["Volumes"] == []


# -- state and lifecycle ----------------------------------------------------------------------


def test_a_restarted_plugin_keeps_volumes_and_counts(workdir: Path, allowed: Path) -> None:
    sock, root, own = workdir / "p.sock", workdir / "root", allowed / "w"
    with VolumePlugin(socket_path=sock, root=root, allowed_mountpoints=[allowed]) as first:
        ok(first, "VolumeDriver.Create", {"Name": "v"})
        ok(first, "VolumeDriver.Create", {"Name": "w", "Opts": {"mountpoint": str(own)}})
        ok(first, "VolumeDriver.Mount", {"Name": "v", "ID": ID_A})
        ok(first, "VolumeDriver.Mount", {"Name": "v", "ID": ID_A})
        ok(first, "VolumeDriver.Mount", {"Name": "w", "ID": ID_B})
        before = ok(first, "VolumeDriver.List", {})
    assert not sock.exists()
    stored = json.loads((root / "state" / "v-v.json").read_text())
    assert (stored["count"], stored["mounts"]) == (2, {ID_A: 2})
    assert sorted(os.listdir(root / "state")) == ["v-v.json", "v-w.json"]  # no temp files

    with VolumePlugin(socket_path=sock, root=root, allowed_mountpoints=[allowed]) as second:
        assert second.calls == []
        assert ok(second, "VolumeDriver.List", {}) == before
        assert ok(second, "VolumeDriver.Path", {"Name": "w"})["Mountpoint"] == str(own)
        assert mounts(second, "v") == {ID_A: 2}
        ok(second, "VolumeDriver.Unmount", {"Name": "v", "ID": ID_A})
        assert mounts(second, "v") == {ID_A: 1}  # Docker's rule: one Unmount, one Mount
        ok(second, "VolumeDriver.Unmount", {"Name": "v", "ID": ID_A})
        assert mounts(second, "v") == {}


def test_an_explicit_state_dir(workdir: Path) -> None:
    state = workdir / "elsewhere" / "plugin"
    with VolumePlugin(socket_path=workdir / "p.sock", root=workdir / "r", state_dir=state) as p:
        assert p.state_dir == state
        ok(p, "VolumeDriver.Create", {"Name": "v"})
    assert json.loads((state / "v-v.json").read_text())["name"] == "v"
    assert not (workdir / "r" / "state").exists()


@pytest.mark.parametrize(
    "text",
    [
        "{oops",
        "[]",
        '{"version": 1}',
        '{"version": 2, "name": "w"}',
        '{"version": 2, "name": "v", "mountpoint": 3}',
        '{"version": 2, "name": "v", "mountpoint": "/x", "created_at": "", "count": -1}',
    ],
)
def test_a_corrupt_state_file_fails_start(workdir: Path, text: str) -> None:
    state = workdir / "state" / "v-v.json"
    state.parent.mkdir()
    state.write_text(text)
    plugin = VolumePlugin(
        socket_path=workdir / "p.sock", root=workdir / "r", state_dir=state.parent
    )
    with pytest.raises(StateError, match="corrupt plugin state file") as raised:
        plugin.start()
    assert str(state) in str(raised.value)
    assert not plugin.running
    assert not (workdir / "p.sock").exists()


def test_a_stale_socket_is_replaced(workdir: Path) -> None:
    sock = workdir / "p.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock))
    stale.close()  # the file stays, nobody listens
    with VolumePlugin(socket_path=sock, root=workdir / "r") as plugin:
        assert ok(plugin, "Plugin.Activate")["Implements"] == ["VolumeDriver"]
    assert not sock.exists()


def test_a_live_socket_or_a_plain_file_is_not_taken_over(
    workdir: Path, plugin: VolumePlugin
) -> None:
    with pytest.raises(PluginError, match="another process"):
        VolumePlugin(socket_path=plugin.socket_path, root=workdir / "other").start()
    assert ok(plugin, "Plugin.Activate")["Implements"] == ["VolumeDriver"]

    plain = workdir / "file.sock"
    plain.write_text("")
    with pytest.raises(PluginError, match="not a socket"):
        VolumePlugin(socket_path=plain, root=workdir / "other").start()
    assert plain.exists()


def test_stop_ends_idle_connections_and_is_idempotent(workdir: Path) -> None:
    plugin = VolumePlugin(socket_path=workdir / "p.sock", root=workdir / "r").start()
    with pytest.raises(PluginError, match="already running"):
        plugin.start()
    conn = UnixConnection(plugin.socket_path)
    try:
        assert post(conn, "Plugin.Activate", b"").status == 200  # the connection stays open
        plugin.stop()
        plugin.stop()
        assert not Path(plugin.socket_path).exists()
        with pytest.raises((OSError, http.client.HTTPException)):
            post(conn, "Plugin.Activate", b"")
    finally:
        conn.close()


# -- the console script -------------------------------------------------------------------------


def post_ok(sock: Path) -> bool:
    conn = UnixConnection(str(sock), timeout=5.0)
    try:
        return post(conn, "Plugin.Activate", b"").status == 200
    finally:
        conn.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_console_script_serves_until_signalled(workdir: Path, signum: int) -> None:
    sock, root = workdir / "cli.sock", workdir / "root"
    with serving("--socket", str(sock), "--root", str(root)) as (proc, stderr):
        assert post_ok(sock)
        proc.send_signal(signum)
    assert proc.returncode == 0, stderr
    assert not sock.exists()
    assert b"serving on" in stderr


def test_console_script_json_logs_limits_and_allowed_mountpoints(workdir: Path) -> None:
    sock, root, allowed = workdir / "cli.sock", workdir / "root", workdir / "allowed"
    allowed.mkdir()
    args = ["--socket", str(sock), "--root", str(root), "--allow-mountpoint", str(allowed)]
    args += ["--log-format", "json", "--log-level", "DEBUG", "--request-timeout", "5"]
    with serving(*args, "--max-connections", "8", "--max-workers", "2") as (proc, stderr):
        conn = UnixConnection(str(sock))
        try:
            for name, mountpoint in (("in", allowed / "in"), ("out", workdir / "out")):
                body = json.dumps({"Name": name, "Opts": {"mountpoint": str(mountpoint)}})
                reply = post(conn, "VolumeDriver.Create", body.encode())
                assert reply.status == (200 if name == "in" else 500), reply.body
        finally:
            conn.close()
    assert proc.returncode == 0, stderr
    assert (allowed / "in").is_dir()
    assert not (workdir / "out").exists()
    lines = [json.loads(line) for line in stderr.decode().splitlines()]
    assert all(set(line) == {"time", "level", "logger", "message"} for line in lines), lines
    assert all(time.strptime(line["time"][:19], "%Y-%m-%dT%H:%M:%S") for line in lines)
    messages = {(line["level"], line["logger"], line["message"]) for line in lines}
    serving_on = f"volume plugin cli serving on {sock}; mountpoints allowed in "
    serving_on += repr([str(root / "volumes"), str(allowed)])
    assert ("INFO", "isolator.plugin.server", serving_on) in messages
    access = ("DEBUG", "isolator.plugin.http_server")
    assert (*access, 'volume plugin cli: "POST /VolumeDriver.Create" 500') in messages


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (["--allow-mountpoint", "/"], "allowed mountpoint directory '/' is the whole host"),
        (
            ["--state-dir", "/proc/self/status"],
            "cannot read plugin state directory /proc/self/status: Not a directory",
        ),
    ],
)
def test_console_script_says_why_it_cannot_start(
    workdir: Path, extra: list[str], reason: str
) -> None:
    sock = workdir / "p.sock"
    argv = ["--socket", str(sock), "--root", str(workdir / "r"), "--log-level", "WARNING"]
    proc = console_script(*argv, *extra)
    out, err = proc.communicate(timeout=2 * WAIT)
    assert (proc.returncode, out) == (1, b"")
    [line] = err.decode().splitlines()  # nothing below WARNING
    assert f" ERROR isolator.plugin.cli: cannot start the volume plugin: {reason}" in line
    assert not sock.exists()


def test_console_script_prints_its_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--version"])
    assert raised.value.code == 0
    version = importlib.metadata.version("docker-volume-isolator")
    assert capsys.readouterr().out == f"isolator-volume-plugin {version}\n"


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--max-connections", "0"), ("--max-workers", "x"), ("--request-timeout", "-1")],
)
def test_console_script_refuses_a_bad_limit(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--socket", "s", "--root", "r", flag, value])
    assert raised.value.code == 2
    message = f"argument {flag}: must be a positive number, not {value!r}"
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv", [[], ["--root", "/tmp/x"], ["--socket", "s", "--root", "r", "--bogus"]]
)
def test_console_script_bad_arguments_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_console_script_that_cannot_start_exits_1(workdir: Path) -> None:
    (workdir / "state").mkdir()
    (workdir / "state" / "v-v.json").write_text("{oops")
    argv = ["--socket", str(workdir / "p.sock"), "--root", str(workdir)]
    assert main(argv) == 1
