"""The installed distribution's version: ``isolator.__version__`` and every ``--version``.

Loaded on first use only (``isolator.__getattr__``): reading package metadata costs
``isolator.launcher``, which runs once per task launch, more than the rest of its imports.
"""

from __future__ import annotations

from importlib import metadata
from typing import Final

__all__ = ["DISTRIBUTION", "UNKNOWN", "__version__", "version"]

DISTRIBUTION: Final = "docker-volume-isolator"
"""The name ``pip`` knows the package by."""

UNKNOWN: Final = "0+unknown"
"""The version of a source tree that is not installed (PEP 440: a local version of 0)."""


def version() -> str:
    """The installed version of the distribution, or ``UNKNOWN`` when it is not installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN


__version__: Final = version()
