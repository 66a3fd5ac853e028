"""``isolator-volume-plugin``: run the reference volume plugin until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .errors import PluginError
from .server import VolumePlugin

__all__ = ["main"]

_log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isolator-volume-plugin",
        description="A directory-backed Docker volume plugin (legacy v1) on a unix socket.",
    )
    parser.add_argument("--socket", required=True, help="unix socket to serve on")
    parser.add_argument("--root", required=True, help="directory for volumes and state")
    parser.add_argument("--state", help="state file (default: ROOT/state.json)")
    parser.add_argument("--name", help="plugin name for logs (default: the socket's stem)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; 0 on a clean stop, 1 if it cannot start, 2 on bad args."""
    args = _parser().parse_args(argv)  # exits 2 on bad arguments
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        _log.info("received %s, stopping", signal.Signals(signum).name)
        stopping.set()

    # Installed before start() so an early signal still leads to a clean stop.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        plugin = VolumePlugin(
            socket_path=args.socket, root=args.root, state_path=args.state, name=args.name
        )
        try:
            plugin.start()
        except (PluginError, OSError) as error:
            _log.error("cannot start the volume plugin: %s", error)
            return 1
        try:
            stopping.wait()
        finally:
            plugin.stop()
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
