"""The plugin's exceptions, kept apart so the store, the volumes and the server share them."""

from __future__ import annotations

__all__ = ["PluginError", "StateError", "VolumeError"]


class PluginError(Exception):
    """The plugin cannot start or serve (socket in use, unreadable state...)."""


class StateError(PluginError):
    """The state file cannot be read, parsed or written; the message names the file."""


class VolumeError(Exception):
    """A request the plugin refuses; ``str(error)`` is the ``Err`` that Docker shows."""
