"""A reference Docker volume plugin (the server side) for the examples and end-to-end tests.

Directory-backed like MatchbookLab/local-persist, with idempotent Create, per-ID mount
counts and a durable JSON state, so the isolator can be exercised with nothing from outside.
It is safe to expose to tasks: mountpoints stay inside the allowed directories
(``mountpoints``) and every client is bounded in time, connections and threads (``Limits``).
"""

from __future__ import annotations

from .cli import main
from .endpoints import PluginCall
from .errors import PluginError, StateError, VolumeError
from .http_server import CONTENT_TYPE, Limits
from .server import VolumePlugin
from .state import VolumeRecord

__all__ = [
    "CONTENT_TYPE",
    "Limits",
    "PluginCall",
    "PluginError",
    "StateError",
    "VolumeError",
    "VolumePlugin",
    "VolumeRecord",
    "main",
]
