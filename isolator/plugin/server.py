"""The reference volume plugin as a whole: its socket, its state and its server thread.

``endpoints`` says what each call means, ``volumes`` keeps the volumes, ``mountpoints``
confines their directories and ``http_server`` bounds what clients may hold.
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import socket
import stat
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Self

from isolator.common.errors import strerror

from .endpoints import PluginCall, respond
from .errors import PluginError
from .http_server import HttpServer, Limits, Response
from .mountpoints import Confinement
from .volumes import CountMode, DirectoryVolumes

__all__ = ["SOCKET_MODE", "VolumePlugin", "group_id"]

SOCKET_MODE = 0o660
"""As docker/go-plugins-helpers' ``ServeUnix``: the owner and one group may call, nobody
else (a caller can Mount and Remove any volume). Set explicitly, never from the umask."""

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


def group_id(group: str | int) -> int:
    """A group given by name or number as its GID; ``PluginError`` names an unknown one."""
    if isinstance(group, int) or group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise PluginError(f"unknown socket group {group!r}: no such group") from None


def _bind(listener: socket.socket, path: str, gid: int | None) -> os.stat_result:
    """Bind ``path`` with mode ``SOCKET_MODE`` (group ``gid`` if given), never wider.

    The socket is bound in a fresh directory only the owner can enter, given its mode
    and group there, then renamed into place: no other user can connect while its mode
    still comes from the umask. (If that directory's longer path does not fit a socket
    address, it is bound in place and its mode set at once.)
    """
    staging = tempfile.mkdtemp(prefix=".", dir=os.path.dirname(path))  # mode 0700
    inner = os.path.join(staging, "s")
    try:
        try:
            listener.bind(inner)
            bound = inner
        except OSError as error:
            if "too long" not in str(error):
                raise
            listener.bind(path)
            bound = path
        try:
            _set_mode(bound, gid)
            if bound != path:
                os.link(bound, path)  # never over a file that appeared meanwhile
                os.unlink(bound)
            return os.stat(path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(bound)  # ours: bound a moment ago (the link failed, if any)
            raise
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(staging)


def _set_mode(path: str, gid: int | None) -> None:
    if gid is not None:
        try:
            os.chown(path, -1, gid)
        except OSError as error:
            raise PluginError(
                f"cannot give socket {path} to group {gid}: {strerror(error)}"
            ) from error
    os.chmod(path, SOCKET_MODE)


class VolumePlugin:
    """A directory-backed Docker volume plugin serving on a unix socket in a daemon thread.

    ``VolumePlugin(socket_path=..., root=...).start()`` binds and serves; ``stop()`` ends
    every connection, joins the threads and unlinks the socket. Volumes live in
    ``<root>/volumes/<name>`` unless created with ``-o mountpoint=/abs/dir``, which must lie
    inside ``<root>/volumes`` or one of ``allowed_mountpoints`` (see ``mountpoints``); the
    state is in ``state_dir`` (default ``<root>/state``, a file per volume) so a new
    instance carries on where the last one stopped. ``limits`` bounds connections, time and threads.

    ``count`` is how Mounts and Unmounts are counted (``"calls"``, Docker's ``local``
    driver, or ``"ids"``) and ``refuse_duplicate_id`` refuses a second Mount of a (Name, ID)
    (see ``volumes``). The socket gets mode 0660, group ``socket_group`` if given.

    Threads: one loop thread plus at most ``limits.max_workers``, whatever the clients do.
    """

    def __init__(
        self,
        *,
        socket_path: str | os.PathLike[str],
        root: str | os.PathLike[str],
        state_dir: str | os.PathLike[str] | None = None,
        name: str | None = None,
        allowed_mountpoints: Iterable[str | os.PathLike[str]] = (),
        limits: Limits | None = None,
        count: CountMode = "calls",
        refuse_duplicate_id: bool = False,
        socket_group: str | int | None = None,
    ) -> None:
        self.socket_path = os.path.abspath(socket_path)
        self.root = Path(root).absolute()
        self.state_dir = Path(state_dir).absolute() if state_dir else self.root / "state"
        self.count = count
        self.refuse_duplicate_id = refuse_duplicate_id
        self.socket_group = socket_group
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
        missing, an unknown socket group, or a socket path taken by a live server or a
        non-socket file. A version 1 ``<root>/state.json`` is imported first, once.
        """
        if self._server is not None:
            raise PluginError(f"volume plugin {self.name} is already running")
        gid = None if self.socket_group is None else group_id(self.socket_group)
        confinement = Confinement(
            self.root / "volumes",
            self.allowed_mountpoints,
            reserved=(self.root, self.state_dir, self.socket_path),
        )
        volumes = DirectoryVolumes(
            confinement,
            self.state_dir,
            count=self.count,
            refuse_duplicate_id=self.refuse_duplicate_id,
            legacy_state=self.root / "state.json",
        )
        os.makedirs(confinement.volumes_dir, mode=0o755, exist_ok=True)
        Path(self.socket_path).parent.mkdir(parents=True, exist_ok=True)
        _clear_stale_socket(self.socket_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            info = _bind(listener, self.socket_path, gid)
            listener.listen(socket.SOMAXCONN)  # unix connect() fails with EAGAIN when full
        except (OSError, PluginError):
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
        _log.info(
            "volume plugin %s counts %s%s; socket mode %o, group %d",
            self.name,
            self.count,
            ", refusing a duplicate ID" if self.refuse_duplicate_id else "",
            SOCKET_MODE,
            info.st_gid,
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
