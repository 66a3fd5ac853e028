"""The HTTP side: Docker's volume plugin protocol (legacy v1) on a unix socket, stdlib only.

Every call is ``POST /<Method>`` with a JSON body that may be empty and carries no
Content-Type. Errors follow go-plugins-helpers: HTTP 500 with ``{"Err": message}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

from .errors import PluginError, VolumeError
from .mountpoints import Confinement
from .state import VolumeRecord
from .volumes import DirectoryVolumes

__all__ = ["CONTENT_TYPE", "PluginCall", "VolumePlugin"]

CONTENT_TYPE = "application/vnd.docker.plugins.v1.1+json"
MAX_BODY = 1 << 20
"""Requests are a few hundred bytes; anything this large is not a Docker client."""

_log = logging.getLogger(__name__)

JsonObject = dict[str, Any]


class PluginCall(NamedTuple):
    """One request the plugin received: ``method`` as in the URL (``"VolumeDriver.Mount"``)
    and its decoded ``body`` (``{}`` when empty, ``None`` when not JSON)."""

    method: str
    body: Any


class _BadRequest(Exception):
    """The request is malformed (HTTP 400), as opposed to refused (HTTP 500)."""


# -- request fields -------------------------------------------------------------------------


def _string(body: JsonObject, key: str) -> str:
    """A string field; missing or null reads as ``""`` (old Docker and dvdcli send no ``ID``)."""
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _BadRequest(f"field {key!r} must be a string")
    return value


def _options(body: JsonObject) -> dict[str, str]:
    value = body.get("Opts")
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _BadRequest("field 'Opts' must be an object of strings")
    return dict(value)


def _volume_json(record: VolumeRecord) -> JsonObject:
    return {
        "Name": record.name,
        "Mountpoint": record.mountpoint,
        "CreatedAt": record.created_at,
        "Status": {"mounts": dict(record.mounts)},
    }


# -- endpoints ------------------------------------------------------------------------------

_Endpoint = Callable[[DirectoryVolumes, JsonObject], JsonObject]


def _activate(_: DirectoryVolumes, __: JsonObject) -> JsonObject:
    return {"Implements": ["VolumeDriver"]}


def _create(volumes: DirectoryVolumes, body: JsonObject) -> JsonObject:
    volumes.create(_string(body, "Name"), _options(body))
    return {"Err": ""}


def _remove(volumes: DirectoryVolumes, body: JsonObject) -> JsonObject:
    volumes.remove(_string(body, "Name"))
    return {"Err": ""}


def _mount(volumes: DirectoryVolumes, body: JsonObject) -> JsonObject:
    return {"Mountpoint": volumes.mount(_string(body, "Name"), _string(body, "ID")), "Err": ""}


def _unmount(volumes: DirectoryVolumes, body: JsonObject) -> JsonObject:
    volumes.unmount(_string(body, "Name"), _string(body, "ID"))
    return {"Err": ""}


def _path(volumes: DirectoryVolumes, body: JsonObject) -> JsonObject:
    return {"Mountpoint": volumes.path(_string(body, "Name")), "Err": ""}


def _get(volumes: DirectoryVolumes, body: JsonObject) -> JsonObject:
    return {"Volume": _volume_json(volumes.get(_string(body, "Name"))), "Err": ""}


def _list(volumes: DirectoryVolumes, _: JsonObject) -> JsonObject:
    return {"Volumes": [_volume_json(record) for record in volumes.list()], "Err": ""}


def _capabilities(_: DirectoryVolumes, __: JsonObject) -> JsonObject:
    return {"Capabilities": {"Scope": "local"}}


_ENDPOINTS: Mapping[str, _Endpoint] = {
    "Plugin.Activate": _activate,
    "VolumeDriver.Create": _create,
    "VolumeDriver.Remove": _remove,
    "VolumeDriver.Mount": _mount,
    "VolumeDriver.Unmount": _unmount,
    "VolumeDriver.Path": _path,
    "VolumeDriver.Get": _get,
    "VolumeDriver.List": _list,
    "VolumeDriver.Capabilities": _capabilities,
}


# -- HTTP -----------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """Parses one request at a time on a kept-alive connection and answers it."""

    protocol_version = "HTTP/1.1"  # Docker's Go client keeps connections alive
    server: _Server

    def do_POST(self) -> None:
        method = self.path.split("?", 1)[0].lstrip("/")
        try:
            raw = self._read_body()
        except _BadRequest as error:
            self.close_connection = True
            self._reply(400, {"Err": f"bad request: {error}"})
            return
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        self.server.record(PluginCall(method, body))
        endpoint = _ENDPOINTS.get(method)
        if endpoint is None:
            self._reply(404, b"404 page not found\n", "text/plain; charset=utf-8")
        elif not isinstance(body, dict):
            self._reply(400, {"Err": "bad request: the body is not a JSON object"})
        else:
            self._call(endpoint, body)

    def _call(self, endpoint: _Endpoint, body: JsonObject) -> None:
        try:
            self._reply(200, endpoint(self.server.volumes, body))
        except _BadRequest as error:
            self._reply(400, {"Err": f"bad request: {error}"})
        except VolumeError as error:
            self._reply(500, {"Err": str(error)})
        except Exception as error:
            _log.exception("volume plugin: %s failed", self.path)
            self._reply(500, {"Err": f"internal error: {error}"})

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            size = int(length)
        except ValueError:
            raise _BadRequest("bad Content-Length") from None
        if not 0 <= size <= MAX_BODY:
            raise _BadRequest("bad Content-Length")
        return self.rfile.read(size)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                size = int(self.rfile.readline(1024).split(b";", 1)[0], 16)
            except ValueError:
                raise _BadRequest("bad chunk size") from None
            total += size
            if size < 0 or total > MAX_BODY:
                raise _BadRequest("bad chunk size")
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _reply(
        self, status: int, payload: JsonObject | bytes, content_type: str = CONTENT_TYPE
    ) -> None:
        data = payload if isinstance(payload, bytes) else (json.dumps(payload) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def address_string(self) -> str:
        return "unix"  # unix peers have no address; the default would index an empty string

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("volume plugin: " + format, *args)


class _Server(socketserver.ThreadingUnixStreamServer):
    """A thread per connection, and a list of them so ``stop`` can end idle keep-alives."""

    daemon_threads = False
    block_on_close = True  # server_close() joins the handler threads
    request_queue_size = socket.SOMAXCONN  # unix connect() fails with EAGAIN on a full backlog

    def __init__(
        self, path: str, volumes: DirectoryVolumes, record: Callable[[PluginCall], None]
    ) -> None:
        self.volumes = volumes
        self.record = record
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(path, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every handler blocked on an idle connection so that it ends."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("volume plugin: connection error", exc_info=True)


def _clear_stale_socket(path: str) -> None:
    """Unlink a socket file nobody listens on; refuse a live one or a non-socket file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise PluginError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        Path(path).unlink(missing_ok=True)
        return
    except OSError as error:
        raise PluginError(f"cannot probe socket {path}: {error}") from error
    finally:
        probe.close()
    raise PluginError(f"another process is serving on {path}")


