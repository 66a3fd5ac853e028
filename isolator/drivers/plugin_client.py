"""A ``DriverClient`` that speaks Docker's volume plugin protocol itself, without dvdcli.

dvdcli is unmaintained and costs a process per call; this client makes the
``VolumePluginAPI`` calls on the shared driver loop, so no call blocks its caller and a
hung plugin holds up nothing but its own calls. It adds what a mount means to Docker's
volume store: Get, Create when the volume is missing, Mount, and a mount point the
isolator can bind-mount from.

It also decides what a failed mount means for the isolator: ``MountRefusedError`` when
the plugin cannot have mounted anything for this call (it was not found or activated,
refused Get's absent volume under explicit create, refused Create or Mount with an error
answer, was never reached with Mount, or the deadline came before Mount was sent); any
other ``DriverError`` when it may have (Mount timed out or its connection was lost after
sending, its answer was bad, the mount point it returned is unusable).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from actors import EventLoopThread, Future
from isolator.common.errors import DriverError, MountRefusedError
from isolator.config.defaults import (
    MOUNT_TIMEOUT,
    PLUGIN_SOCKET_DIR,
    PLUGIN_SPEC_DIRS,
    UNMOUNT_TIMEOUT,
)
from isolator.drivers._io import driver_loop
from isolator.drivers.base import DriverClient
from isolator.drivers.deadline import Deadline
from isolator.drivers.mount_id import default_mount_id
from isolator.drivers.protocol import (
    QUERY_TIMEOUT,
    NoSuchVolumeError,
    PluginCallError,
    VolumePluginAPI,
)
from isolator.drivers.transport import MAX_BODY, Backoff, ClientClosedError, PluginUnreachableError

__all__ = ["DockerPluginClient"]

T = TypeVar("T")

_log = logging.getLogger(__name__)

_ACTIVATING = "finding and activating the plugin"


@dataclass
class _Progress:
    """How far a call got: for its deadline's message, and whether the plugin may have
    mounted anything yet (a failure before that is a refusal)."""

    refusal: bool
    doing: str = _ACTIVATING


def path_exists(path: str) -> bool:
    """The mount-point check (``os.path.exists``), blocking; named so tests can hang it."""
    return os.path.exists(path)


def _refused(error: DriverError) -> MountRefusedError:
    """The same message, as a refusal (raise it ``from error``): nothing needs an unmount."""
    return MountRefusedError(str(error))


class DockerPluginClient(DriverClient):
    """Mounts and unmounts volumes by calling Docker volume plugins directly.

    Keyword arguments, beyond those of ``VolumePluginAPI`` (``socket_dir``, ``spec_dirs``,
    ``mount_timeout``, ``unmount_timeout``, ``query_timeout``, ``backoff``, ``max_body``):

    - ``mount_timeout`` and ``unmount_timeout`` here bound the whole call: discovery,
      activation, retries, every exchange and the mount-point check.

    - ``explicit_create``: refuse to mount a volume the plugin does not have, instead of
      creating it first (dvdcli's ``--explicitcreate``).
    - ``mount_id``: the ``ID`` for Mount/Unmount; default ``default_mount_id(...)``.
    - ``loop``: the event loop thread; default the shared ``driver_loop()``.

    ``api`` is the protocol client it calls through, for the other endpoints: run them
    on ``loop`` (``client.loop.submit(client.api.list(driver))``).
    """

    def __init__(
        self,
        *,
        socket_dir: str = PLUGIN_SOCKET_DIR,
        spec_dirs: Sequence[str] = PLUGIN_SPEC_DIRS,
        explicit_create: bool = False,
        mount_timeout: float = MOUNT_TIMEOUT,
        unmount_timeout: float = UNMOUNT_TIMEOUT,
        query_timeout: float = QUERY_TIMEOUT,
        backoff: Backoff | None = None,
        max_body: int = MAX_BODY,
        mount_id: str | None = None,
        loop: EventLoopThread | None = None,
    ) -> None:
        self.api = VolumePluginAPI(
            socket_dir=socket_dir,
            spec_dirs=spec_dirs,
            mount_timeout=mount_timeout,
            unmount_timeout=unmount_timeout,
            query_timeout=query_timeout,
            backoff=backoff,
            max_body=max_body,
        )
        self.explicit_create = explicit_create
        self.mount_id = (
            default_mount_id(socket_dir=socket_dir, spec_dirs=self.api.spec_dirs)
            if mount_id is None
            else mount_id
        )
        self.loop = loop if loop is not None else driver_loop()
        self._closed = False

    def mount(self, driver: str, name: str, options: Mapping[str, str]) -> Future[str]:
        """Get; Create with ``options`` if the plugin lacks the volume; Mount; the path.

        All within ``mount_timeout``. Fails with ``MountRefusedError`` when nothing can
        have been mounted, with another ``DriverError`` when the volume may be mounted.
        """
        steps = functools.partial(self._mount, driver, name, dict(options))
        return self._submit(self._within("mount", driver, name, self.api.mount_timeout, steps))

    def unmount(self, driver: str, name: str) -> Future[None]:
        """Unmount with this client's mount ID, within ``unmount_timeout``."""
        steps = functools.partial(self._unmount, driver, name)
        return self._submit(self._within("unmount", driver, name, self.api.unmount_timeout, steps))

    def path(self, driver: str, name: str) -> Future[str]:
        """``VolumeDriver.Path`` within ``query_timeout``: the mount point, ``""`` if none.

        A relative mount point is an error: nobody could bind-mount from it.
        """
        return self._submit(self._path(driver, name))

    def close(self) -> None:
        """Close every plugin connection; calls made afterwards fail. Idempotent.

        Blocks up to 5 s for the connections to close, unless called on ``loop`` itself.
        """
        if self._closed:
            return
        self._closed = True
        done = self.loop.submit(self.api.aclose())
        try:
            on_loop = asyncio.get_running_loop() is self.loop.loop
        except RuntimeError:
            on_loop = False
        if not on_loop:  # waiting on the loop's own thread would deadlock
            done.wait(5.0)

    # -- mount and unmount ------------------------------------------------------------------

    def _submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        if self._closed:
            coroutine.close()
            return Future.failed(ClientClosedError())
        return self.loop.submit(coroutine)

    async def _within(
        self,
        verb: str,
        driver: str,
        name: str,
        timeout: float,
        steps: Callable[[Deadline, _Progress], Awaitable[T]],
    ) -> T:
        """Run ``steps`` under one deadline, ``timeout`` from now; its expiry names the step."""
        deadline, progress = Deadline.after(timeout), _Progress(refusal=verb == "mount")
        try:
            async with asyncio.timeout_at(deadline.when):
                return await steps(deadline, progress)
        except TimeoutError:
            kind = MountRefusedError if progress.refusal else DriverError
            raise kind(
                f"Docker volume plugin {driver!r} did not {verb} volume {name!r} within "
                f"{timeout:g} s: still {progress.doing}"
            ) from None

    async def _mount(
        self,
        driver: str,
        name: str,
        options: Mapping[str, str],
        deadline: Deadline,
        progress: _Progress,
    ) -> str:
        try:  # nothing is asked to mount yet: any failure is a refusal
            await self.api.activate(driver)  # first: an Activate error is no absent volume
            progress.doing = "waiting for VolumeDriver.Get"
            why_missing = await self._missing(driver, name, deadline)
            if why_missing is not None:
                progress.doing = "waiting for VolumeDriver.Create"
                await self._create(driver, name, options, why_missing, deadline)
        except DriverError as error:
            raise _refused(error) from error
        progress.doing, progress.refusal = "waiting for VolumeDriver.Mount", False
        try:
            mountpoint = await self.api.mount(driver, name, self.mount_id, deadline=deadline)
        except (PluginCallError, PluginUnreachableError) as error:  # said no, or never sent
            raise _refused(error) from error
        progress.doing = f"checking mount point {mountpoint!r}"
        await self._check_mountpoint(driver, name, mountpoint)
        return mountpoint

    async def _create(
        self,
        driver: str,
        name: str,
        options: Mapping[str, str],
        why_missing: str,
        deadline: Deadline,
    ) -> None:
        """Create the missing volume, unless explicit create is on (dvdcli's rule).

        Get's error is how a plugin says "not yet": logged as the step it leads to, once.
        """
        if self.explicit_create:
            raise DriverError(
                f"Docker volume {name!r} of plugin {driver!r} does not exist and "
                f"explicit create is on, so it is not created ({why_missing})"
            )
        _log.info(
            "Creating Docker volume %r with plugin %r: it does not exist yet (%s)",
            name,
            driver,
            why_missing,
        )
        await self.api.create(driver, name, options, deadline=deadline)

    async def _unmount(
        self, driver: str, name: str, deadline: Deadline, progress: _Progress
    ) -> None:
        await self.api.activate(driver)
        progress.doing = "waiting for VolumeDriver.Unmount"
        await self.api.unmount(driver, name, self.mount_id, deadline=deadline)

    async def _path(self, driver: str, name: str) -> str:
        timeout = self.api.query_timeout
        deadline = Deadline.after(timeout)
        try:
            async with asyncio.timeout_at(deadline.when):
                await self.api.activate(driver)
                mountpoint = await self.api.path(driver, name, deadline=deadline)
        except TimeoutError:
            raise DriverError(
                f"Docker volume plugin {driver!r} did not answer VolumeDriver.Path for volume "
                f"{name!r} within {timeout:g} s"
            ) from None
        if mountpoint and not os.path.isabs(mountpoint):
            raise DriverError(
                f"Docker volume plugin {driver!r} returned a relative mount point "
                f"{mountpoint!r} for volume {name!r} from VolumeDriver.Path"
            )
        return mountpoint

    async def _missing(self, driver: str, name: str, deadline: Deadline) -> str | None:
        """Get, as Docker's volume store: why the volume is absent, or None if present.

        Any error the plugin reports means "absent": a plugin without Get (404) or one
        that says "no such volume" is then asked to Create, which plugins make
        idempotent. Failing to reach the plugin is an error.
        """
        try:
            await self.api.get(driver, name, deadline=deadline)
        except PluginCallError as error:
            return str(error)
        except NoSuchVolumeError:
            return "VolumeDriver.Get: no volume in the answer"
        return None

    async def _check_mountpoint(self, driver: str, name: str, mountpoint: str) -> None:
        """Refuse a mount point the isolator could not bind-mount from.

        The plugin keeps the volume mounted for our ID: no Unmount is sent, since Mesos
        may still use the volume under that same ID for other containers. The existence
        check runs on the API's bounded threads (a stat on a hung network mount blocks),
        shared with any other check of the same path in flight.
        """
        prefix = f"Docker volume plugin {driver!r} returned"
        if not mountpoint:
            raise DriverError(f"{prefix} an empty mount point for volume {name!r}")
        if not os.path.isabs(mountpoint):
            raise DriverError(f"{prefix} a relative mount point {mountpoint!r} for volume {name!r}")
        exists = await self.api.blocking.run(
            ("exists", mountpoint), functools.partial(path_exists, mountpoint)
        )
        if not exists:
            raise DriverError(
                f"{prefix} mount point {mountpoint!r} for volume {name!r}, which does not exist"
            )
