"""A ``DriverClient`` that speaks Docker's volume plugin protocol itself, without dvdcli.

dvdcli is unmaintained and costs a process per call; this client finds plugins the way
dockerd does (``discovery.find_plugin``), activates each once, and makes the
``/VolumeDriver.*`` calls with httpx on the shared driver loop, so no call blocks its
caller and a hung plugin holds up nothing but its own calls.

Errors (all ``DriverError``):

- The plugin reported an error (``Err`` in a 200 answer, or any non-200 answer):
  ``PluginCallError``, worded like Docker's ``statusError``: ``"<Method>: <message>"``,
  e.g. ``"VolumeDriver.Mount: no such volume"``. The message is ``Err``, else ``Error``
  (REX-Ray), else the raw body (``404 page not found``), else ``HTTP <status> <reason>``.
- Everything the client itself finds wrong (not found, not answering, timed out, not a
  volume driver, a bad answer or mount point) is a sentence naming the plugin.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import os
import socket
import ssl
import threading
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import httpx

from actors import EventLoopThread, Future
from isolator.drivers._io import driver_loop
from isolator.drivers.base import DriverClient
from isolator.drivers.discovery import (
    DEFAULT_SOCKET_DIR,
    DEFAULT_SPEC_DIRS,
    PluginAddress,
    PluginNotFoundError,
    find_plugin,
    json_get,
)
from isolator.errors import DriverError

__all__ = [
    "ACCEPT",
    "MACHINE_ID_PATHS",
    "DockerPluginClient",
    "PluginCallError",
    "default_mount_id",
    "machine_identity",
]

ACCEPT: Final = "application/vnd.docker.plugins.v1.2+json"
"""What dockerd (1.11 to today) sends as ``Accept`` on every plugin call."""

MACHINE_ID_PATHS: Final = ("/etc/machine-id", "/var/lib/dbus/machine-id")
UNIX_HOST: Final = "plugin.moby.localhost"
"""The ``Host`` header current dockerd sends to plugins on unix sockets."""

DIAL_TIMEOUT: Final = 10.0
"""Connect timeout, as Docker's dialer (only a TCP connect can take this long)."""
MAX_BACKOFF: Final = 30.0
"""Docker's cap on one retry delay."""
MAX_IDLE_CONNECTIONS: Final = 6
IDLE_TIMEOUT: Final = 30.0
MAX_MESSAGE: Final = 2000
"""Raw bodies quoted in errors are cut to this many characters."""

_MOUNT_ID_TAG: Final = b"mesos-docker-volume-isolator"
_VOLUME_KEYS: Final = ("Name", "Mountpoint", "CreatedAt", "Status")
_USER_AGENT: Final = "mesos-docker-volume-isolator"

_log = logging.getLogger(__name__)

T = TypeVar("T")
JsonObject = dict[str, Any]
JsonObjects = list[JsonObject]  # an alias: the client has a method called "list"


class PluginCallError(DriverError):
    """The plugin answered a call with an error: ``"<method>: <message>"``.

    ``status`` is the HTTP status (200 when the error came as ``Err`` in a 200 answer).
    """

    def __init__(self, plugin: str, method: str, status: int, message: str) -> None:
        self.plugin = plugin
        self.method = method
        self.status = status
        self.message = message
        super().__init__(f"{method}: {message}")


# -- the mount ID ---------------------------------------------------------------------------


def machine_identity(paths: Sequence[str] = MACHINE_ID_PATHS) -> str:
    """This machine's ID: the first non-empty ID file, else the host name."""
    for path in paths:
        try:
            with open(path, encoding="utf-8") as file:
                value = file.read().strip()
        except (OSError, UnicodeDecodeError):
            continue
        if value:
            return value
    return socket.gethostname()


