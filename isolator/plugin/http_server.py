"""HTTP/1.1 on a listening unix socket, with a bound on everything a client can hold.

The stdlib's threading server kept a thread per connection for as long as the client
liked: 500 half-sent requests were 500 threads, forever (issue 9). Here one asyncio loop
reads every connection, so an open connection costs a descriptor and a small buffer, never
a thread; only complete requests reach the worker threads, at most ``max_workers``. The
HTTP itself is ``h11``'s (``http_request``); the bounds are ours.

Bounds, all in ``Limits``:

- a request must arrive whole within ``request_timeout`` of its first byte, and a kept-alive
  connection must start its next request within ``idle_timeout``; otherwise it is closed;
- at most ``max_connections`` are open; when one more arrives, the connection that has
  waited longest for a request (idle or half-sent) is closed to make room, so a flood of
  slow clients cannot lock out a healthy one; when every open connection has a request in
  progress, new ones wait in the listen backlog (SOMAXCONN);
- lines are at most ``MAX_LINE`` bytes, headers at most ``MAX_HEADERS`` lines and
  ``MAX_HEAD`` bytes, bodies ``MAX_BODY``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any, NamedTuple

import h11

from isolator.common.errors import strerror
from isolator.common.readable import readable

from .http_request import (
    MAX_LINE,
    READ_SIZE,
    BadRequest,
    PeerClosed,
    Request,
    new_connection,
    read_request,
)

__all__ = ["CONTENT_TYPE", "Handler", "HttpServer", "Limits", "Response", "json_response"]

CONTENT_TYPE = "application/vnd.docker.plugins.v1.1+json"

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Limits:
    """How much the plugin's clients may hold; each bound is checked on construction."""

    request_timeout: float = 15.0
    """Seconds from a request's first byte to its last (Docker's are a few hundred bytes)."""
    idle_timeout: float = 60.0
    """Seconds a kept-alive connection may wait for its next request; above the 30 s after
    which Docker's client and ours drop idle connections, so they close first."""
    max_connections: int = 64
    """Connections open at once (Docker keeps at most 6 idle per plugin)."""
    max_workers: int = 8
    """Threads running requests; they mostly queue on one lock and an fsync."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            kind = int if field.type in (int, "int") else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
                raise ValueError(f"Limits.{field.name} must be a positive number, not {value!r}")


class Response(NamedTuple):
    """What a handler answers: an HTTP status, a body and its type."""

    status: int
    body: bytes
    content_type: str = CONTENT_TYPE


def json_response(status: int, payload: Any) -> Response:
    """``payload`` as JSON with a trailing newline, as Go's ``json.Encoder`` writes it."""
    return Response(status, (json.dumps(payload) + "\n").encode())


Handler = Callable[[str, bytes], Response]
"""``(method, body) -> Response``; the method is the URL path without its ``/``."""


class _Connection:
    """One accepted socket and the task serving it."""

    __slots__ = ("client", "started", "task")

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.started = False  # set by the task's first step, before it wraps ``client``
        self.task: asyncio.Task[None] | None = None


