"""HTTP/1.1 over a unix socket, h11 on asyncio streams: the plugin transport's fast path.

httpx's async client costs more per request than the plugin's own work: on this machine one
``VolumeDriver.Get`` of the reference plugin takes about 2.1 ms through it and 0.7-0.9 ms
through this, less than sync httpx (figures in ``docs/performance.md``). Its cost is the
async framework it runs each request through (httpcore, anyio), not HTTP itself; so this
keeps asyncio's own streams on the driver loop, no framework per request, one coroutine per
call that ``asyncio.timeout`` cancels at the call's deadline (a sync client on a thread
could only time out per socket operation, and a hung plugin would hold the thread), and
leaves HTTP/1.1 to h11, the library httpx's own HTTP/1.1 is built on: the request written,
the answer framed by ``Content-Length``, chunks (extensions, trailers) or the connection's
end, and the connection reused only when h11 allows the next cycle.

What a plugin sends is bounded as before: the head by ``MAX_HEAD`` bytes (h11's
``max_incomplete_event_size``), the body by the caller's ``max_body``, the whole exchange by
the caller's timeout.

Failures raise httpx's exception types, so ``transport`` tells "not sent" from "maybe
sent" the same way for both paths: ``ConnectError``/``ConnectTimeout`` before a byte left,
``WriteError``, ``ReadError`` and ``RemoteProtocolError`` after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Final, cast

import h11
import httpx

__all__ = ["MAX_HEAD", "BodyTooLargeError", "UnixHTTPPool"]

_log = logging.getLogger(__name__)

MAX_HEAD: Final = 64 * 1024
"""Bytes of an answer's status line and headers read at most (httpx/h11 allow 100 KiB)."""

_READ_SIZE: Final = 64 * 1024
_HEAD_TOO_LARGE: Final = f"an answer's head is larger than {MAX_HEAD} bytes"


class BodyTooLargeError(Exception):
    """The answer declares or sends more than ``max_body`` bytes; its connection is closed."""


class _Connection:
    __slots__ = ("http", "idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.http = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self.idle_since = 0.0

    def close(self) -> None:
        self.writer.close()


class UnixHTTPPool:
    """Kept-alive connections to one unix socket; use it from one event loop.

    ``headers`` are sent with every request (``Host`` first). A call that fails or is
    cancelled (a timeout) closes its connection: only a whole exchange is ever reused.
    """

    def __init__(
        self,
        socket_path: str,
        *,
        headers: dict[str, str],
        max_idle: int,
        idle_timeout: float,
        dial_timeout: float,
    ) -> None:
        self.socket_path = socket_path
        self._host = headers.get("Host", "localhost")
        self._headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout
        self._dial_timeout = dial_timeout
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._closed = False

    async def post(self, target: str, content: bytes, *, max_body: int) -> tuple[int, str, bytes]:
        """POST ``content`` to ``target``; the status, reason and body."""
        if self._closed:
            raise RuntimeError("the connection pool is closed")
        connection = self._reusable() or await self._connect()
        self._busy.add(connection)
        keep = False
        try:
            await _send(connection, self._request(target, len(content)), content)
            status, reason, body = await _read_answer(connection, max_body)
            keep = _next_cycle(connection.http)
            if _log.isEnabledFor(logging.DEBUG):  # the line httpx logs for each request
                _log.debug(
                    'HTTP Request: POST http://%s%s "HTTP/1.1 %d %s"',
                    self._host,
                    target,
                    status,
                    reason,
                )
            return status, reason, body
        finally:
            self._busy.discard(connection)
            if keep and not self._closed and len(self._idle) < self._max_idle:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            else:
                connection.close()

    async def aclose(self) -> None:
        """Close every connection, those in use too (their calls then fail)."""
        self._closed = True
        connections = [*self._idle, *self._busy]
        self._idle.clear()
        for connection in connections:
            connection.close()
        for connection in connections:
            with contextlib.suppress(OSError):  # a broken connection: nothing left to do
                await connection.writer.wait_closed()

    def _request(self, target: str, length: int) -> h11.Request:
        return h11.Request(
            method=b"POST",
            target=target.encode("ascii"),
            headers=[*self._headers, (b"Content-Length", b"%d" % length)],
        )

    def _reusable(self) -> _Connection | None:
        """The most recently used idle connection the plugin has not closed, if any."""
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            fresh = now - connection.idle_since < self._idle_timeout
            if fresh and not connection.reader.at_eof() and not connection.writer.is_closing():
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self._dial_timeout):
                reader, writer = await asyncio.open_unix_connection(self.socket_path)
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"connect timed out after {self._dial_timeout:g} s"
            ) from None
        except OSError as error:
            raise httpx.ConnectError(str(error)) from None
        return _Connection(reader, writer)


