"""DockerPluginClient over real sockets: fake plugins answering every form seen in the wild,
and the reference plugin of ``isolator.plugin``."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from actors import EventLoopThread, Future
from isolator.common.errors import DriverError, MountRefusedError
from isolator.drivers.discovery import PluginNotFoundError
from isolator.drivers.mount_id import default_mount_id, machine_identity
from isolator.drivers.plugin_client import DockerPluginClient
from isolator.drivers.protocol import PluginCallError, VolumePluginAPI
from isolator.drivers.transport import ACCEPT, Backoff
from tests.support.plugin_fakes import (
    Close,
    Env,
    FakePlugin,
    Hang,
    Reply,
    failure,
    fake_plugin_loop,
    plugin_env,
    submit,
)
from tests.support.waits import WAIT

HEX64 = re.compile(r"[0-9a-f]{64}")


@pytest.fixture(scope="module")
def server_loop() -> Iterator[EventLoopThread]:
    with fake_plugin_loop() as loop:
        yield loop


@pytest.fixture
def env(server_loop: EventLoopThread) -> Iterator[Env]:
    with plugin_env(server_loop) as environment:
        yield environment


# -- mount / unmount -------------------------------------------------------------------------


def test_mount_gets_creates_with_options_then_mounts(env: Env) -> None:
    plugin = env.plugin()
    client = env.client()
    mountpoint = client.mount("fake", "vol", {"size": "1G", "a": "b"}).get(WAIT)
    assert mountpoint == str(env.mounts / "vol")
    assert plugin.methods() == [
        "Plugin.Activate",
        "VolumeDriver.Get",
        "VolumeDriver.Create",
        "VolumeDriver.Mount",
    ]
    activate, get, create, mount = plugin.calls
    assert activate.raw == b""
    assert get.body == {"Name": "vol"}
    assert create.body == {"Name": "vol", "Opts": {"size": "1G", "a": "b"}}
    assert mount.body == {"Name": "vol", "ID": client.mount_id}
    assert mount.raw == f'{{"Name":"vol","ID":"{client.mount_id}"}}\n'.encode()  # as Go's
    for call in plugin.calls:
        assert call.headers["accept"] == ACCEPT
        assert "content-type" not in call.headers  # Docker sends none either
        assert call.headers["host"] == "plugin.moby.localhost"


def test_mount_of_an_existing_volume_skips_create(env: Env) -> None:
    plugin = env.plugin()
    plugin.volumes["vol"] = {}
    client = env.client()
    client.mount("fake", "vol", {"ignored": "x"}).get(WAIT)
    assert plugin.methods() == ["Plugin.Activate", "VolumeDriver.Get", "VolumeDriver.Mount"]


def test_an_implicit_create_is_logged_as_such_and_nothing_looks_failed(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    env.plugin()
    client = env.client()
    with caplog.at_level(logging.DEBUG):
        client.mount("fake", "vol", {}).get(WAIT)
        client.mount("fake", "vol", {}).get(WAIT)  # it exists now: no second line
    ours = [r for r in caplog.records if r.name.startswith("isolator")]
    creations = [r.getMessage() for r in ours if r.getMessage().startswith("Creating")]
    assert creations == [
        "Creating Docker volume 'vol' with plugin 'fake': it does not exist yet "
        "(VolumeDriver.Get: no such volume)"
    ]
    assert all(record.levelno < logging.WARNING for record in caplog.records), caplog.text


@pytest.mark.parametrize(
    "get_reply",
    [
        (200, {"Err": "no such volume"}),
        (200, {"Volume": None, "Err": ""}),
        (200, {}),
        (500, {"Err": "volume not found"}),
        (404, "404 page not found\n"),  # a plugin without Get (convoy)
    ],
)
def test_every_form_of_absent_leads_to_create(env: Env, get_reply: Reply) -> None:
    plugin = env.plugin(VolumeDriver_Get=lambda body: get_reply)
    env.client().mount("fake", "vol", {}).get(WAIT)
    assert plugin.count("VolumeDriver.Create") == 1
    assert plugin.calls[2].body == {"Name": "vol", "Opts": {}}


def test_explicit_create_refuses_a_missing_volume(env: Env) -> None:
    plugin = env.plugin()
    error = failure(env.client(explicit_create=True).mount("fake", "vol", {"a": "b"}))
    assert isinstance(error, MountRefusedError)  # nothing mounted: nothing to unmount
    assert str(error) == (
        "Docker volume 'vol' of plugin 'fake' does not exist and explicit create is on, "
        "so it is not created (VolumeDriver.Get: no such volume)"
    )
    assert plugin.methods() == ["Plugin.Activate", "VolumeDriver.Get"]


def test_explicit_create_mounts_an_existing_volume(env: Env) -> None:
    plugin = env.plugin()
    plugin.volumes["vol"] = {}
    assert env.client(explicit_create=True).mount("fake", "vol", {}).get(WAIT)
    assert plugin.count("VolumeDriver.Create") == 0


def test_unmount_sends_the_mount_id(env: Env) -> None:
    plugin = env.plugin()
    client = env.client()
    client.mount("fake", "vol", {}).get(WAIT)
    assert client.unmount("fake", "vol").get(WAIT) is None
    assert plugin.calls[-1].method == "VolumeDriver.Unmount"
    assert plugin.calls[-1].body == {"Name": "vol", "ID": client.mount_id}


def test_a_get_that_cannot_reach_the_plugin_is_an_error_not_absent(env: Env) -> None:
    plugin = env.plugin(VolumeDriver_Get=lambda body: Close())
    error = failure(env.client().mount("fake", "vol", {}))
    assert "is not answering VolumeDriver.Get" in str(error)
    assert plugin.count("VolumeDriver.Create") == 0


# -- activation ------------------------------------------------------------------------------


def test_activation_happens_once_for_many_calls(env: Env) -> None:
    plugin = env.plugin()
    client = env.client()
    futures: list[Future[Any]] = [client.mount("fake", f"v{i}", {}) for i in range(10)]
    futures += [client.unmount("fake", f"v{i}") for i in range(5)]
    for future in futures:
        future.get(WAIT)
    submit(client, client.api.path("fake", "v1")).get(WAIT)
    assert plugin.count("Plugin.Activate") == 1
    assert plugin.count("VolumeDriver.Mount") == 10


def test_a_failed_activation_is_not_cached(env: Env) -> None:
    answers = iter([(500, {"Err": "starting up"}), (200, {"Implements": ["VolumeDriver"]})])
    plugin = env.plugin(Plugin_Activate=lambda body: next(answers))
    client = env.client()
    error = failure(client.mount("fake", "vol", {}))
    assert isinstance(error, MountRefusedError)
    assert isinstance(error.__cause__, PluginCallError)
    assert str(error) == "Plugin.Activate: starting up"
    assert client.mount("fake", "vol", {}).get(WAIT)
    assert plugin.count("Plugin.Activate") == 2


@pytest.mark.parametrize(
    ("answer", "implements"),
    [
        ({"Implements": ["NetworkDriver", "IpamDriver"]}, '["NetworkDriver", "IpamDriver"]'),
        ({}, "[]"),
        ({"Implements": None}, "[]"),
    ],
)
def test_a_plugin_that_is_no_volume_driver_is_refused(
    env: Env, answer: dict[str, Any], implements: str
) -> None:
    plugin = env.plugin(Plugin_Activate=lambda body: (200, answer))
    error = failure(env.client().mount("fake", "vol", {}))
    socket_path = env.sockets / "fake.sock"
    assert str(error) == (
        f"Docker volume plugin 'fake' at unix://{socket_path} is not a volume driver: "
        f"it implements {implements}, not VolumeDriver"
    )
    assert plugin.methods() == ["Plugin.Activate"]


def test_implements_is_read_case_insensitively(env: Env) -> None:
    env.plugin(Plugin_Activate=lambda body: (200, {"implements": ["VolumeDriver"]}))
    assert env.client().mount("fake", "vol", {}).get(WAIT)


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "status", "message"),
    [
        ((200, {"Err": "boom"}), 200, "boom"),  # Docker's test plugin, Flocker, buttervolume
        ((500, {"Err": "boom"}), 500, "boom"),  # go-plugins-helpers
        ((400, {"Err": "boom"}), 400, "boom"),  # pyvolume, easyfuse
        ((200, {"err": "boom", "Mountpoint": "/"}), 200, "boom"),
        ((500, {"Error": "volume name already exists"}), 500, "volume name already exists"),
        ((500, {"Err": "", "Error": "boom"}), 500, "boom"),
        ((500, "invalid argument"), 500, "invalid argument"),  # Docker's test plugin
        ((404, "404 page not found\n"), 404, "404 page not found"),
        ((500, {"Err": None}), 500, '{"Err": null}'),
        ((500, b""), 500, "HTTP 500 Internal Server Error"),
        ((400, "x" * 3000), 400, "x" * 2000 + "..."),
        ((200, {"Err": {"code": 5}}), 200, '{"code": 5}'),
    ],
)
def test_every_error_form(env: Env, reply: Reply, status: int, message: str) -> None:
    plugin = env.plugin(VolumeDriver_Mount=lambda body: reply)
    error = failure(env.client().mount("fake", "vol", {}))
    assert isinstance(error, MountRefusedError)  # the plugin said no: nothing to unmount
    assert str(error) == f"VolumeDriver.Mount: {message}"
    cause = error.__cause__
    assert isinstance(cause, PluginCallError)
    assert (cause.plugin, cause.method, cause.status) == ("fake", "VolumeDriver.Mount", status)
    assert plugin.count("VolumeDriver.Mount") == 1  # HTTP errors are never retried


@pytest.mark.parametrize(
    "answer",
    [
        {"Mountpoint": "MP", "Err": None},  # Flocker
        {"Mountpoint": "MP", "Err": ""},
        {"Mountpoint": "MP"},  # go-plugins-helpers
        {"mountpoint": "MP", "err": ""},
        {"MOUNTPOINT": "MP", "ERR": None},
        # old helpers emit every field
        {"Mountpoint": "MP", "Err": "", "Volumes": None, "Volume": None, "Capabilities": {}},
    ],
)
def test_success_forms_and_case_insensitive_keys(env: Env, answer: dict[str, Any]) -> None:
    target = env.mounts / "here"
    target.mkdir()
    reply = json.loads(json.dumps(answer).replace("MP", str(target)))
    env.plugin(VolumeDriver_Mount=lambda body: (200, reply))
    assert env.client().mount("fake", "vol", {}).get(WAIT) == str(target)


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ((200, "<html>"), "not JSON: '<html>'"),
        ((200, [1]), "not a JSON object"),
        ((200, {"Mountpoint": 5}), "Mountpoint is 5, not a string"),
    ],
)
def test_invalid_answers(env: Env, reply: Reply, problem: str) -> None:
    env.plugin(VolumeDriver_Mount=lambda body: reply)
    error = failure(env.client().mount("fake", "vol", {}))
    assert str(error) == (
        f"Docker volume plugin 'fake' sent an invalid answer to VolumeDriver.Mount: {problem}"
    )


@pytest.mark.parametrize(
    ("mountpoint", "text"),
    [
        ("", "an empty mount point for volume 'vol'"),
        (None, "an empty mount point for volume 'vol'"),
        ("relative/dir", "a relative mount point 'relative/dir' for volume 'vol'"),
        (
            "/nonexistent/xyz",
            "mount point '/nonexistent/xyz' for volume 'vol', which does not exist",
        ),
    ],
)
def test_bad_mount_points_are_refused(env: Env, mountpoint: str | None, text: str) -> None:
    answer = {} if mountpoint is None else {"Mountpoint": mountpoint}
    env.plugin(VolumeDriver_Mount=lambda body: (200, answer))
    error = failure(env.client().mount("fake", "vol", {}))
    assert isinstance(error, DriverError)
    assert str(error) == f"Docker volume plugin 'fake' returned {text}"


# -- the mount ID ----------------------------------------------------------------------------


def test_mount_id_is_64_hex_and_stable_across_clients(env: Env) -> None:
    plugin = env.plugin()
    first, second = env.client(), env.client()
    assert HEX64.fullmatch(first.mount_id)
    assert first.mount_id == second.mount_id
    first.mount("fake", "vol", {}).get(WAIT)
    first.close()
    second.unmount("fake", "vol").get(WAIT)  # "a restarted agent"
    ids = {call.body["ID"] for call in plugin.calls if "ID" in (call.body or {})}
    assert ids == {first.mount_id}
    # Another setup on the same machine is another caller.
    assert env.client(socket_dir=str(env.root)).mount_id != first.mount_id
    assert env.client(spec_dirs=[str(env.etc)]).mount_id != first.mount_id
    # Timeouts and the like do not change who the caller is.
    assert env.client(mount_timeout=1.0, explicit_create=True).mount_id == first.mount_id


def test_mount_id_override(env: Env) -> None:
    plugin = env.plugin()
    client = env.client(mount_id="my-id")
    client.mount("fake", "vol", {}).get(WAIT)
    client.unmount("fake", "vol").get(WAIT)
    assert plugin.calls[-2].body["ID"] == "my-id"
    assert plugin.calls[-1].body["ID"] == "my-id"


def test_mount_id_derivation(env: Env) -> None:
    machine_id, dbus_id = env.root / "machine-id", env.root / "dbus-machine-id"
    dbus_id.write_text("dbus\n")
    assert machine_identity([str(machine_id), str(dbus_id)]) == "dbus"
    machine_id.write_text("  \n")  # empty: falls through
    assert machine_identity([str(machine_id), str(dbus_id)]) == "dbus"
    machine_id.write_text("abc\n")
    assert machine_identity([str(machine_id), str(dbus_id)]) == "abc"
    assert machine_identity([str(env.root / "none")]) == socket.gethostname()

    one = default_mount_id(socket_dir="/s", spec_dirs=["/a", "/b"], machine_id="m1")
    assert HEX64.fullmatch(one)
    assert one == default_mount_id(socket_dir="/s", spec_dirs=("/a", "/b"), machine_id="m1")
    assert one != default_mount_id(socket_dir="/s", spec_dirs=["/a", "/b"], machine_id="m2")
    assert one != default_mount_id(socket_dir="/s", spec_dirs=["/b", "/a"], machine_id="m1")
    assert one != default_mount_id(socket_dir="/s", spec_dirs=["/a/b"], machine_id="m1")
    assert "m1" not in one
    assert default_mount_id() == DockerPluginClient().mount_id


# -- time: hangs, dead plugins, retries ------------------------------------------------------


def test_a_plugin_that_never_answers_times_out_without_retry(env: Env) -> None:
    plugin = env.plugin(VolumeDriver_Mount=lambda body: Hang())
    client = env.client(mount_timeout=0.3)
    error = failure(client.mount("fake", "vol", {}))
    assert env.time.sleeps == []
    # The mount timeout bounds the whole mount; it ran out while Mount was unanswered.
    assert str(error) == (
        "Docker volume plugin 'fake' did not mount volume 'vol' within 0.3 s: "
        "still waiting for VolumeDriver.Mount"
    )
    assert not isinstance(error, MountRefusedError)  # it may have mounted
    assert plugin.count("VolumeDriver.Mount") == 1


def test_unmount_has_its_own_timeout(env: Env) -> None:
    env.plugin(VolumeDriver_Unmount=lambda body: Hang())
    client = env.client(mount_timeout=5.0, unmount_timeout=0.2)
    error = failure(client.unmount("fake", "vol"))
    assert str(error) == (
        "Docker volume plugin 'fake' did not unmount volume 'vol' within 0.2 s: "
        "still waiting for VolumeDriver.Unmount"
    )


def test_activation_that_hangs_times_out(env: Env) -> None:
    env.plugin(Plugin_Activate=lambda body: Hang())
    error = failure(env.client(query_timeout=0.2).mount("fake", "vol", {}))
    assert str(error).endswith("did not answer Plugin.Activate within 0.2 s")


def test_a_stale_socket_fails_by_name_within_the_retry_budget(env: Env) -> None:
    path = env.sockets / "dead.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays; nobody listens
    error = failure(env.client().mount("dead", "vol", {}))
    assert isinstance(error, DriverError)
    text = str(error)
    assert text.startswith(
        f"Docker volume plugin 'dead' at unix://{path} is not answering Plugin.Activate: "
    )
    assert "Connection refused" in text
    # 0.02 s base: attempts at 0, 0.02, 0.06 and 0.14 s; the next would start at 0.30.
    assert env.time.sleeps == [0.02, 0.04, 0.08]
    assert text.endswith("(gave up after 4 attempt(s) in 0.1 s)"), text


def test_no_retries_with_a_zero_budget(env: Env) -> None:
    answers: list[Reply] = [Close(), (200, {"Mountpoint": "/"})]
    env.plugin(VolumeDriver_Path=lambda body: answers.pop(0))  # Path may be re-sent
    client = env.client(backoff=env.time.backoff(budget=0))
    error = failure(submit(client, client.api.path("fake", "vol")))
    assert str(error).endswith("(gave up after 1 attempt(s) in 0.0 s)")
    assert env.time.sleeps == []


def test_a_missing_plugin_fails_by_name_with_the_paths(env: Env) -> None:
    error = failure(env.client().mount("ghost", "vol", {}))
    assert env.time.sleeps == [0.02, 0.04, 0.08]  # discovery retries as requests do
    assert isinstance(error, MountRefusedError)
    assert isinstance(error.__cause__, PluginNotFoundError)
    assert str(error).startswith(
        f"Docker volume plugin 'ghost' not found; looked for {env.sockets}/ghost.sock, "
        f"{env.sockets}/ghost/ghost.sock, {env.etc}/ghost.spec,"
    )
    assert str(error).endswith(f"{env.lib}/ghost/ghost.json")


def test_a_plugin_that_appears_while_retrying_is_found(env: Env) -> None:
    # The first lookup fails; the plugin shows up while the client waits to retry.
    env.time.held = True
    future = env.client().mount("late", "vol", {})
    assert env.time.asleep.wait(WAIT)
    env.plugin("late")
    env.time.wake()
    assert future.get(WAIT) == str(env.mounts / "vol")
    assert env.time.sleeps == [0.02]


def test_a_query_whose_connection_closed_before_the_answer_is_sent_again(env: Env) -> None:
    answers: list[Reply] = [Close(), Close()]
    plugin = env.plugin(
        VolumeDriver_Get=lambda body: answers.pop(0) if answers else (200, {"Volume": {}})
    )
    assert env.client().mount("fake", "vol", {}).get(WAIT) == str(env.mounts / "vol")
    assert plugin.count("VolumeDriver.Get") == 3  # Get changes nothing: safe to re-send
    assert plugin.count("VolumeDriver.Mount") == 1


def test_a_bad_spec_file_is_reported_at_once(env: Env) -> None:
    (env.etc / "bad.spec").write_text("127.0.0.1:80\n")
    error = failure(env.client(backoff=env.time.backoff(budget=30.0)).mount("bad", "vol", {}))
    assert env.time.sleeps == []  # not retried: a bad file does not fix itself
    assert str(error) == (
        f"Docker volume plugin 'bad': {env.etc}/bad.spec: Unknown protocol in '127.0.0.1:80' "
        "(expected unix://, tcp://, http:// or https://)"
    )


def test_an_invalid_name_is_refused(env: Env) -> None:
    error = failure(env.client().mount("../x", "vol", {}))
    assert str(error).startswith("Invalid Docker volume plugin name '../x'")


# -- isolation between plugins ---------------------------------------------------------------


def test_a_slow_plugin_does_not_delay_another(env: Env) -> None:
    slow_plugin: FakePlugin

    async def slow_mount(body: Any) -> Reply:
        assert slow_plugin.gate is not None
        await slow_plugin.gate.wait()
        return 200, {"Mountpoint": "/"}

    slow_plugin = env.plugin("slow", VolumeDriver_Mount=slow_mount)
    env.plugin("fast")
    client = env.client()
    slow = client.mount("slow", "a", {})
    assert slow_plugin.seen("VolumeDriver.Mount").wait(WAIT)
    fast = client.mount("fast", "b", {})
    assert fast.get(WAIT) == str(env.mounts / "b")
    assert slow.is_pending()  # both were in flight; the fast one finished first
    # Another volume of the slow plugin is not held up by the pending call either.
    assert client.unmount("slow", "c").get(WAIT) is None
    assert slow.is_pending()
    slow_plugin.release()
    assert slow.get(WAIT) == "/"


def test_discarding_a_call_cancels_it(env: Env) -> None:
    plugin = env.plugin(VolumeDriver_Mount=lambda body: Hang())
    client = env.client()
    future = client.mount("fake", "vol", {})
    assert plugin.seen("VolumeDriver.Mount").wait(WAIT)
    future.discard()
    assert future.wait(WAIT)
    assert future.is_discarded()
    assert client.unmount("fake", "vol").get(WAIT) is None  # the client still works


# -- discovery at the client level, TCP, TLS --------------------------------------------------


def test_discovery_order_socket_before_spec(env: Env) -> None:
    spec_plugin, port = env.tcp_plugin()
    (env.etc / "fake.spec").write_text(f"tcp://127.0.0.1:{port}\n")
    sock_plugin = env.plugin("fake")
    env.client().mount("fake", "vol", {}).get(WAIT)
    assert sock_plugin.count("VolumeDriver.Mount") == 1
    assert spec_plugin.calls == []


def test_discovery_order_first_spec_dir_and_subdirectories(env: Env) -> None:
    first, first_port = env.tcp_plugin()
    second, second_port = env.tcp_plugin()
    (env.lib / "fake.spec").write_text(f"tcp://127.0.0.1:{second_port}")
    (env.etc / "fake").mkdir()
    (env.etc / "fake" / "fake.json").write_text(
        json.dumps({"Addr": f"http://127.0.0.1:{first_port}"})
    )
    env.client().mount("fake", "vol", {}).get(WAIT)
    assert first.count("VolumeDriver.Mount") == 1
    assert second.calls == []


@pytest.mark.parametrize("scheme", ["tcp", "http"])
def test_a_tcp_spec_reaches_a_loopback_plugin_and_drops_the_path(env: Env, scheme: str) -> None:
    plugin, port = env.tcp_plugin()
    (env.etc / "net.spec").write_text(f"{scheme}://127.0.0.1:{port}/some/prefix\n")
    client = env.client()
    assert client.mount("net", "vol", {"k": "v"}).get(WAIT) == str(env.mounts / "vol")
    assert plugin.methods() == [
        "Plugin.Activate",
        "VolumeDriver.Get",
        "VolumeDriver.Create",
        "VolumeDriver.Mount",
    ]
    assert plugin.calls[0].headers["host"] == f"127.0.0.1:{port}"
    assert plugin.calls[0].headers["accept"] == ACCEPT


def _self_signed(directory: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_https_plugins_follow_dockers_tls_rules(env: Env) -> None:
    cert, key = _self_signed(env.root)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    plugin, port = env.tcp_plugin(context)
    url = f"https://127.0.0.1:{port}"
    client = env.client(backoff=Backoff(budget=0))

    def capabilities(driver: str) -> Future[dict[str, Any]]:
        return submit(client, client.api.capabilities(driver))

    # A .spec never verifies (Docker's InsecureSkipVerify).
    (env.etc / "spec.spec").write_text(url)
    assert capabilities("spec").get(WAIT) == {"Scope": "local"}
    # A .json with the CA verifies, and succeeds.
    (env.etc / "ca.json").write_text(json.dumps({"Addr": url, "TLSConfig": {"CAFile": str(cert)}}))
    assert capabilities("ca").get(WAIT) == {"Scope": "local"}
    # A .json without TLSConfig verifies against the system roots: a self-signed
    # certificate is refused.
    (env.etc / "system.json").write_text(json.dumps({"Addr": url}))
    error = failure(capabilities("system"))
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
    # A TLSConfig without a CA file does not verify.
    (env.etc / "noca.json").write_text(json.dumps({"Addr": url, "TLSConfig": {}}))
    assert capabilities("noca").get(WAIT) == {"Scope": "local"}
    # Unusable TLS files are reported with the file they came from.
    (env.etc / "badca.json").write_text(
        json.dumps({"Addr": url, "TLSConfig": {"CAFile": str(env.root / "none.pem")}})
    )
    error = failure(capabilities("badca"))
    assert str(error).startswith(
        f"Docker volume plugin 'badca': bad TLSConfig in {env.etc}/badca.json: "
    )
    assert plugin.count("Plugin.Activate") == 3


# -- the other calls -------------------------------------------------------------------------


def test_create_remove_path_get_list_capabilities(env: Env) -> None:
    plugin = env.plugin(
        VolumeDriver_Get=lambda body: (
            200,
            {"volume": {"name": body["Name"], "mountpoint": "/m", "status": {"x": 1}, "Extra": 2}},
        ),
        VolumeDriver_List=lambda body: (
            200,
            {"Volumes": [{"name": "a"}, {"Name": "b", "CreatedAt": "2024-01-01T00:00:00Z"}]},
        ),
        VolumeDriver_Capabilities=lambda body: (200, {"Capabilities": {"scope": "GLOBAL"}}),
    )
    client = env.client()
    api = client.api
    assert submit(client, api.create("fake", "v", {"o": "1"})).get(WAIT) is None
    assert submit(client, api.remove("fake", "v")).get(WAIT) is None
    assert submit(client, api.path("fake", "v")).get(WAIT) == str(env.mounts / "v")
    assert submit(client, api.get("fake", "v")).get(WAIT) == {
        "Name": "v",
        "Mountpoint": "/m",
        "Status": {"x": 1},
        "Extra": 2,
    }
    assert submit(client, api.list("fake")).get(WAIT) == [
        {"Name": "a"},
        {"Name": "b", "CreatedAt": "2024-01-01T00:00:00Z"},
    ]
    assert submit(client, api.capabilities("fake")).get(WAIT) == {"Scope": "global"}
    assert [(call.method, call.raw) for call in plugin.calls] == [
        ("Plugin.Activate", b""),
        ("VolumeDriver.Create", b'{"Name":"v","Opts":{"o":"1"}}\n'),
        ("VolumeDriver.Remove", b'{"Name":"v"}\n'),
        ("VolumeDriver.Path", b'{"Name":"v"}\n'),
        ("VolumeDriver.Get", b'{"Name":"v"}\n'),
        ("VolumeDriver.List", b"{}\n"),  # {} not empty: the old helpers decode it
        ("VolumeDriver.Capabilities", b"{}\n"),
    ]


@dataclass(frozen=True)
class Fails:
    """The call fails with exactly this message."""

    message: str


_CALLS: dict[str, Callable[[VolumePluginAPI], Coroutine[Any, Any, Any]]] = {
    "VolumeDriver.Get": lambda api: api.get("fake", "v"),
    "VolumeDriver.List": lambda api: api.list("fake"),
    "VolumeDriver.Path": lambda api: api.path("fake", "v"),
    "VolumeDriver.Capabilities": lambda api: api.capabilities("fake"),
    "VolumeDriver.Remove": lambda api: api.remove("fake", "v"),
}


def _invalid(method: str, problem: str) -> Fails:
    return Fails(f"Docker volume plugin 'fake' sent an invalid answer to {method}: {problem}")


@pytest.mark.parametrize(
    ("method", "reply", "expected"),
    [
        pytest.param(
            "VolumeDriver.Get",
            (200, {"Volume": None}),
            Fails("Docker volume plugin 'fake' has no volume 'v'"),
            id="get-null-volume",
        ),
        pytest.param(
            "VolumeDriver.Get",
            (500, {"Err": "no such volume"}),
            Fails("VolumeDriver.Get: no such volume"),
            id="get-error",
        ),
        pytest.param(
            "VolumeDriver.Get",
            (200, {"Volume": "v"}),
            _invalid("VolumeDriver.Get", "Volume is not an object"),
            id="get-volume-not-an-object",
        ),
        pytest.param(
            "VolumeDriver.List", (200, {"Volumes": None, "Err": ""}), [], id="list-null-volumes"
        ),
        pytest.param(
            "VolumeDriver.List",
            (200, {"Volumes": ["a"]}),
            _invalid("VolumeDriver.List", "Volumes is not a list of objects"),
            id="list-volumes-not-objects",
        ),
        pytest.param("VolumeDriver.Path", (200, {"Mountpoint": ""}), "", id="path-empty"),
        pytest.param("VolumeDriver.Path", (200, {}), "", id="path-absent"),
        pytest.param(
            "VolumeDriver.Capabilities",
            (200, {"Capabilities": {"Scope": ""}}),
            {"Scope": "local"},
            id="capabilities-empty-scope",
        ),
        pytest.param(
            "VolumeDriver.Capabilities", (200, {}), {"Scope": "local"}, id="capabilities-absent"
        ),
        pytest.param(
            "VolumeDriver.Capabilities",
            (404, "404 page not found"),
            Fails("VolumeDriver.Capabilities: 404 page not found"),
            id="capabilities-not-implemented",
        ),
        pytest.param("VolumeDriver.Remove", (200, ""), None, id="remove-empty-200-is-no-error"),
    ],
)
def test_the_other_calls_edge_cases(env: Env, method: str, reply: Reply, expected: Any) -> None:
    env.plugin(**{method.replace(".", "_"): lambda body: reply})
    client = env.client()
    future = submit(client, _CALLS[method](client.api))
    if isinstance(expected, Fails):
        assert str(failure(future)) == expected.message
    else:
        assert future.get(WAIT) == expected


def test_close(env: Env) -> None:
    plugin = env.plugin()
    client = env.client()
    client.mount("fake", "vol", {}).get(WAIT)
    client.close()
    client.close()  # idempotent
    error = failure(client.unmount("fake", "vol"))
    assert str(error) == "The Docker volume plugin client is closed"
    assert plugin.count("VolumeDriver.Unmount") == 0


def test_close_ends_calls_in_flight(env: Env) -> None:
    plugin = env.plugin(VolumeDriver_Mount=lambda body: Hang())
    client = env.client()
    future = client.mount("fake", "vol", {})
    assert plugin.seen("VolumeDriver.Mount").wait(WAIT)
    client.close()
    error = failure(future)
    assert str(error) == "The Docker volume plugin client is closed"


def test_the_argument_checks() -> None:
    with pytest.raises(ValueError, match="timeouts must be positive"):
        DockerPluginClient(mount_timeout=0)
    with pytest.raises(ValueError, match="must not be negative"):
        Backoff(budget=-1)


# -- the reference plugin --------------------------------------------------------------------


def _reference_plugin(env: Env, name: str = "ref") -> Any:
    plugin_module = pytest.importorskip("isolator.plugin")
    plugin = plugin_module.VolumePlugin(
        socket_path=env.sockets / f"{name}.sock",
        root=env.root / "ref-root",
        allowed_mountpoints=[env.root],  # mountpoint=<env.root>/own-dir
    )
    plugin.start()
    env.on_cleanup(plugin.stop)
    return plugin


def test_every_endpoint_against_the_reference_plugin(env: Env) -> None:
    plugin = _reference_plugin(env)
    client = env.client()
    api = client.api
    assert submit(client, api.capabilities("ref")).get(WAIT) == {"Scope": "local"}
    assert submit(client, api.list("ref")).get(WAIT) == []

    # mount: Get (absent) -> Create -> Mount
    mountpoint = client.mount("ref", "data", {}).get(WAIT)
    assert os.path.isdir(mountpoint)
    assert [call.method for call in plugin.calls][-3:] == [
        "VolumeDriver.Get",
        "VolumeDriver.Create",
        "VolumeDriver.Mount",
    ]
    assert submit(client, api.path("ref", "data")).get(WAIT) == mountpoint
    volume = submit(client, api.get("ref", "data")).get(WAIT)
    assert volume["Name"] == "data"
    assert volume["Mountpoint"] == mountpoint
    assert volume["Status"] == {"count": 1, "mounts": {client.mount_id: 1}}
    assert [v["Name"] for v in submit(client, api.list("ref")).get(WAIT)] == ["data"]

    # A mounted volume cannot be removed; the plugin says so with 500 + Err.
    error = failure(submit(client, api.remove("ref", "data")))
    assert isinstance(error, PluginCallError)
    assert (error.status, str(error)) == (
        500,
        "VolumeDriver.Remove: volume data is in use (mount count 1, by 1 ID(s))",
    )
    assert client.unmount("ref", "data").get(WAIT) is None
    assert submit(client, api.path("ref", "data")).get(WAIT) == ""
    assert submit(client, api.remove("ref", "data")).get(WAIT) is None
    error = failure(submit(client, api.get("ref", "data")))
    assert str(error) == "VolumeDriver.Get: volume data not found"

    # create with options; a host directory of our choosing
    own = env.root / "own-dir"
    assert submit(client, api.create("ref", "own", {"mountpoint": str(own)})).get(WAIT) is None
    assert client.mount("ref", "own", {}).get(WAIT) == str(own)
    assert client.unmount("ref", "own").get(WAIT) is None
    error = failure(submit(client, api.create("ref", "odd", {"colour": "red"})))
    assert str(error).startswith("VolumeDriver.Create: unknown option 'colour'")
    # implicit create passes the mount's options to Create
    error = failure(client.mount("ref", "odd", {"colour": "red"}))
    assert str(error).startswith("VolumeDriver.Create: unknown option 'colour'")
    # explicit create
    error = failure(env.client(explicit_create=True).mount("ref", "nope", {}))
    assert "does not exist and explicit create is on" in str(error)
    assert [call.method for call in plugin.calls].count("Plugin.Activate") == 2


def test_the_reference_plugin_counts_mounts_by_our_id_across_clients(env: Env) -> None:
    plugin = _reference_plugin(env)
    first = env.client()
    mountpoint = first.mount("ref", "vol", {}).get(WAIT)
    first.close()
    second = env.client()  # an agent restart: the same ID unmounts what the first mounted
    assert second.unmount("ref", "vol").get(WAIT) is None
    status = submit(second, second.api.get("ref", "vol")).get(WAIT)["Status"]
    assert status == {"count": 0, "mounts": {}}
    assert os.path.isdir(mountpoint)
    mount_ids = {call.body.get("ID") for call in plugin.calls if call.method.endswith("mount")}
    assert mount_ids == {first.mount_id}


def test_path_answers_the_mount_point_while_mounted_and_empty_after(env: Env) -> None:
    plugin = _reference_plugin(env)
    client = env.client()
    mountpoint = client.mount("ref", "vol", {}).get(WAIT)
    assert client.path("ref", "vol").get(WAIT) == mountpoint
    client.unmount("ref", "vol").get(WAIT)
    assert client.path("ref", "vol").get(WAIT) == ""
    error = failure(client.path("ref", "nope"))
    assert str(error) == "VolumeDriver.Path: volume nope not found"
    paths = [call for call in plugin.calls if call.method == "VolumeDriver.Path"]
    assert [call.body for call in paths] == [{"Name": "vol"}] * 2 + [{"Name": "nope"}]
    assert [c.method for c in plugin.calls].count("VolumeDriver.Mount") == 1  # Path mounts not


def test_path_refuses_a_relative_mount_point_and_is_bounded_in_time(env: Env) -> None:
    env.plugin("rel", VolumeDriver_Path=lambda body: (200, {"Mountpoint": "data/v"}))
    error = failure(env.client().path("rel", "v"))
    assert str(error) == (
        "Docker volume plugin 'rel' returned a relative mount point 'data/v' for volume 'v' "
        "from VolumeDriver.Path"
    )
    env.plugin("hung", VolumeDriver_Path=lambda body: Hang())
    error = failure(env.client(query_timeout=0.3).path("hung", "v"))
    assert isinstance(error, DriverError)
    assert "VolumeDriver.Path" in str(error)
    assert "0.3 s" in str(error)


def test_a_stopped_reference_plugin_is_a_dead_plugin(env: Env) -> None:
    plugin = _reference_plugin(env)
    client = env.client()
    client.mount("ref", "vol", {}).get(WAIT)
    plugin.stop()
    # stop() unlinks the socket: the cached plugin's address no longer exists.
    error = failure(client.unmount("ref", "vol"))
    assert "is not answering VolumeDriver.Unmount" in str(error)
    assert "No such file or directory" in str(error)
