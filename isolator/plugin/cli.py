"""``isolator-volume-plugin``: run the reference volume plugin until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
from collections.abc import Callable, Sequence
from types import FrameType

from isolator.common import logs
from isolator.version import version

from .errors import PluginError
from .http_server import Limits
from .server import VolumePlugin
from .volumes import COUNT_MODES

__all__ = ["main"]

_log = logging.getLogger(__name__)


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
        return value

    return parse


_LIMIT_FLAGS: dict[str, tuple[Callable[[str], float], str, str]] = {
    "request_timeout": (float, "SECONDS", "drop a request not whole SECONDS after its first byte"),
    "idle_timeout": (float, "SECONDS", "close a kept-alive connection idle for SECONDS"),
    "max_connections": (int, "N", "connections open at most; at N the longest-waiting closes"),
    "max_workers": (int, "N", "threads running requests at most"),
}
"""A flag per ``Limits`` field (``--request-timeout`` for ``request_timeout``...)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isolator-volume-plugin",
        description="A directory-backed Docker volume plugin (legacy v1) on a unix socket.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("--socket", required=True, help="unix socket to serve on")
    parser.add_argument("--root", required=True, help="directory for volumes and state")
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="state directory, one file per volume (default: ROOT/state; a version 1 "
        "ROOT/state.json is imported into it once)",
    )
    parser.add_argument("--name", help="plugin name for logs (default: the socket's stem)")
    parser.add_argument(
        "--allow-mountpoint",
        action="append",
        default=[],
        metavar="DIR",
        help="also accept -o mountpoint=PATH strictly inside DIR (repeatable; without it "
        "only ROOT/volumes; never '/')",
    )
    counting = parser.add_argument_group("how Mounts and Unmounts are counted")
    counting.add_argument(
        "--count",
        choices=COUNT_MODES,
        default="calls",
        help="calls: every Mount adds one, every Unmount takes one, released at 0 (Docker's "
        "local driver); ids: a set of IDs, an Unmount releases its ID (default: %(default)s)",
    )
    counting.add_argument(
        "--refuse-duplicate-id",
        action="store_true",
        help="refuse a second Mount of a volume by an ID that has not unmounted it "
        "(as a loopback-device plugin)",
    )
    parser.add_argument(
        "--socket-group",
        metavar="GROUP",
        help="group (name or GID) given the socket; its mode is 0660 whatever the umask "
        "(default: the process's group)",
    )
    limits = parser.add_argument_group("limits on clients")
    for field in dataclasses.fields(Limits):
        kind, metavar, text = _LIMIT_FLAGS[field.name]
        limits.add_argument(
            "--" + field.name.replace("_", "-"),
            type=_positive(kind),
            default=getattr(Limits(), field.name),
            metavar=metavar,
            help=f"{text} (default: %(default)s)",
        )
    logs.add_arguments(parser)
    parser.add_argument(
        "-v",
        "--verbose",
        dest="log_level",
        action="store_const",
        const="DEBUG",
        help="the same as --log-level DEBUG: log every request",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; 0 on a clean stop, 1 if it cannot start, 2 on bad args.

    Once it serves it prints ``serving on SOCKET`` on stdout, its only output there.
    """
    args = _parser().parse_args(argv)  # exits 2 on bad arguments
    logs.configure(args.log_level, args.log_format)
    # The C-level handler writes each signal's number to the wakeup fd from whichever
    # thread the kernel picked; a Python handler runs only in the main thread, and not
    # while it blocks in a read, when the signal lands on another thread. The Python
    # handler does nothing: taking a lock there (Event.set, a log line) can deadlock.
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    previous_fd = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        pass

    # Installed before start() so an early signal still leads to a clean stop.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _serve(args, wake_read)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(previous_fd)
        os.close(wake_read)
        os.close(wake_write)


def _serve(args: argparse.Namespace, wake: int) -> int:
    """Start the plugin, wait for a byte on ``wake`` (a signal's number), stop it."""
    plugin = VolumePlugin(
        socket_path=args.socket,
        root=args.root,
        state_dir=args.state_dir,
        name=args.name,
        allowed_mountpoints=args.allow_mountpoint,
        limits=Limits(**{field: getattr(args, field) for field in _LIMIT_FLAGS}),
        count=args.count,
        refuse_duplicate_id=args.refuse_duplicate_id,
        socket_group=args.socket_group,
    )
    try:
        plugin.start()
    except (PluginError, OSError) as error:
        _log.error("cannot start the volume plugin: %s", error)
        return 1
    # The one line on stdout (logs go to stderr): what a script waits for before it calls.
    print(f"serving on {plugin.socket_path}", flush=True)
    try:
        signum = os.read(wake, 1)[0]
        _log.info("received %s, stopping", signal.Signals(signum).name)
    finally:
        plugin.stop()
    return 0
