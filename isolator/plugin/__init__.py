"""A reference Docker volume plugin (the server side) for the examples and end-to-end tests.

Directory-backed like MatchbookLab/local-persist, with idempotent Create, a mount count kept
as Docker's own ``local`` driver keeps it (or per ID, or refusing a duplicate ID: ``volumes``)
and a durable state of one JSON file per volume (``state``), so the isolator can be
exercised with nothing from outside, against each way real plugins count.
It is safe to expose to tasks: mountpoints stay inside the allowed directories
(``mountpoints``) and every client is bounded in time, connections and threads (``Limits``).
"""

from __future__ import annotations

from .cli import main
from .endpoints import PluginCall
from .errors import PluginError, StateError, VolumeError
from .http_server import CONTENT_TYPE, Limits
from .server import SOCKET_MODE, VolumePlugin
from .state import VolumeRecord
from .volumes import COUNT_MODES, CountMode

__all__ = [
    "CONTENT_TYPE",
    "COUNT_MODES",
    "SOCKET_MODE",
    "CountMode",
    "Limits",
    "PluginCall",
    "PluginError",
    "StateError",
    "VolumeError",
    "VolumePlugin",
    "VolumeRecord",
    "main",
]