async def _send(connection: _Connection, request: h11.Request, content: bytes) -> None:
    http = connection.http
    try:
        data = b"".join(
            http.send(event) or b""
            for event in (request, h11.Data(data=content), h11.EndOfMessage())
        )
    except h11.LocalProtocolError as error:  # a request h11 will not write: nothing sent
        raise httpx.LocalProtocolError(str(error)) from None
    try:
        connection.writer.write(data)
        await connection.writer.drain()
    except OSError as error:
        raise httpx.WriteError(str(error)) from None


async def _read_answer(connection: _Connection, max_body: int) -> tuple[int, str, bytes]:
    """One answer (informational ones skipped): status, reason, body."""
    response = await _read_head(connection)
    declared = _content_length(response)
    if declared is not None and declared > max_body:
        raise BodyTooLargeError
    body = bytearray()
    while True:
        event = _next_event(connection.http, answered=True)
        if event is h11.NEED_DATA:
            await _receive(connection, _READ_SIZE)
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > max_body:
                raise BodyTooLargeError
        elif isinstance(event, h11.EndOfMessage):
            return response.status_code, response.reason.decode("latin-1"), bytes(body)


async def _read_head(connection: _Connection) -> h11.Response:
    """The final answer's head; at most ``MAX_HEAD`` bytes are read for it."""
    fed = 0
    while True:
        event = _next_event(connection.http, answered=False)
        if isinstance(event, h11.Response):
            return event
        if event is h11.NEED_DATA:
            # h11 checks its buffer (``max_incomplete_event_size``) only while it lacks a
            # head, so a read as large as the cap could complete a head nearly twice its
            # size: read no further than the cap; reaching it with no head is the error.
            size = MAX_HEAD - fed
            if size <= 0:
                raise httpx.RemoteProtocolError(_HEAD_TOO_LARGE)
            fed += await _receive(connection, size)
        # else h11.InformationalResponse (1xx): the final answer follows


def _next_event(http: h11.Connection, *, answered: bool) -> h11.Event | type[h11.NEED_DATA]:
    try:
        event = http.next_event()
    except h11.RemoteProtocolError as error:
        raise httpx.RemoteProtocolError(_protocol_error(http, error, answered)) from None
    if event is h11.PAUSED:  # only once the answer is whole, which ends the reading
        raise httpx.RemoteProtocolError("h11 paused in an answer")
    return cast("h11.Event | type[h11.NEED_DATA]", event)  # mypy: no narrowing by `is`


async def _receive(connection: _Connection, size: int) -> int:
    """Read at most ``size`` bytes into h11 (none: the connection's end); how many."""
    try:
        data = await connection.reader.read(size)
    except OSError as error:
        raise httpx.ReadError(str(error)) from None
    connection.http.receive_data(data)
    return len(data)


def _content_length(response: h11.Response) -> int | None:
    for name, value in response.headers:
        if name == b"content-length":
            return int(value)  # h11 has checked it: digits, and the same if repeated
    return None


def _protocol_error(http: h11.Connection, error: h11.RemoteProtocolError, answered: bool) -> str:
    """h11's complaint, in this module's words where h11's are obscure."""
    if http.trailing_data[1]:  # the server closed the connection
        if not answered:  # h11 says "can't handle event type ConnectionClosed ..."
            return "the server closed the connection before a whole answer's head"
        return f"the server closed the connection in an answer's body ({error})"
    if "Receive buffer too long" in str(error):
        return _HEAD_TOO_LARGE
    return f"a malformed answer: {error}"


def _next_cycle(http: h11.Connection) -> bool:
    """Ready the connection for the next exchange, if both sides allow it."""
    if http.our_state is h11.DONE and http.their_state is h11.DONE:
        http.start_next_cycle()
        return True
    return False
