"""The exceptions the isolator raises or fails its futures with, and how OS errors read."""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "DriverError",
    "IsolatorError",
    "MountRefusedError",
    "strerror",
]


class IsolatorError(Exception):
    """A failure of the isolator; ``str(error)`` is Mesos's message, word for word."""


class CheckpointError(IsolatorError):
    """A checkpoint could not be written, read or parsed."""


class DriverError(IsolatorError):
    """A volume driver (dvdcli or a plugin) failed a mount or an unmount.

    After a failed mount the volume may or may not be mounted (a timeout, a connection
    lost after the request was sent): the isolator unmounts it when its last user goes.
    """


class MountRefusedError(DriverError):
    """The driver refused a mount before mounting anything (no such plugin, a refused
    ``Create`` or ``Mount``...): nothing is mounted, so nothing needs an unmount."""


def strerror(error: BaseException) -> str:
    """An error as Mesos prints an OS error: the C library's text, no ``[Errno N]``, no path.

    Anything else prints as its message, or its type's name when it has none.
    """
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
