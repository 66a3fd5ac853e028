"""A reference Docker volume plugin (the server side) for the examples and end-to-end tests.

Directory-backed like MatchbookLab/local-persist, with idempotent Create, per-ID mount
counts and a durable JSON state, so the isolator can be exercised with nothing from outside.
"""

from __future__ import annotations

from .cli import main
from .errors import PluginError, StateError, VolumeError
from .server import CONTENT_TYPE, PluginCall, VolumePlugin
from .state import VolumeRecord

__all__ = [
    "CONTENT_TYPE",
    "PluginCall",
    "PluginError",
    "StateError",
    "VolumeError",
    "VolumePlugin",
    "VolumeRecord",
    "main",
]
