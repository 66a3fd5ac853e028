"""Awaiting a file descriptor's readability on the running event loop, without a thread.

A pidfd is readable once its process has exited, a pipe once it has data or its writers are
gone: the process helpers of the drivers and of the Ray agent wait for both this one way.
"""

from __future__ import annotations

import asyncio

__all__ = ["readable"]


async def readable(fd: int) -> None:
    """Return once ``fd`` is readable; cancelling the wait stops watching ``fd``."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def _wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, _wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
