"""The interface the isolator uses to reach the outside world (Mesos's ``DriverClient``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from actors import Future
from isolator.common.errors import DriverError

__all__ = ["DriverClient"]


class DriverClient(ABC):
    """Mounts and unmounts Docker volumes for the isolator.

    Contract: every call returns an ``actors.Future`` at once and never block the caller
    (the isolator actor, which shares a few worker threads with every other actor). Wrap
    a blocking driver with ``actors.run_blocking(fn, ...)``: it runs the call on a bounded
    executor and returns its future.

    A client keeps no per-volume state, so subclasses (test doubles included)
    need not call ``__init__``, and the isolator alone decides when a volume is unmounted.
    """

    @abstractmethod
    def mount(self, driver: str, name: str, options: Mapping[str, str]) -> Future[str]:
        """Mount volume ``name`` of ``driver``; the future holds the host mount point.

        It fails with ``MountRefusedError`` when the driver cannot have mounted anything for
        this call (nothing to unmount), and with another ``DriverError`` when the volume may
        be mounted (a timeout, a connection lost after the request, a bad mount point).
        """

    @abstractmethod
    def unmount(self, driver: str, name: str) -> Future[None]:
        """Unmount volume ``name`` of ``driver``."""

    def path(self, driver: str, name: str) -> Future[str]:
        """Where ``driver`` has volume ``name`` mounted (``VolumeDriver.Path``): an absolute
        host path, or ``""`` when the driver says it is not mounted.

        It mounts nothing and counts nothing: the isolator asks it after a restart to
        find a volume it still holds without a second Mount. It fails with a
        ``DriverError`` when the driver cannot answer; the default, for clients that
        predate it, always does.
        """
        return Future.failed(DriverError(f"{type(self).__name__} cannot ask a volume's path"))

    def close(self) -> None:  # noqa: B027 - optional hook, most clients hold nothing
        """Release what the client holds (connections, threads); the default holds nothing."""