class VolumePlugin:
    """A directory-backed Docker volume plugin serving on a unix socket in a daemon thread.

    ``VolumePlugin(socket_path=..., root=...).start()`` binds and serves; ``stop()`` ends
    every connection, joins the threads and unlinks the socket. Volumes live in
    ``<root>/volumes/<name>`` unless created with ``-o mountpoint=/abs/dir``, which must lie
    inside ``<root>/volumes`` or one of ``allowed_mountpoints`` (see ``mountpoints``); the
    state is in ``state_path`` (default ``<root>/state.json``) so a new instance carries on
    where the last one stopped.
    """

    def __init__(
        self,
        *,
        socket_path: str | os.PathLike[str],
        root: str | os.PathLike[str],
        state_path: str | os.PathLike[str] | None = None,
        name: str | None = None,
        allowed_mountpoints: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        self.socket_path = os.path.abspath(socket_path)
        self.root = Path(root).absolute()
        self.state_path = Path(state_path).absolute() if state_path else self.root / "state.json"
        self.name = name or Path(self.socket_path).stem
        self.allowed_mountpoints = tuple(os.fspath(path) for path in allowed_mountpoints)
        self._calls: list[PluginCall] = []
        self._calls_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._socket_inode: tuple[int, int] | None = None

    @property
    def calls(self) -> list[PluginCall]:
        """A snapshot of every request received so far, oldest first (for tests)."""
        with self._calls_lock:
            return list(self._calls)

    @property
    def running(self) -> bool:
        """Whether ``start`` was called without a ``stop`` since."""
        return self._server is not None

    def start(self) -> Self:
        """Load the state, bind the socket and serve in a background thread.

        Raises ``StateError`` for a corrupt state file or one naming a directory outside
        the allowed ones, and ``PluginError`` for an allowed directory that is ``/`` or
        missing, or a socket path taken by a live server or a non-socket file.
        """
        if self._server is not None:
            raise PluginError(f"volume plugin {self.name} is already running")
        confinement = Confinement(
            self.root / "volumes",
            self.allowed_mountpoints,
            reserved=(self.root, self.state_path, self.socket_path),
        )
        volumes = DirectoryVolumes(confinement, self.state_path)
        os.makedirs(confinement.volumes_dir, mode=0o755, exist_ok=True)
        Path(self.socket_path).parent.mkdir(parents=True, exist_ok=True)
        _clear_stale_socket(self.socket_path)
        server = _Server(self.socket_path, volumes, self._record)
        info = os.stat(self.socket_path)
        self._socket_inode = (info.st_dev, info.st_ino)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long stop() may wait for the loop
            name=f"volume-plugin-{self.name}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        _log.info(
            "volume plugin %s serving on %s; mountpoints allowed in %s",
            self.name,
            self.socket_path,
            list(confinement.roots),
        )
        return self

    def stop(self) -> None:
        """Stop serving, end open connections, join the threads, unlink the socket. Idempotent."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
        try:
            info = os.stat(self.socket_path)
            if (info.st_dev, info.st_ino) == self._socket_inode:  # not a successor's socket
                os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        _log.info("volume plugin %s stopped", self.name)

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _record(self, call: PluginCall) -> None:
        with self._calls_lock:
            self._calls.append(call)
