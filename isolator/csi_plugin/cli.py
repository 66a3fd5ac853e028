"""``isolator-csi-plugin``: serve the reference CSI node plugin until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
from collections.abc import Sequence

from isolator.common import logs
from isolator.version import version

from .node import DirectoryNode
from .server import CsiPluginServer

__all__ = ["DEFAULT_NAME", "main"]

DEFAULT_NAME = "isolator.csi.directory"
"""The plugin's name (``GetPluginInfo``), the ``type`` of its ``CSIPluginInfo``."""

_log = logging.getLogger("isolator.csi_plugin")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isolator-csi-plugin",
        description="A CSI node plugin (Identity + Node, csi.v1) for directory-backed "
        "volumes: volume V is the directory ROOT/V, staged and published with bind mounts.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("--endpoint", required=True, help="unix:///PATH (or PATH) to serve on")
    parser.add_argument("--root", required=True, help="directory holding the volumes")
    parser.add_argument(
        "--state", help="state file (default: ROOT/.csi-plugin/state.json; IDs never start '.')"
    )
    parser.add_argument(
        "--name", default=DEFAULT_NAME, help=f"plugin name (default {DEFAULT_NAME})"
    )
    parser.add_argument("--node-id", default=socket.gethostname(), help="NodeGetInfo's node_id")
    logs.add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    logs.configure(options.log_level, options.log_format)
    root = os.path.abspath(options.root)
    os.makedirs(root, exist_ok=True)
    state = options.state or os.path.join(root, ".csi-plugin", "state.json")
    node = DirectoryNode(root, name=options.name, node_id=options.node_id, state_path=state)
    try:
        server = CsiPluginServer(node, options.endpoint)
    except (OSError, ValueError, RuntimeError) as error:
        _log.error("Cannot serve on '%s': %s", options.endpoint, error)
        return 1
    stopping = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    _log.info("CSI plugin '%s' serving on %s (volumes in '%s')", options.name, server.path, root)
    stopping.wait()
    server.stop()
    return 0