def default_mount_id(
    *,
    socket_dir: str = DEFAULT_SOCKET_DIR,
    spec_dirs: Sequence[str] = DEFAULT_SPEC_DIRS,
    machine_id: str | None = None,
) -> str:
    """The ``ID`` sent with Mount and Unmount: 64 hex digits, stable per machine and setup.

    Plugins count their callers by ID and release a volume at the last Unmount of the IDs
    that mounted it. Mesos keeps its own count across containers and sends one Unmount
    when the last user goes, so the agent must be one caller, with one ID, and it must
    be the same after an agent restart, or the Unmount of a volume mounted before the
    restart would not match. A hash of the machine ID (never sent as is: systemd asks
    applications not to expose it) and the discovery directories gives exactly that.
    """
    identity = machine_identity() if machine_id is None else machine_id
    digest = hashlib.sha256()
    for part in (_MOUNT_ID_TAG, identity.encode(), socket_dir.encode()):
        digest.update(part + b"\0")
    for directory in spec_dirs:
        digest.update(directory.encode() + b"\0")
    return digest.hexdigest()


# -- decoding answers -----------------------------------------------------------------------


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


def _failure_message(response: httpx.Response) -> str:
    """What a non-200 answer says went wrong: ``Err``, else ``Error``, else the body."""
    body = response.content.decode("utf-8", errors="replace")
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict):
        for key in ("Err", "Error"):
            value = json_get(document, key)
            if value not in (None, ""):
                return _clip(_text(value))
    if body.strip():
        return _clip(body)
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()


def _canonical(obj: JsonObject, keys: Sequence[str]) -> JsonObject:
    """``obj`` with ``keys`` spelled as Docker spells them (``mountpoint`` -> ``Mountpoint``)."""
    folded = {key.casefold() for key in keys}
    result = {k: v for k, v in obj.items() if k.casefold() not in folded}
    missing = object()
    for key in keys:
        value = json_get(obj, key, missing)
        if value is not missing:
            result[key] = value
    return result


@dataclass(eq=False)
class _Plugin:
    """An activated plugin: where it is and the HTTP client that talks to it."""

    name: str
    address: PluginAddress
    http: httpx.AsyncClient

    @property
    def where(self) -> str:
        where = self.address.url
        if self.address.source != self.address.socket_path:
            where += f" (from {self.address.source})"
        return where


_RETRIED: Final = (
    httpx.ConnectError,  # refused, no such socket, TLS handshake
    httpx.ConnectTimeout,
    httpx.ReadError,  # reset
    httpx.WriteError,
    httpx.RemoteProtocolError,  # closed before an answer
)
"""Transport failures, retried like Docker's ``callWithRetry``; HTTP errors never are."""


