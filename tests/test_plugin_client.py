"""DockerPluginClient over real sockets: fake plugins answering every form seen in the wild,
and the reference plugin of ``isolator.plugin``."""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from actors import EventLoopThread, Future
from isolator.drivers.discovery import PluginNotFoundError
from isolator.drivers.plugin_client import (
    ACCEPT,
    DockerPluginClient,
    PluginCallError,
    default_mount_id,
    machine_identity,
)
from isolator.errors import DriverError

WAIT = 5.0
"""How long a test waits on a future that should complete at once."""

HEX64 = re.compile(r"[0-9a-f]{64}")


# -- a fake plugin: a small HTTP/1.1 server on the test's own event loop ----------------------


@dataclass
class Call:
    method: str
    body: Any
    raw: bytes
    headers: dict[str, str]


class Hang:
    """Accept the request and never answer (until the server stops)."""


class Close:
    """Close the connection without answering."""


Reply = tuple[int, Any] | Hang | Close
"""(status, payload): a dict/list/None is sent as JSON, bytes and str as they are."""
Handler = Callable[[Any], Reply | Awaitable[Reply]]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


class FakePlugin:
    """A volume plugin whose every endpoint can be replaced by a handler.

    The default endpoints keep volumes in a dict and mount them at ``<root>/<name>``.
    """

    def __init__(self, loop: EventLoopThread, root: Path, **handlers: Handler) -> None:
        self.loop = loop
        self.root = root
        self.volumes: dict[str, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self._seen: dict[str, threading.Event] = collections.defaultdict(threading.Event)
        self._handlers: dict[str, Handler] = {
            "Plugin.Activate": lambda body: (200, {"Implements": ["VolumeDriver"]}),
            "VolumeDriver.Create": self._create,
            "VolumeDriver.Remove": self._remove,
            "VolumeDriver.Mount": self._mount,
            "VolumeDriver.Unmount": lambda body: (200, {"Err": ""}),
            "VolumeDriver.Path": lambda body: (200, {"Mountpoint": str(root / body["Name"])}),
            "VolumeDriver.Get": self._get,
            "VolumeDriver.List": lambda body: (
                200,
                {"Volumes": [{"Name": n} for n in sorted(self.volumes)], "Err": ""},
            ),
            "VolumeDriver.Capabilities": lambda body: (200, {"Capabilities": {"Scope": "local"}}),
        }
        for key, handler in handlers.items():
            self._handlers[key.replace("_", ".")] = handler
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.gate: asyncio.Event | None = None

    # default endpoints
    def _create(self, body: Any) -> Reply:
        self.volumes.setdefault(body["Name"], {"Opts": body.get("Opts")})
        return 200, {"Err": ""}

    def _remove(self, body: Any) -> Reply:
        self.volumes.pop(body["Name"], None)
        return 200, {"Err": ""}

    def _get(self, body: Any) -> Reply:
        if body["Name"] not in self.volumes:
            return 200, {"Err": "no such volume"}
        return 200, {"Volume": {"Name": body["Name"], "Mountpoint": ""}, "Err": ""}

    def _mount(self, body: Any) -> Reply:
        path = self.root / body["Name"]
        path.mkdir(parents=True, exist_ok=True)
        return 200, {"Mountpoint": str(path), "Err": ""}

    # serving
    def start_unix(self, path: Path) -> FakePlugin:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.loop.submit(
            self._start(lambda: asyncio.start_unix_server(self._serve, str(path)))
        ).get(WAIT)
        return self

    def start_tcp(self, context: ssl.SSLContext | None = None) -> int:
        """Listen on 127.0.0.1 only; the port."""
        self.loop.submit(
            self._start(lambda: asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context))
        ).get(WAIT)
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def _start(self, starter: Callable[[], Awaitable[asyncio.Server]]) -> None:
        self.gate = asyncio.Event()
        self._server = await starter()

    def release(self) -> None:
        """Let handlers waiting on ``gate`` go on."""
        gate = self.gate
        assert gate is not None
        self.loop.loop.call_soon_threadsafe(gate.set)

    def stop(self) -> None:
        self.loop.submit(self._stop()).get(WAIT)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def seen(self, method: str) -> threading.Event:
        """Set once ``method`` was received."""
        return self._seen[method]

    def methods(self) -> list[str]:
        return [call.method for call in self.calls]

    def count(self, method: str) -> int:
        return self.methods().count(method)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        _, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        method = target.lstrip("/")
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        self.calls.append(Call(method, body, raw, headers))
        self._seen[method].set()
        handler = self._handlers.get(method)
        outcome = (404, "404 page not found\n") if handler is None else handler(body)
        reply = cast("Reply", await outcome if inspect.isawaitable(outcome) else outcome)
        if isinstance(reply, Hang):
            await asyncio.Event().wait()
        if isinstance(reply, Close):
            return False
        assert isinstance(reply, tuple)
        status, payload = reply
        if isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = (json.dumps(payload) + "\n").encode()
        writer.write(
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Whatever')}\r\n"
            "Content-Type: application/vnd.docker.plugins.v1.1+json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        await writer.drain()
        return True


# -- fixtures --------------------------------------------------------------------------------


class Env:
    """Plugin dirs under a short temp root, plus factories that clean up after themselves."""

    def __init__(self, root: Path, loop: EventLoopThread) -> None:
        self.root = root
        self.loop = loop
        self.sockets = root / "run"
        self.etc = root / "etc"
        self.lib = root / "lib"
        self.mounts = root / "mnt"
        for directory in (self.sockets, self.etc, self.lib, self.mounts):
            directory.mkdir()
        self._plugins: list[FakePlugin] = []
        self._clients: list[DockerPluginClient] = []
        self._stoppers: list[Callable[[], None]] = []

    def plugin(self, name: str = "fake", /, **handlers: Handler) -> FakePlugin:
        """A fake plugin serving on ``<sockets>/<name>.sock``."""
        plugin = FakePlugin(self.loop, self.mounts, **handlers)
        self._plugins.append(plugin)
        return plugin.start_unix(self.sockets / f"{name}.sock")

    def tcp_plugin(
        self, context: ssl.SSLContext | None = None, **handlers: Handler
    ) -> tuple[FakePlugin, int]:
        plugin = FakePlugin(self.loop, self.mounts, **handlers)
        self._plugins.append(plugin)
        return plugin, plugin.start_tcp(context)

    def client(self, **overrides: Any) -> DockerPluginClient:
        arguments: dict[str, Any] = {
            "socket_dir": str(self.sockets),
            "spec_dirs": [str(self.etc), str(self.lib)],
            "timeout": 5.0,
            "unmount_timeout": 5.0,
            "query_timeout": 5.0,
            "retry_budget": 0.3,
            "retry_base_delay": 0.02,
        }
        arguments.update(overrides)
        client = DockerPluginClient(**arguments)
        self._clients.append(client)
        return client

    def on_cleanup(self, stopper: Callable[[], None]) -> None:
        self._stoppers.append(stopper)

    def cleanup(self) -> None:
        for client in self._clients:
            client.close()
        for plugin in self._plugins:
            plugin.stop()
        for stopper in self._stoppers:
            stopper()


@pytest.fixture(scope="module")
def server_loop() -> Iterator[EventLoopThread]:
    loop = EventLoopThread(name="fake-plugins")
    yield loop
    loop.stop()


@pytest.fixture
def env(server_loop: EventLoopThread) -> Iterator[Env]:
    root = Path(tempfile.mkdtemp(dir="/tmp"))  # short: unix socket paths max ~107 bytes
    environment = Env(root, server_loop)
    try:
        yield environment
    finally:
        environment.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def failure(future: Future[Any], timeout: float = WAIT) -> BaseException:
    """The exception ``future`` fails with (waiting at most ``timeout``)."""
    assert future.wait(timeout), "the future is still pending"
    error = future.failure()
    assert error is not None, f"expected a failure, got {future!r}"
    return error


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
    assert isinstance(error, DriverError)
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
    client.path("fake", "v1").get(WAIT)
    assert plugin.count("Plugin.Activate") == 1
    assert plugin.count("VolumeDriver.Mount") == 10


def test_a_failed_activation_is_not_cached(env: Env) -> None:
    answers = iter([(500, {"Err": "starting up"}), (200, {"Implements": ["VolumeDriver"]})])
    plugin = env.plugin(Plugin_Activate=lambda body: next(answers))
    client = env.client()
    error = failure(client.mount("fake", "vol", {}))
    assert isinstance(error, PluginCallError)
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
    assert isinstance(error, PluginCallError)
    assert str(error) == f"VolumeDriver.Mount: {message}"
    assert (error.plugin, error.method, error.status) == ("fake", "VolumeDriver.Mount", status)
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
    assert env.client(timeout=1.0, explicit_create=True).mount_id == first.mount_id


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
    client = env.client(timeout=0.3)
    started = time.monotonic()
    error = failure(client.mount("fake", "vol", {}))
    assert time.monotonic() - started < 2.0
    assert str(error) == (
        f"Docker volume plugin 'fake' at unix://{env.sockets}/fake.sock did not answer "
        "VolumeDriver.Mount within 0.3 s"
    )
    assert plugin.count("VolumeDriver.Mount") == 1


def test_unmount_has_its_own_timeout(env: Env) -> None:
    env.plugin(VolumeDriver_Unmount=lambda body: Hang())
    client = env.client(timeout=5.0, unmount_timeout=0.2)
    error = failure(client.unmount("fake", "vol"))
    assert str(error).endswith("did not answer VolumeDriver.Unmount within 0.2 s")


def test_activation_that_hangs_times_out(env: Env) -> None:
    env.plugin(Plugin_Activate=lambda body: Hang())
    error = failure(env.client(query_timeout=0.2).mount("fake", "vol", {}))
    assert str(error).endswith("did not answer Plugin.Activate within 0.2 s")


def test_a_stale_socket_fails_by_name_within_the_retry_budget(env: Env) -> None:
    path = env.sockets / "dead.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays; nobody listens
    started = time.monotonic()
    error = failure(env.client().mount("dead", "vol", {}))
    elapsed = time.monotonic() - started
    assert elapsed < 1.5
    assert isinstance(error, DriverError)
    text = str(error)
    assert text.startswith(
        f"Docker volume plugin 'dead' at unix://{path} is not answering Plugin.Activate: "
    )
    assert "Connection refused" in text
    # 0.02 s base: attempts at 0, 0.02, 0.06 and 0.14 s; the next would start at 0.30.
    assert re.search(r"\(gave up after 4 attempt\(s\) in 0\.\d s\)$", text), text


def test_no_retries_with_a_zero_budget(env: Env) -> None:
    answers: list[Reply] = [Close(), (200, {"Err": ""})]
    env.plugin(VolumeDriver_Unmount=lambda body: answers.pop(0))
    error = failure(env.client(retry_budget=0).unmount("fake", "vol"))
    assert "(gave up after 1 attempt(s) in 0.0 s)" in str(error)


def test_a_missing_plugin_fails_by_name_with_the_paths(env: Env) -> None:
    started = time.monotonic()
    error = failure(env.client().mount("ghost", "vol", {}))
    assert time.monotonic() - started < 1.5
    assert isinstance(error, PluginNotFoundError)
    assert str(error).startswith(
        f"Docker volume plugin 'ghost' not found; looked for {env.sockets}/ghost.sock, "
        f"{env.sockets}/ghost/ghost.sock, {env.etc}/ghost.spec,"
    )
    assert str(error).endswith(f"{env.lib}/ghost/ghost.json")


def test_a_plugin_that_appears_while_retrying_is_found(env: Env) -> None:
    # The first lookup fails; the plugin shows up before the retry budget is spent.
    client = env.client(retry_budget=3.0, retry_base_delay=0.05)
    future = client.mount("late", "vol", {})
    env.plugin("late")
    assert future.get(WAIT) == str(env.mounts / "vol")


def test_a_connection_closed_before_the_answer_is_retried(env: Env) -> None:
    answers: list[Reply] = [Close(), Close()]
    plugin = env.plugin(
        VolumeDriver_Mount=lambda body: answers.pop(0) if answers else (200, {"Mountpoint": "/"})
    )
    assert env.client().mount("fake", "vol", {}).get(WAIT) == "/"
    assert plugin.count("VolumeDriver.Mount") == 3


def test_a_bad_spec_file_is_reported_at_once(env: Env) -> None:
    (env.etc / "bad.spec").write_text("127.0.0.1:80\n")
    error = failure(env.client(retry_budget=30.0).mount("bad", "vol", {}), timeout=2.0)
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
    client = env.client(retry_budget=0)
    # A .spec never verifies (Docker's InsecureSkipVerify).
    (env.etc / "spec.spec").write_text(url)
    assert client.capabilities("spec").get(WAIT) == {"Scope": "local"}
    # A .json with the CA verifies, and succeeds.
    (env.etc / "ca.json").write_text(json.dumps({"Addr": url, "TLSConfig": {"CAFile": str(cert)}}))
    assert client.capabilities("ca").get(WAIT) == {"Scope": "local"}
    # A .json without TLSConfig verifies against the system roots: a self-signed
    # certificate is refused.
    (env.etc / "system.json").write_text(json.dumps({"Addr": url}))
    error = failure(client.capabilities("system"))
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
    # A TLSConfig without a CA file does not verify.
    (env.etc / "noca.json").write_text(json.dumps({"Addr": url, "TLSConfig": {}}))
    assert client.capabilities("noca").get(WAIT) == {"Scope": "local"}
    # Unusable TLS files are reported with the file they came from.
    (env.etc / "badca.json").write_text(
        json.dumps({"Addr": url, "TLSConfig": {"CAFile": str(env.root / "none.pem")}})
    )
    error = failure(client.capabilities("badca"))
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
    assert client.create("fake", "v", {"o": "1"}).get(WAIT) is None
    assert client.remove("fake", "v").get(WAIT) is None
    assert client.path("fake", "v").get(WAIT) == str(env.mounts / "v")
    assert client.get("fake", "v").get(WAIT) == {
        "Name": "v",
        "Mountpoint": "/m",
        "Status": {"x": 1},
        "Extra": 2,
    }
    assert client.list("fake").get(WAIT) == [
        {"Name": "a"},
        {"Name": "b", "CreatedAt": "2024-01-01T00:00:00Z"},
    ]
    assert client.capabilities("fake").get(WAIT) == {"Scope": "global"}
    assert [(call.method, call.raw) for call in plugin.calls] == [
        ("Plugin.Activate", b""),
        ("VolumeDriver.Create", b'{"Name":"v","Opts":{"o":"1"}}\n'),
        ("VolumeDriver.Remove", b'{"Name":"v"}\n'),
        ("VolumeDriver.Path", b'{"Name":"v"}\n'),
        ("VolumeDriver.Get", b'{"Name":"v"}\n'),
        ("VolumeDriver.List", b"{}\n"),  # {} not empty: the old helpers decode it
        ("VolumeDriver.Capabilities", b"{}\n"),
    ]


def test_the_other_calls_edge_cases(env: Env) -> None:
    replies: dict[str, Reply] = {}

    def answer(method: str) -> Handler:
        return lambda body: replies[method]

    env.plugin(
        **{
            m.replace(".", "_"): answer(m)
            for m in (
                "VolumeDriver.Get",
                "VolumeDriver.List",
                "VolumeDriver.Path",
                "VolumeDriver.Capabilities",
                "VolumeDriver.Remove",
            )
        }
    )
    client = env.client()
    replies["VolumeDriver.Get"] = (200, {"Volume": None})
    error = failure(client.get("fake", "v"))
    assert str(error) == "Docker volume plugin 'fake' has no volume 'v'"
    replies["VolumeDriver.Get"] = (500, {"Err": "no such volume"})
    assert str(failure(client.get("fake", "v"))) == "VolumeDriver.Get: no such volume"
    replies["VolumeDriver.Get"] = (200, {"Volume": "v"})
    assert "invalid answer to VolumeDriver.Get: Volume is not an object" in str(
        failure(client.get("fake", "v"))
    )
    replies["VolumeDriver.List"] = (200, {"Volumes": None, "Err": ""})
    assert client.list("fake").get(WAIT) == []
    replies["VolumeDriver.List"] = (200, {"Volumes": ["a"]})
    assert "Volumes is not a list of objects" in str(failure(client.list("fake")))
    replies["VolumeDriver.Path"] = (200, {"Mountpoint": ""})
    assert client.path("fake", "v").get(WAIT) == ""
    replies["VolumeDriver.Path"] = (200, {})
    assert client.path("fake", "v").get(WAIT) == ""
    replies["VolumeDriver.Capabilities"] = (200, {"Capabilities": {"Scope": ""}})
    assert client.capabilities("fake").get(WAIT) == {"Scope": "local"}
    replies["VolumeDriver.Capabilities"] = (200, {})
    assert client.capabilities("fake").get(WAIT) == {"Scope": "local"}
    replies["VolumeDriver.Capabilities"] = (404, "404 page not found")
    assert str(failure(client.capabilities("fake"))) == (
        "VolumeDriver.Capabilities: 404 page not found"
    )
    replies["VolumeDriver.Remove"] = (200, "")  # an empty 200 is no error
    assert client.remove("fake", "v").get(WAIT) is None


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
        DockerPluginClient(timeout=0)
    with pytest.raises(ValueError, match="must not be negative"):
        DockerPluginClient(retry_budget=-1)


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
    assert client.capabilities("ref").get(WAIT) == {"Scope": "local"}
    assert client.list("ref").get(WAIT) == []

    # mount: Get (absent) -> Create -> Mount
    mountpoint = client.mount("ref", "data", {}).get(WAIT)
    assert os.path.isdir(mountpoint)
    assert [call.method for call in plugin.calls][-3:] == [
        "VolumeDriver.Get",
        "VolumeDriver.Create",
        "VolumeDriver.Mount",
    ]
    assert client.path("ref", "data").get(WAIT) == mountpoint
    volume = client.get("ref", "data").get(WAIT)
    assert volume["Name"] == "data"
    assert volume["Mountpoint"] == mountpoint
    assert volume["Status"] == {"mounts": {client.mount_id: 1}}
    assert [v["Name"] for v in client.list("ref").get(WAIT)] == ["data"]

    # A mounted volume cannot be removed; the plugin says so with 500 + Err.
    error = failure(client.remove("ref", "data"))
    assert isinstance(error, PluginCallError)
    assert (error.status, str(error)) == (
        500,
        "VolumeDriver.Remove: volume data is in use (mounted by 1 ID(s))",
    )
    assert client.unmount("ref", "data").get(WAIT) is None
    assert client.path("ref", "data").get(WAIT) == ""
    assert client.remove("ref", "data").get(WAIT) is None
    assert str(failure(client.get("ref", "data"))) == "VolumeDriver.Get: volume data not found"

    # create with options; a host directory of our choosing
    own = env.root / "own-dir"
    assert client.create("ref", "own", {"mountpoint": str(own)}).get(WAIT) is None
    assert client.mount("ref", "own", {}).get(WAIT) == str(own)
    assert client.unmount("ref", "own").get(WAIT) is None
    error = failure(client.create("ref", "odd", {"colour": "red"}))
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
    assert second.get("ref", "vol").get(WAIT)["Status"] == {"mounts": {}}
    assert os.path.isdir(mountpoint)
    mount_ids = {call.body.get("ID") for call in plugin.calls if call.method.endswith("mount")}
    assert mount_ids == {first.mount_id}


def test_a_stopped_reference_plugin_is_a_dead_plugin(env: Env) -> None:
    plugin = _reference_plugin(env)
    client = env.client()
    client.mount("ref", "vol", {}).get(WAIT)
    plugin.stop()
    # stop() unlinks the socket: the cached plugin's address no longer exists.
    error = failure(client.unmount("ref", "vol"))
    assert "is not answering VolumeDriver.Unmount" in str(error)
    assert "No such file or directory" in str(error)
