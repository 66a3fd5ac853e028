"""Run asyncio coroutines on one shared event-loop thread and get ``actors.Future``s back.

Blocking I/O (subprocesses, HTTP) done as coroutines on one loop costs one thread in
all, however many calls are in flight, and a slow call never holds up another.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from actors.future import Future, Promise

__all__ = ["EventLoopThread"]

T = TypeVar("T")


class EventLoopThread:
    """An asyncio loop on a daemon thread, started on first use."""

    def __init__(self, *, name: str = "actors-event-loop") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                ready = threading.Event()
                loop = asyncio.new_event_loop()

                def _run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=_run, name=self._name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coroutine`` on the loop; discarding the future cancels it."""
        promise: Promise[T] = Promise()

        async def _unless_discarded() -> T:
            # asyncio cancels a task from another thread after the task's first step, so
            # without this check a coroutine discarded before it began would still run
            # up to its first await.
            if promise.future.has_discard():
                coroutine.close()
                raise asyncio.CancelledError
            return await coroutine

        task = asyncio.run_coroutine_threadsafe(_unless_discarded(), self.loop)

        def _done(done: concurrent.futures.Future[T]) -> None:
            if done.cancelled():
                promise.discard()
                return
            error = done.exception()
            if error is not None:
                promise.fail(error)
            else:
                promise.set(done.result())

        promise.future.on_discard(task.cancel)
        task.add_done_callback(_done)
        return promise.future

    def stop(self, *, timeout: float | None = 5.0) -> None:
        """Cancel what is running, stop the loop and join its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return

        async def _cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
