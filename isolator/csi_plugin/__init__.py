"""A reference CSI node plugin: ``isolator-csi-plugin --endpoint unix:///PATH --root DIR``.

Identity and Node services (``csi.v1``) for directory-backed volumes (``DIR/<volume_id>``),
staged and published with real bind mounts, every call idempotent, its record of what it
did durable across restarts. It is what the CSI isolator's tests and the main job run
against, the way ``isolator.plugin`` is for Docker volumes.
"""

from __future__ import annotations

from .node import DirectoryNode
from .server import CsiPluginServer, socket_path

__all__ = ["CsiPluginServer", "DirectoryNode", "socket_path"]