class DockerPluginClient(DriverClient):
    """Mounts and unmounts volumes by calling Docker volume plugins directly.

    Keyword arguments (defaults are Docker's, except ``unmount_timeout``):

    - ``socket_dir``, ``spec_dirs``: where plugins are discovered.
    - ``explicit_create``: refuse to mount a volume the plugin does not have, instead of
      creating it first (dvdcli's ``--explicitcreate``).
    - ``timeout``: per HTTP exchange of Create, Mount and Remove, which may do slow
      storage work (Docker gives Create and Mount 120 s, as Mesos gave dvdcli mount).
    - ``unmount_timeout``: per Unmount exchange; long, since an Unmount that is given
      up on leaves the volume attached (the isolator's ``--docker_volume_unmount_timeout``
      default).
    - ``query_timeout``: per HTTP exchange of Activate, Get, Path, List, Capabilities.
    - ``retry_budget``, ``retry_base_delay``: connection failures and not-yet-discovered
      plugins are retried after ``base * 2**n`` seconds (capped at 30 s) as long as the
      next retry would start before ``retry_budget`` seconds have passed since the
      first attempt: Docker's loop, which gives up after about 15 s. 0 disables retries.
    - ``mount_id``: the ``ID`` for Mount/Unmount; default ``default_mount_id(...)``.
    - ``loop``: the event loop thread; default the shared ``driver_loop()``.

    Each plugin is discovered and activated on first use and kept for the client's life;
    a failed activation is not kept, so the next call starts again.
    """

    def __init__(
        self,
        *,
        socket_dir: str = DEFAULT_SOCKET_DIR,
        spec_dirs: Sequence[str] = DEFAULT_SPEC_DIRS,
        explicit_create: bool = False,
        timeout: float = 120.0,
        unmount_timeout: float = 600.0,
        query_timeout: float = 60.0,
        retry_budget: float = 30.0,
        retry_base_delay: float = 1.0,
        mount_id: str | None = None,
        loop: EventLoopThread | None = None,
    ) -> None:
        if min(timeout, unmount_timeout, query_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        if retry_budget < 0 or retry_base_delay < 0:
            raise ValueError("retry_budget and retry_base_delay must not be negative")
        self.socket_dir = socket_dir
        self.spec_dirs = tuple(spec_dirs)
        self.explicit_create = explicit_create
        self.timeout = timeout
        self.unmount_timeout = unmount_timeout
        self.query_timeout = query_timeout
        self.retry_budget = retry_budget
        self.retry_base_delay = retry_base_delay
        self.mount_id = (
            default_mount_id(socket_dir=socket_dir, spec_dirs=self.spec_dirs)
            if mount_id is None
            else mount_id
        )
        self._loop = loop if loop is not None else driver_loop()
        self._closed = False
        # Touched on the loop thread only, so no lock: activations, done or under way.
        self._plugins: dict[str, asyncio.Task[_Plugin]] = {}

    # -- DriverClient -----------------------------------------------------------------------

    def mount(self, driver: str, name: str, options: Mapping[str, str]) -> Future[str]:
        """Get; Create with ``options`` if the plugin lacks the volume; Mount; the path."""
        return self._submit(self._mount(driver, name, dict(options)))

    def unmount(self, driver: str, name: str) -> Future[None]:
        """Unmount with this client's mount ID."""
        return self._submit(self._unmount(driver, name))

    def close(self) -> None:
        """Close every plugin connection; calls made afterwards fail. Idempotent."""
        if self._closed:
            return
        self._closed = True
        done = self._loop.submit(self._aclose())
        try:
            on_loop = asyncio.get_running_loop() is self._loop.loop
        except RuntimeError:
            on_loop = False
        if not on_loop:  # waiting on the loop's own thread would deadlock
            done.wait(5.0)

    # -- the rest of the protocol (for a dvdcli-like CLI) -----------------------------------

    def create(self, driver: str, name: str, options: Mapping[str, str]) -> Future[None]:
        """``/VolumeDriver.Create`` (plugins are expected to make it idempotent)."""
        return self._submit(self._create(driver, name, dict(options)))

    def remove(self, driver: str, name: str) -> Future[None]:
        """``/VolumeDriver.Remove``."""
        return self._submit(self._simple(driver, "VolumeDriver.Remove", {"Name": name}))

    def path(self, driver: str, name: str) -> Future[str]:
        """``/VolumeDriver.Path``: the mount point, ``""`` when the plugin has none."""
        return self._submit(self._path(driver, name))

    def get(self, driver: str, name: str) -> Future[JsonObject]:
        """``/VolumeDriver.Get``: the volume, keys spelled as Docker does (``Name``...)."""
        return self._submit(self._get(driver, name))

    def list(self, driver: str) -> Future[JsonObjects]:
        """``/VolumeDriver.List``: every volume of the plugin (``[]`` for ``null``)."""
        return self._submit(self._list(driver))

    def capabilities(self, driver: str) -> Future[JsonObject]:
        """``/VolumeDriver.Capabilities``, with ``Scope`` lowercased (``local`` if unset)."""
        return self._submit(self._capabilities(driver))

    # -- calls ------------------------------------------------------------------------------

    def _submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        if self._closed:
            coroutine.close()
            return Future.failed(self._closed_error())
        return self._loop.submit(coroutine)

    async def _mount(self, driver: str, name: str, options: dict[str, str]) -> str:
        plugin = await self._plugin(driver)
        volume, why_missing = await self._lookup(plugin, name)
        if volume is None:
            if self.explicit_create:
                raise DriverError(
                    f"Docker volume {name!r} of plugin {driver!r} does not exist and "
                    f"explicit create is on, so it is not created ({why_missing})"
                )
            await self._call(
                plugin, "VolumeDriver.Create", {"Name": name, "Opts": options}, self.timeout
            )
        answer = await self._call(
            plugin, "VolumeDriver.Mount", {"Name": name, "ID": self.mount_id}, self.timeout
        )
        mountpoint = self._string(plugin, "VolumeDriver.Mount", answer, "Mountpoint")
        await self._check_mountpoint(plugin, name, mountpoint)
        return mountpoint

    async def _unmount(self, driver: str, name: str) -> None:
        plugin = await self._plugin(driver)
        body = {"Name": name, "ID": self.mount_id}
        await self._call(plugin, "VolumeDriver.Unmount", body, self.unmount_timeout)

    async def _create(self, driver: str, name: str, options: dict[str, str]) -> None:
        await self._simple(driver, "VolumeDriver.Create", {"Name": name, "Opts": options})

    async def _simple(self, driver: str, method: str, body: JsonObject) -> None:
        plugin = await self._plugin(driver)
        await self._call(plugin, method, body, self.timeout)

    async def _path(self, driver: str, name: str) -> str:
        plugin = await self._plugin(driver)
        answer = await self._call(plugin, "VolumeDriver.Path", {"Name": name}, self.query_timeout)
        return self._string(plugin, "VolumeDriver.Path", answer, "Mountpoint")

    async def _get(self, driver: str, name: str) -> JsonObject:
        plugin = await self._plugin(driver)
        answer = await self._call(plugin, "VolumeDriver.Get", {"Name": name}, self.query_timeout)
        volume = self._volume(plugin, answer)
        if volume is None:
            raise DriverError(f"Docker volume plugin {driver!r} has no volume {name!r}")
        return volume

    async def _list(self, driver: str) -> JsonObjects:
        plugin = await self._plugin(driver)
        answer = await self._call(plugin, "VolumeDriver.List", {}, self.query_timeout)
        volumes = json_get(answer, "Volumes")
        if volumes is None:
            return []
        if not isinstance(volumes, list) or not all(isinstance(v, dict) for v in volumes):
            raise self._invalid(plugin, "VolumeDriver.List", "Volumes is not a list of objects")
        return [_canonical(volume, _VOLUME_KEYS) for volume in volumes]

    async def _capabilities(self, driver: str) -> JsonObject:
        plugin = await self._plugin(driver)
        answer = await self._call(plugin, "VolumeDriver.Capabilities", {}, self.query_timeout)
        capabilities = json_get(answer, "Capabilities")
        if capabilities is None:
            capabilities = {}
        if not isinstance(capabilities, dict):
            raise self._invalid(
                plugin, "VolumeDriver.Capabilities", "Capabilities is not an object"
            )
        result = _canonical(capabilities, ("Scope",))
        scope = result.get("Scope")
        result["Scope"] = scope.lower() if isinstance(scope, str) and scope else "local"
        return result

    async def _lookup(self, plugin: _Plugin, name: str) -> tuple[JsonObject | None, str]:
        """Get, as Docker's volume store: any error the plugin reports means "absent".

        A plugin without Get (404) or one that says "no such volume" is then asked to
        Create, which plugins make idempotent. Failing to reach the plugin is an error.
        """
        try:
            answer = await self._call(
                plugin, "VolumeDriver.Get", {"Name": name}, self.query_timeout
            )
        except PluginCallError as error:
            return None, str(error)
        volume = self._volume(plugin, answer)
        if volume is None:
            return None, "VolumeDriver.Get: no volume in the answer"
        return volume, ""

    def _volume(self, plugin: _Plugin, answer: JsonObject) -> JsonObject | None:
        volume = json_get(answer, "Volume")
        if volume is None:
            return None
        if not isinstance(volume, dict):
            raise self._invalid(plugin, "VolumeDriver.Get", "Volume is not an object")
        return _canonical(volume, _VOLUME_KEYS)

    def _string(self, plugin: _Plugin, method: str, answer: JsonObject, key: str) -> str:
        value = json_get(answer, key, "")
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._invalid(plugin, method, f"{key} is {json.dumps(value)}, not a string")
        return value

    async def _check_mountpoint(self, plugin: _Plugin, name: str, mountpoint: str) -> None:
        """Refuse a mount point the isolator could not bind-mount from.

        The plugin keeps the volume mounted for our ID: no Unmount is sent, since Mesos
        may still use the volume under that same ID for other containers.
        """
        prefix = f"Docker volume plugin {plugin.name!r} returned"
        if not mountpoint:
            raise DriverError(f"{prefix} an empty mount point for volume {name!r}")
        if not os.path.isabs(mountpoint):
            raise DriverError(f"{prefix} a relative mount point {mountpoint!r} for volume {name!r}")
        if not await self._exists(mountpoint):
            raise DriverError(
                f"{prefix} mount point {mountpoint!r} for volume {name!r}, which does not exist"
            )

    async def _exists(self, path: str) -> bool:
        """``os.path.exists`` off the loop: a stat on a hung network mount must not stall it.

        A daemon thread, not the loop's executor, so a hung stat cannot keep the process
        alive at exit.
        """
        loop = asyncio.get_running_loop()
        result: asyncio.Future[bool] = loop.create_future()

        def _settle(value: bool) -> None:
            if not result.done():
                result.set_result(value)

        def _stat() -> None:
            value = os.path.exists(path)
            loop.call_soon_threadsafe(_settle, value)

        threading.Thread(target=_stat, name="plugin-mountpoint-stat", daemon=True).start()
        try:
            async with asyncio.timeout(self.timeout):
                return await result
        except TimeoutError:
            raise DriverError(
                f"Could not check mount point {path!r} within {self.timeout:g} s"
            ) from None

    # -- activation -------------------------------------------------------------------------

    async def _plugin(self, driver: str) -> _Plugin:
        """The activated plugin ``driver``; one activation is shared by concurrent calls."""
        self._check_open()
        task = self._plugins.get(driver)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._activate(driver))
            self._plugins[driver] = task
            task.add_done_callback(functools.partial(self._activated, driver))
        # Shielded: a caller giving up (discard) must not cancel the others' activation.
        return await asyncio.shield(task)

    def _activated(self, driver: str, task: asyncio.Task[_Plugin]) -> None:
        failed = task.cancelled() or task.exception() is not None
        if failed and self._plugins.get(driver) is task:
            del self._plugins[driver]  # not cached: the next call tries again

    async def _activate(self, driver: str) -> _Plugin:
        address = await self._discover(driver)
        plugin = _Plugin(driver, address, self._http(address))
        try:
            answer = await self._call(plugin, "Plugin.Activate", None, self.query_timeout)
            implements = json_get(answer, "Implements")
            if not isinstance(implements, list):
                implements = []
            if "VolumeDriver" not in implements:
                raise DriverError(
                    f"Docker volume plugin {driver!r} at {plugin.where} is not a volume "
                    f"driver: it implements {json.dumps(implements)}, not VolumeDriver"
                )
        except BaseException:
            await plugin.http.aclose()
            raise
        _log.info("activated Docker volume plugin %r at %s", driver, plugin.where)
        return plugin

    async def _discover(self, driver: str) -> PluginAddress:
        """``find_plugin``, retried while not found (a plugin may be starting up)."""
        loop = asyncio.get_running_loop()
        start, attempt = loop.time(), 0
        while True:
            self._check_open()
            try:
                return find_plugin(driver, socket_dir=self.socket_dir, spec_dirs=self.spec_dirs)
            except PluginNotFoundError as error:
                delay = self._backoff(attempt)
                if loop.time() - start + delay >= self.retry_budget:
                    raise
                _log.warning("%s; retrying in %g s", error, delay)
            await asyncio.sleep(delay)
            attempt += 1

    def _http(self, address: PluginAddress) -> httpx.AsyncClient:
        limits = httpx.Limits(
            max_connections=None,  # a hung call must not hold up the next on a full pool
            max_keepalive_connections=MAX_IDLE_CONNECTIONS,
            keepalive_expiry=IDLE_TIMEOUT,
        )
        transport: httpx.AsyncHTTPTransport
        if address.socket_path is not None:
            transport = httpx.AsyncHTTPTransport(
                uds=address.socket_path, verify=False, limits=limits
            )
            base_url = f"http://{UNIX_HOST}"
        else:
            verify: ssl.SSLContext | bool = (
                self._ssl_context(address) if address.wire_scheme == "https" else False
            )
            transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
            base_url = f"{address.wire_scheme}://{address.host}"
        # No proxies from the environment: plugins are local or cluster-internal services.
        return httpx.AsyncClient(
            transport=transport,
            base_url=base_url,
            headers={"Accept": ACCEPT, "User-Agent": _USER_AGENT},
            timeout=httpx.Timeout(None, connect=DIAL_TIMEOUT),
            trust_env=False,
            follow_redirects=False,
        )

    @staticmethod
    def _ssl_context(address: PluginAddress) -> ssl.SSLContext:
        """Docker's TLS rules: system roots plus the CA file; verification as configured."""
        tls = address.tls
        context = ssl.create_default_context()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if tls is None:
            return context
        try:
            if tls.ca_file:
                context.load_verify_locations(cafile=tls.ca_file)
            if tls.cert_file or tls.key_file:
                if not (tls.cert_file and tls.key_file):
                    raise ValueError("CertFile and KeyFile must be given together")
                context.load_cert_chain(tls.cert_file, tls.key_file)
        except (OSError, ValueError, ssl.SSLError) as error:
            raise DriverError(
                f"Docker volume plugin {address.name!r}: bad TLSConfig in {address.source}: {error}"
            ) from None
        if tls.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    # -- HTTP -------------------------------------------------------------------------------

    async def _call(
        self, plugin: _Plugin, method: str, body: JsonObject | None, timeout: float
    ) -> JsonObject:
        """POST ``/<method>``; the decoded answer, or the error it carries, raised.

        The body is compact JSON with a newline, as Go's encoder writes it; ``None`` is
        an empty body (Activate). No Content-Type, as Docker.
        """
        content = b"" if body is None else (json.dumps(body, separators=(",", ":")) + "\n").encode()
        response = await self._post(plugin, method, content, timeout)
        if response.status_code != 200:
            raise PluginCallError(
                plugin.name, method, response.status_code, _failure_message(response)
            )
        if not response.content.strip():
            return {}  # Go would fail on an empty body; nothing in it is no error either
        try:
            answer = json.loads(response.content)
        except ValueError:
            raise self._invalid(
                plugin, method, f"not JSON: {_clip(response.content.decode('utf-8', 'replace'))!r}"
            ) from None
        if answer is None:
            return {}
        if not isinstance(answer, dict):
            raise self._invalid(plugin, method, "not a JSON object")
        error = json_get(answer, "Err")
        if error not in (None, ""):
            raise PluginCallError(plugin.name, method, 200, _clip(_text(error)))
        return answer

    async def _post(
        self, plugin: _Plugin, method: str, content: bytes, timeout: float
    ) -> httpx.Response:
        """One exchange, retried on connection failures within the retry budget."""
        loop = asyncio.get_running_loop()
        start, attempt = loop.time(), 0
        while True:
            self._check_open()
            try:
                async with asyncio.timeout(timeout):
                    return await plugin.http.post("/" + method, content=content)
            except TimeoutError:
                raise DriverError(
                    f"Docker volume plugin {plugin.name!r} at {plugin.where} did not answer "
                    f"{method} within {timeout:g} s"
                ) from None
            except _RETRIED as error:
                self._check_open()
                delay = self._backoff(attempt)
                elapsed = loop.time() - start
                reason = str(error) or type(error).__name__
                if elapsed + delay >= self.retry_budget:
                    raise DriverError(
                        f"Docker volume plugin {plugin.name!r} at {plugin.where} is not "
                        f"answering {method}: {reason} (gave up after {attempt + 1} "
                        f"attempt(s) in {elapsed:.1f} s)"
                    ) from None
                _log.warning(
                    "Docker volume plugin %r at %s: %s failed: %s; retrying in %g s",
                    plugin.name,
                    plugin.where,
                    method,
                    reason,
                    delay,
                )
            except (httpx.HTTPError, RuntimeError) as error:
                self._check_open()  # httpx raises RuntimeError on a client closed meanwhile
                raise DriverError(
                    f"Docker volume plugin {plugin.name!r} at {plugin.where}: {method} "
                    f"failed: {error}"
                ) from None
            await asyncio.sleep(delay)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        return float(min(self.retry_base_delay * 2**attempt, MAX_BACKOFF))

    @staticmethod
    def _invalid(plugin: _Plugin, method: str, problem: str) -> DriverError:
        return DriverError(
            f"Docker volume plugin {plugin.name!r} sent an invalid answer to {method}: {problem}"
        )

    # -- closing ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise self._closed_error()

    @staticmethod
    def _closed_error() -> DriverError:
        return DriverError("The Docker volume plugin client is closed")

    async def _aclose(self) -> None:
        tasks, self._plugins = list(self._plugins.values()), {}
        for task in tasks:
            if task.done():
                if not task.cancelled() and task.exception() is None:
                    await task.result().http.aclose()
            else:
                task.cancel()  # its own cleanup closes its HTTP client
