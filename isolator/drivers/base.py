"""The interface the isolator uses to reach the outside world (Mesos's ``DriverClient``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actors import Future

__all__ = ["DriverClient"]


class DriverClient(ABC):
    """Mounts and unmounts Docker volumes for the isolator.

    Contract: both calls return an ``actors.Future`` at once and never block the caller
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
        """Where volume ``name`` of ``driver`` is mounted now (``VolumeDriver.Path``); the
        empty string when it is not mounted.

        The isolator asks it only when a Mount's outcome is unknown (a timeout, or a volume
        read from a checkpoint after a restart), to reuse that mount instead of sending a
        second Mount. The default says nothing: a client without it makes the isolator send
        a Mount in that case, as Mesos does.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement path()")

    def close(self) -> None:  # noqa: B027 - optional hook, most clients hold nothing
        """Release what the client holds (connections, threads); the default holds nothing."""
