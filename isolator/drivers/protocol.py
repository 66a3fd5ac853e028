"""Docker's volume plugin protocol: one coroutine per endpoint (answers decoded by ``answers``).

``VolumePluginAPI`` finds plugins the way dockerd does (``discovery.find_plugin``),
activates each once, and sends ``/Plugin.Activate`` and ``/VolumeDriver.*`` calls through
a ``transport.PluginConnection``. It decides nothing: the ``DriverClient`` adapter
(``plugin_client``) and ``isolator-dvdcli`` compose these calls.

Errors (all ``DriverError``):

- The plugin reported an error (``Err`` in a 200 answer, or any non-200 answer):
  ``PluginCallError``, worded like Docker's ``statusError``: ``"<Method>: <message>"``,
  e.g. ``"VolumeDriver.Mount: no such volume"``. The message is ``Err``, else ``Error``
  (REX-Ray), else the raw body (``404 page not found``), else ``HTTP <status> <reason>``.
- Everything the client itself finds wrong (not found, not answering, timed out, not a
  volume driver, a bad or oversized answer) is a sentence naming the plugin.
- A plugin never reached (every attempt failed to connect): ``PluginUnreachableError``.

Only Activate, Get, Path, List and Capabilities are sent again after the connection failed
once they may have reached the plugin; Create, Remove, Mount and Unmount are retried only
when they were never sent (``transport.NOT_SENT``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

from isolator.common.errors import DriverError
from isolator.config.defaults import (
    MOUNT_TIMEOUT,
    PLUGIN_SOCKET_DIR,
    PLUGIN_SPEC_DIRS,
    UNMOUNT_TIMEOUT,
)
from isolator.drivers.answers import (
    VOLUME_KEYS,
    JsonObject,
    NoSuchVolumeError,
    PluginCallError,
    canonical,
    decode,
    invalid,
    json_object,
    string,
)
from isolator.drivers.blocking import BlockingPool
from isolator.drivers.deadline import Deadline
from isolator.drivers.discovery import PluginAddress, PluginNotFoundError, find_plugin, json_get
from isolator.drivers.transport import MAX_BODY, Backoff, ClientClosedError, PluginConnection

__all__ = [
    "QUERY_TIMEOUT",
    "RESENDABLE",
    "NoSuchVolumeError",
    "PluginCallError",
    "VolumePluginAPI",
]

QUERY_TIMEOUT: Final = 60.0
"""Seconds for one exchange of Activate, Get, Path, List or Capabilities (no storage work)."""

RESENDABLE: Final = frozenset(
    {
        "Plugin.Activate",
        "VolumeDriver.Get",
        "VolumeDriver.Path",
        "VolumeDriver.List",
        "VolumeDriver.Capabilities",
    }
)
"""Calls that change nothing, so may be sent again after reaching the plugin: a second
Unmount would fail (or drop another caller's mount), a second Mount would count twice."""

_log = logging.getLogger(__name__)

JsonObjects = list[JsonObject]  # an alias: the API has a method called "list"


# -- the API ---------------------------------------------------------------------------------


class VolumePluginAPI:
    """Calls Docker volume plugins: one coroutine per endpoint of the protocol.

    Keyword arguments (defaults are Docker's, except ``unmount_timeout``):

    - ``socket_dir``, ``spec_dirs``: where plugins are discovered.
    - ``mount_timeout``: per exchange of Create, Mount and Remove, which may do slow
      storage work (``MOUNT_TIMEOUT``: what Docker gives Create and Mount, and Mesos dvdcli).
    - ``unmount_timeout``: per Unmount exchange; long, since an Unmount that is given up
      on leaves the volume attached (the isolator's ``docker_volume_unmount_timeout``).
    - ``query_timeout``: per exchange of Activate, Get, Path, List and Capabilities.
    - ``backoff``: how connection failures and not-yet-discovered plugins are retried;
      ``Backoff(budget=0)`` disables retries.
    - ``max_body``: the most bytes of one answer read (``transport.MAX_BODY``).
    - ``blocking``: the threads discovery's file I/O runs on (a ``BlockingPool`` of its own
      by default); ``DockerPluginClient`` checks mount points on it too.

    Each endpoint takes an optional ``deadline`` (its caller's, which the caller enforces):
    no exchange is given, and no retry started, past it.

    Use an instance from one event loop. Each plugin is discovered and activated on first
    use and kept until ``aclose``; a failed activation is not kept, so the next call
    starts again. No method blocks the loop.
    """

    def __init__(
        self,
        *,
        socket_dir: str = PLUGIN_SOCKET_DIR,
        spec_dirs: Sequence[str] = PLUGIN_SPEC_DIRS,
        mount_timeout: float = MOUNT_TIMEOUT,
        unmount_timeout: float = UNMOUNT_TIMEOUT,
        query_timeout: float = QUERY_TIMEOUT,
        backoff: Backoff | None = None,
        max_body: int = MAX_BODY,
        blocking: BlockingPool | None = None,
    ) -> None:
        if min(mount_timeout, unmount_timeout, query_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        if max_body < 0:
            raise ValueError("max_body must not be negative")
        self.socket_dir = socket_dir
        self.spec_dirs = tuple(spec_dirs)
        self.mount_timeout = mount_timeout
        self.unmount_timeout = unmount_timeout
        self.query_timeout = query_timeout
        self.backoff = Backoff() if backoff is None else backoff
        self.max_body = max_body
        self.blocking = BlockingPool() if blocking is None else blocking
        self._closed = False
        # Touched on the loop only, so no lock: activations, done or under way.
        self._plugins: dict[str, asyncio.Task[PluginConnection]] = {}

    # -- endpoints --------------------------------------------------------------------------

    async def activate(self, driver: str) -> PluginConnection:
        """``/Plugin.Activate``, once per plugin: its connection, once it is a volume driver.

        Concurrent callers share one activation; one giving up does not cancel it.
        """
        self._check_open()
        task = self._plugins.get(driver)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._activate(driver))
            self._plugins[driver] = task
            task.add_done_callback(functools.partial(self._activated, driver))
        return await asyncio.shield(task)

    async def create(
        self,
        driver: str,
        name: str,
        options: Mapping[str, str],
        *,
        deadline: Deadline | None = None,
    ) -> None:
        """``/VolumeDriver.Create`` (plugins are expected to make it idempotent)."""
        body = {"Name": name, "Opts": dict(options)}
        await self._call(driver, "VolumeDriver.Create", body, self.mount_timeout, deadline)

    async def remove(self, driver: str, name: str, *, deadline: Deadline | None = None) -> None:
        """``/VolumeDriver.Remove``."""
        body = {"Name": name}
        await self._call(driver, "VolumeDriver.Remove", body, self.mount_timeout, deadline)

    async def mount(
        self, driver: str, name: str, mount_id: str, *, deadline: Deadline | None = None
    ) -> str:
        """``/VolumeDriver.Mount`` for caller ``mount_id``: the mount point, as sent."""
        body = {"Name": name, "ID": mount_id}
        answer = await self._call(driver, "VolumeDriver.Mount", body, self.mount_timeout, deadline)
        return string(driver, "VolumeDriver.Mount", answer, "Mountpoint")

    async def unmount(
        self, driver: str, name: str, mount_id: str, *, deadline: Deadline | None = None
    ) -> None:
        """``/VolumeDriver.Unmount`` for caller ``mount_id``."""
        body = {"Name": name, "ID": mount_id}
        await self._call(driver, "VolumeDriver.Unmount", body, self.unmount_timeout, deadline)

    async def path(self, driver: str, name: str, *, deadline: Deadline | None = None) -> str:
        """``/VolumeDriver.Path``: the mount point, ``""`` when the plugin has none."""
        body = {"Name": name}
        answer = await self._call(driver, "VolumeDriver.Path", body, self.query_timeout, deadline)
        return string(driver, "VolumeDriver.Path", answer, "Mountpoint")

    async def get(self, driver: str, name: str, *, deadline: Deadline | None = None) -> JsonObject:
        """``/VolumeDriver.Get``: the volume, keys spelled as Docker does (``Name``...).

        Raises ``NoSuchVolumeError`` when the answer holds no volume and no error.
        """
        body = {"Name": name}
        answer = await self._call(driver, "VolumeDriver.Get", body, self.query_timeout, deadline)
        volume = json_object(driver, "VolumeDriver.Get", answer, "Volume")
        if volume is None:
            raise NoSuchVolumeError(driver, name)
        return canonical(volume, VOLUME_KEYS)

    async def list(self, driver: str, *, deadline: Deadline | None = None) -> JsonObjects:
        """``/VolumeDriver.List``: every volume of the plugin (``[]`` for ``null``)."""
        answer = await self._call(driver, "VolumeDriver.List", {}, self.query_timeout, deadline)
        volumes = json_get(answer, "Volumes")
        if volumes is None:
            return []
        if not isinstance(volumes, list) or not all(isinstance(v, dict) for v in volumes):
            raise invalid(driver, "VolumeDriver.List", "Volumes is not a list of objects")
        return [canonical(volume, VOLUME_KEYS) for volume in volumes]

    async def capabilities(self, driver: str, *, deadline: Deadline | None = None) -> JsonObject:
        """``/VolumeDriver.Capabilities``, with ``Scope`` lowercased (``local`` if unset)."""
        method = "VolumeDriver.Capabilities"
        answer = await self._call(driver, method, {}, self.query_timeout, deadline)
        result = canonical(json_object(driver, method, answer, "Capabilities") or {}, ("Scope",))
        scope = result.get("Scope")
        result["Scope"] = scope.lower() if isinstance(scope, str) and scope else "local"
        return result

    async def aclose(self) -> None:
        """Close every plugin connection; calls in flight and made afterwards fail. Idempotent."""
        self._closed = True
        tasks, self._plugins = list(self._plugins.values()), {}
        for task in tasks:
            if not task.done():
                task.cancel()  # its own cleanup closes its connection
            elif not task.cancelled() and task.exception() is None:
                await task.result().aclose()

    # -- calls ------------------------------------------------------------------------------

    async def _call(
        self,
        driver: str,
        method: str,
        body: JsonObject,
        timeout: float,
        deadline: Deadline | None,
    ) -> JsonObject:
        plugin = await self.activate(driver)
        return await self._exchange(plugin, method, body, timeout, deadline)

    async def _exchange(
        self,
        plugin: PluginConnection,
        method: str,
        body: JsonObject | None,
        timeout: float,
        deadline: Deadline | None = None,
    ) -> JsonObject:
        """POST ``/<method>``; the decoded answer, or the error it carries, raised.

        The body is compact JSON with a newline, as Go's encoder writes it; ``None`` is
        an empty body (Activate). No Content-Type, as Docker.
        """
        content = b"" if body is None else (json.dumps(body, separators=(",", ":")) + "\n").encode()
        answer = await plugin.post(
            method,
            content,
            timeout=timeout,
            backoff=self.backoff,
            may_resend=method in RESENDABLE,
            deadline=deadline,
        )
        return decode(plugin.name, method, answer)

    # -- activation -------------------------------------------------------------------------

    def _activated(self, driver: str, task: asyncio.Task[PluginConnection]) -> None:
        failed = task.cancelled() or task.exception() is not None
        if failed and self._plugins.get(driver) is task:
            del self._plugins[driver]  # not cached: the next call tries again

    async def _activate(self, driver: str) -> PluginConnection:
        address = await self._discover(driver)
        # Off the loop: an https plugin's TLS files are read here.
        connect = functools.partial(PluginConnection, address, max_body=self.max_body)
        plugin = await self.blocking.run(("connect", address), connect)
        try:
            implements = await self.handshake(plugin)
            if "VolumeDriver" not in implements:
                raise DriverError(
                    f"Docker volume plugin {driver!r} at {plugin.where} is not a volume "
                    f"driver: it implements {json.dumps(implements)}, not VolumeDriver"
                )
        except BaseException:
            await plugin.aclose()
            raise
        _log.info("activated Docker volume plugin %r at %s", driver, plugin.where)
        return plugin

    async def handshake(self, plugin: PluginConnection) -> tuple[Any, ...]:
        """``/Plugin.Activate`` on ``plugin``: what it implements (``()`` if it says nothing).

        The step ``activate`` starts with, for any kind of plugin: listing plugins shows
        what each implements, volume driver or not.
        """
        answer = await self._exchange(plugin, "Plugin.Activate", None, self.query_timeout)
        implements = json_get(answer, "Implements")
        return tuple(implements) if isinstance(implements, list) else ()

    async def _discover(self, driver: str) -> PluginAddress:
        """``find_plugin`` off the loop, retried while not found (a plugin may be starting)."""
        find = functools.partial(
            find_plugin, driver, socket_dir=self.socket_dir, spec_dirs=self.spec_dirs
        )

        async def once() -> PluginAddress:
            self._check_open()
            return await self.blocking.run(("find", driver), find)

        def on_retry(error: Exception, delay: float) -> None:
            _log.warning("%s; retrying in %g s", error, delay)

        def give_up(error: Exception, attempts: int, elapsed: float) -> Exception:
            return error

        return await self.backoff.retry(
            once, (PluginNotFoundError,), on_retry=on_retry, give_up=give_up
        )

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError
