"""The exceptions the isolator raises or fails its futures with."""

from __future__ import annotations

__all__ = ["CheckpointError", "DriverError", "IsolatorError"]


class IsolatorError(Exception):
    """A failure of the isolator; ``str(error)`` is Mesos's message, word for word."""


class CheckpointError(IsolatorError):
    """A checkpoint could not be written, read or parsed."""


class DriverError(IsolatorError):
    """A volume driver (dvdcli or a plugin) failed a mount or an unmount."""
