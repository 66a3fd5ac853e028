"""The one event loop on which every driver client does its I/O."""

from __future__ import annotations

from actors import EventLoopThread

__all__ = ["driver_loop"]

_loop = EventLoopThread(name="isolator-driver-io")


def driver_loop() -> EventLoopThread:
    """The shared loop: all driver calls in flight cost this one thread."""
    return _loop
