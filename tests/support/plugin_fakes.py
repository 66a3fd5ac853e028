"""Fake Docker volume plugins for the plugin client's tests: a small HTTP/1.1 server on its
own event loop whose every endpoint a test can replace, with the replies seen in the wild
and the hostile ones (hangs, hang-ups, endless bodies)."""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import json
import shutil
import ssl
import tempfile
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from actors import EventLoopThread, Future
from isolator.drivers.plugin_client import DockerPluginClient
from isolator.drivers.transport import Backoff
from tests.support.waits import WAIT

T = TypeVar("T")


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


@dataclass(frozen=True)
class Last:
    """Answer ``reply`` with ``Connection: close``, then close: the next call must connect."""

    reply: tuple[int, Any]


@dataclass(frozen=True)
class Endless:
    """Answer 200 with a body that never ends, in chunks, until the client hangs up; with
    ``declared``, the header says a terabyte is coming instead of chunking."""

    declared: bool = False


Reply = tuple[int, Any] | Hang | Close | Last | Endless
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
        self.socket_path: Path | None = None
        self.streamed = 0
        """Bytes of endless bodies written."""
        self.hung_up = threading.Event()
        """Set once a connection ended (the client or the plugin closed it)."""

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
        self.socket_path = path
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

    def stop_listening(self) -> None:
        """From a handler: take no new connection, as a plugin that just died (the socket
        file goes, connections already open stay)."""
        assert self._server is not None
        assert self.socket_path is not None
        self._server.close()
        self.socket_path.unlink()

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
            self.hung_up.set()

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
        return await self._reply(writer, reply)

    async def _reply(self, writer: asyncio.StreamWriter, reply: Reply) -> bool:
        """Send ``reply``; whether the connection stays open for the next request."""
        if isinstance(reply, Hang):
            await asyncio.Event().wait()
        if isinstance(reply, Close):
            return False
        if isinstance(reply, Endless):
            await self._endless(writer, reply)
            return False
        last = isinstance(reply, Last)
        if isinstance(reply, Last):
            reply = reply.reply
        assert isinstance(reply, tuple)
        status, payload = reply
        if isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = (json.dumps(payload) + "\n").encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Whatever')}\r\n"
            "Content-Type: application/vnd.docker.plugins.v1.1+json\r\n"
            + ("Connection: close\r\n" if last else "")
            + f"Content-Length: {len(data)}\r\n\r\n"
        )
        writer.write(head.encode() + data)
        await writer.drain()
        return not last

    async def _endless(self, writer: asyncio.StreamWriter, reply: Endless) -> None:
        length = "Content-Length: 1000000000000" if reply.declared else "Transfer-Encoding: chunked"
        writer.write(f"HTTP/1.1 200 OK\r\n{length}\r\n\r\n".encode())
        chunk = b"x" * 65536
        framed = chunk if reply.declared else b"%x\r\n%s\r\n" % (len(chunk), chunk)
        while True:  # until the client hangs up: ConnectionError ends the connection
            writer.write(framed)
            await writer.drain()
            self.streamed += len(chunk)


# -- fixtures --------------------------------------------------------------------------------


class FakeTime:
    """Time for a ``Backoff`` that only its own sleeps move: retries are counted, not waited.

    ``sleeps`` lists every retry delay. While ``held``, a sleep also waits for ``wake()``,
    so a test can act between two attempts.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.held = False
        self.asleep = threading.Event()
        self._wake: Callable[[], object] | None = None

    def backoff(self, **policy: float) -> Backoff:
        return Backoff(clock=self.clock, sleep=self.sleep, **policy)

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay
        if not self.held:
            await asyncio.sleep(0)
            return
        loop, gate = asyncio.get_running_loop(), asyncio.Event()
        self._wake = functools.partial(loop.call_soon_threadsafe, gate.set)
        self.asleep.set()
        await gate.wait()

    def wake(self) -> None:
        assert self._wake is not None, "nobody is asleep"
        self.held = False
        self._wake()


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
        self.time = FakeTime()
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
        """A client whose retries run on ``self.time``: 0.02 s, then doubling, for 0.3 s."""
        arguments: dict[str, Any] = {
            "socket_dir": str(self.sockets),
            "spec_dirs": [str(self.etc), str(self.lib)],
            "mount_timeout": 5.0,
            "unmount_timeout": 5.0,
            "query_timeout": 5.0,
            "backoff": self.time.backoff(budget=0.3, base_delay=0.02),
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


@contextmanager
def fake_plugin_loop() -> Iterator[EventLoopThread]:
    """The loop the fake plugins serve on (a test module shares one)."""
    loop = EventLoopThread(name="fake-plugins")
    try:
        yield loop
    finally:
        loop.stop()


@contextmanager
def plugin_env(server_loop: EventLoopThread) -> Iterator[Env]:
    """An ``Env`` under a fresh short temporary root, cleaned up after."""
    root = Path(tempfile.mkdtemp(dir="/tmp"))  # short: unix socket paths max ~107 bytes
    environment = Env(root, server_loop)
    try:
        yield environment
    finally:
        environment.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def submit(client: DockerPluginClient, call: Coroutine[Any, Any, T]) -> Future[T]:
    """Run one ``client.api`` call on the client's loop, as ``isolator-dvdcli`` does."""
    return client.loop.submit(call)


def failure(future: Future[Any], timeout: float = WAIT) -> BaseException:
    """The exception ``future`` fails with (waiting at most ``timeout``)."""
    assert future.wait(timeout), "the future is still pending"
    error = future.failure()
    assert error is not None, f"expected a failure, got {future!r}"
    return error