class HttpServer:
    """Serves ``handler`` on a bound, listening socket from one loop thread.

    ``start`` returns once the loop runs; ``stop`` closes every connection and joins the
    loop and the workers (a request being handled is finished first). Not restartable.
    """

    def __init__(
        self, listener: socket.socket, handler: Handler, limits: Limits, name: str
    ) -> None:
        self._listener = listener
        self._handler = handler
        self._limits = limits
        self._name = name
        self._executor = ThreadPoolExecutor(
            limits.max_workers, thread_name_prefix=f"volume-plugin-{name}-worker"
        )
        self._thread = threading.Thread(target=self._run, name=f"volume-plugin-{name}", daemon=True)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._room: asyncio.Event | None = None
        self._connections: dict[_Connection, None] = {}
        self._waiting: dict[_Connection, None] = {}
        """Connections waiting for a request, the longest-waiting first."""

    def start(self) -> None:
        """Run the loop thread; return once it accepts connections."""
        self._thread.start()
        self._ready.wait()

    def stop(self) -> None:
        """Close the connections, end the loop, join the threads. Idempotent."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(stopping.set)
        if self._thread.is_alive():
            self._thread.join()
        self._executor.shutdown(wait=True)

    # -- the loop -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:
            _log.exception("volume plugin %s: the server loop failed", self._name)
        finally:
            self._ready.set()  # never leave start() waiting

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping, self._room = asyncio.Event(), asyncio.Event()
        self._listener.setblocking(False)
        accepting = asyncio.create_task(self._accept())
        self._ready.set()
        await self._stopping.wait()
        accepting.cancel()
        tasks: list[asyncio.Task[None]] = [accepting]
        for connection in list(self._connections):
            if connection.task is not None:
                connection.task.cancel()
                tasks.append(connection.task)
            if not connection.started:  # its task never ran: nobody else closes the socket
                connection.client.close()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _accept(self) -> None:
        room = self._room
        assert room is not None
        while True:
            await self._peer_waiting()
            if not self._make_room():
                room.clear()  # every connection is busy: leave new peers in the backlog
                await room.wait()
                continue
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                continue  # another wake-up took it
            except OSError as error:  # EMFILE, ENFILE, ENOBUFS: wait for a close, or a while
                _log.warning("volume plugin %s cannot accept: %s", self._name, strerror(error))
                room.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await room.wait()
                continue
            connection = _Connection(client)
            self._connections[connection] = None
            connection.task = asyncio.create_task(self._serve(connection))

    async def _peer_waiting(self) -> None:
        """Return once a connection waits in the listen backlog."""
        await readable(self._listener.fileno())

    def _make_room(self) -> bool:
        """Whether one more connection fits, closing the longest-waiting one if need be."""
        if len(self._connections) < self._limits.max_connections:
            return True
        oldest = next(iter(self._waiting), None)
        if oldest is None:
            return False
        _log.debug(
            "volume plugin %s: at %d connections, closing the longest-waiting one",
            self._name,
            len(self._connections),
        )
        self._forget(oldest)
        if oldest.task is not None:
            oldest.task.cancel()
        return True

    def _set_waiting(self, connection: _Connection, waiting: bool) -> None:
        self._waiting.pop(connection, None)
        if waiting and connection in self._connections:
            self._waiting[connection] = None  # to the back: it waits the shortest
            if self._room is not None:
                self._room.set()

    def _forget(self, connection: _Connection) -> None:
        self._waiting.pop(connection, None)
        if self._connections.pop(connection, 0) is None and self._room is not None:
            self._room.set()

    # -- one connection -------------------------------------------------------------------

    async def _serve(self, connection: _Connection) -> None:
        connection.started = True
        reader, writer = await asyncio.open_unix_connection(sock=connection.client, limit=MAX_LINE)
        try:
            await self._requests(connection, reader, writer)
        except (ConnectionError, PeerClosed):
            pass  # the peer went away
        except TimeoutError:
            _log.debug("volume plugin %s: dropping a connection that timed out", self._name)
            writer.transport.abort()
        except Exception:
            _log.exception("volume plugin %s: a connection failed", self._name)
        finally:
            self._forget(connection)
            writer.close()

    async def _requests(
        self, connection: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        limits = self._limits
        loop = asyncio.get_running_loop()
        http = new_connection()
        while True:
            self._set_waiting(connection, True)
            if not http.trailing_data[0]:  # nothing of the next request yet: idle
                try:
                    async with asyncio.timeout(limits.idle_timeout):
                        first = await reader.read(READ_SIZE)
                except TimeoutError:
                    _log.debug("volume plugin %s: closing an idle connection", self._name)
                    return
                if not first:
                    return
                http.receive_data(first)
            try:
                async with asyncio.timeout(limits.request_timeout):
                    request = await read_request(http, reader, writer)
            except BadRequest as error:
                refusal = json_response(400, {"Err": f"bad request: {error}"})
                await self._write(new_connection(), writer, refusal, close=True)
                return
            self._set_waiting(connection, False)
            response = await loop.run_in_executor(self._executor, self._answer, request)
            _log.debug(
                'volume plugin %s: "%s %s" %d',
                self._name,
                request.verb,
                request.target,
                response.status,
            )
            await self._write(http, writer, response, close=request.close)
            if request.close or http.our_state is not h11.DONE:
                return
            http.start_next_cycle()

    def _answer(self, request: Request) -> Response:
        """Run on a worker thread: the handler's answer, or a 405 or 500 of our own."""
        if request.verb != "POST":
            return Response(405, b"405 method not allowed\n", "text/plain; charset=utf-8")
        try:
            return self._handler(request.target.split("?", 1)[0].lstrip("/"), request.body)
        except Exception as error:
            _log.exception("volume plugin %s: %s failed", self._name, request.target)
            return json_response(500, {"Err": f"internal error: {error}"})

    async def _write(
        self,
        http: h11.Connection,
        writer: asyncio.StreamWriter,
        response: Response,
        *,
        close: bool,
    ) -> None:
        """Send ``response`` on ``http`` (a fresh connection for a refusal: ``h11`` lets a
        server answer before any request, which is what a 400 to a garbled one is)."""
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            *([("Connection", "close")] if close else []),
        ]
        reason = HTTPStatus(response.status).phrase.encode("ascii")
        data = http.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
        data = (data or b"") + (http.send(h11.Data(data=response.body)) or b"")
        writer.write(data + (http.send(h11.EndOfMessage()) or b""))
        async with asyncio.timeout(self._limits.request_timeout):
            await writer.drain()
