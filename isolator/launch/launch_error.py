"""The launcher's one exception, in a module of its own so a light launcher can raise it."""

from __future__ import annotations

__all__ = ["LaunchError"]


class LaunchError(Exception):
    """The launch info cannot be applied; the command was not (and will not be) exec'd."""
