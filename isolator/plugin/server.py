"""The reference volume plugin as a whole: its socket, its state and its server thread.

``endpoints`` says what each call means, ``volumes`` keeps the volumes, ``mountpoints``
confines their directories and ``http_server`` bounds what clients may hold.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Self

from .endpoints import PluginCall, respond
from .errors import PluginError
from .http_server import HttpServer, Limits, Response
from .mountpoints import Confinement
from .volumes import DirectoryVolumes

__all__ = ["VolumePlugin"]

_log = logging.getLogger(__name__)


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
    where the last one stopped. ``limits`` bounds connections, time and threads.

    Threads: one loop thread plus at most ``limits.max_workers``, whatever the clients do.
    """

    def __init__(
        self,
        *,
        socket_path: str | os.PathLike[str],
        root: str | os.PathLike[str],
        state_path: str | os.PathLike[str] | None = None,
        name: str | None = None,
        allowed_mountpoints: Iterable[str | os.PathLike[str]] = (),
        limits: Limits | None = None,
    ) -> None:
        self.socket_path = os.path.abspath(socket_path)
        self.root = Path(root).absolute()
        self.state_path = Path(state_path).absolute() if state_path else self.root / "state.json"
        self.name = name or Path(self.socket_path).stem
        self.allowed_mountpoints = tuple(os.fspath(path) for path in allowed_mountpoints)
        self.limits = limits or Limits()
        self._calls: list[PluginCall] = []
        self._calls_lock = threading.Lock()
        self._server: HttpServer | None = None
        self._listener: socket.socket | None = None
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
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.socket_path)
            listener.listen(socket.SOMAXCONN)  # unix connect() fails with EAGAIN when full
            info = os.stat(self.socket_path)
        except OSError:
            listener.close()
            raise
        self._socket_inode = (info.st_dev, info.st_ino)

        def handle(method: str, body: bytes) -> Response:
            return respond(volumes, method, body, self._record)

        server = HttpServer(listener, handle, self.limits, self.name)
        self._server, self._listener = server, listener
        server.start()
        _log.info(
            "volume plugin %s serving on %s; mountpoints allowed in %s",
            self.name,
            self.socket_path,
            list(confinement.roots),
        )
        return self

    def stop(self) -> None:
        """Stop serving, end open connections, join the threads, unlink the socket. Idempotent."""
        server, listener = self._server, self._listener
        if server is None or listener is None:
            return
        self._server = self._listener = None
        server.stop()
        listener.close()
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
