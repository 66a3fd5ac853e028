"""HTTP/1.1 over a unix socket on asyncio streams: the plugin transport's fast path.

On this machine one ``VolumeDriver.Get`` of the reference plugin takes about 2.1 ms through
httpx's async client and 0.5 ms through this (0.8 ms with sync httpx; measured in
``docs/performance.md``): httpx's async stack (httpcore, anyio) costs more per request
than the plugin's own work. A plugin on a unix socket needs little of HTTP: one POST at a
time per connection, an answer framed by ``Content-Length``, chunks or the connection's
end, keep-alive. What it sends is bounded as before: the head by ``MAX_HEAD`` bytes, the
body by the caller's ``max_body``, the whole exchange by the caller's timeout.

Failures raise httpx's exception types, so ``transport`` tells "not sent" from "maybe
sent" the same way for both paths: ``ConnectError``/``ConnectTimeout`` before a byte left,
``WriteError``, ``ReadError`` and ``RemoteProtocolError`` after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Final

import httpx

__all__ = ["MAX_HEAD", "BodyTooLargeError", "UnixHTTPPool"]

_log = logging.getLogger(__name__)

MAX_HEAD: Final = 64 * 1024
"""Bytes of an answer's status line and headers read at most (httpx/h11 allow 100 KiB)."""


class BodyTooLargeError(Exception):
    """The answer declares or sends more than ``max_body`` bytes; its connection is closed."""


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
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
        self._head = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode("latin-1")
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
            request = b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n" % (
                target.encode("ascii"),
                self._head,
                len(content),
            )
            try:
                connection.writer.write(request + content)
                await connection.writer.drain()
            except OSError as error:
                raise httpx.WriteError(str(error)) from None
            status, reason, body, keep = await _read_answer(connection.reader, max_body)
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
                reader, writer = await asyncio.open_unix_connection(
                    self.socket_path, limit=MAX_HEAD
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"connect timed out after {self._dial_timeout:g} s"
            ) from None
        except OSError as error:
            raise httpx.ConnectError(str(error)) from None
        return _Connection(reader, writer)


async def _read_answer(reader: asyncio.StreamReader, max_body: int) -> tuple[int, str, bytes, bool]:
    """One answer: status, reason, body, and whether the connection may be reused."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        what = "before an answer" if not error.partial else "in an answer's head"
        raise httpx.RemoteProtocolError(f"the server closed the connection {what}") from None
    except asyncio.LimitOverrunError:
        raise httpx.RemoteProtocolError(
            f"an answer's head is larger than {MAX_HEAD} bytes"
        ) from None
    except OSError as error:
        raise httpx.ReadError(str(error)) from None
    status, reason, headers = _parse_head(head)
    version_keeps = head.startswith(b"HTTP/1.1 ")
    connection = headers.get("connection", "").lower()
    keep = (version_keeps and "close" not in connection) or "keep-alive" in connection
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader, max_body)
    elif "content-length" in headers:
        declared = headers["content-length"]
        if not declared.isdigit():
            raise httpx.RemoteProtocolError(f"bad Content-Length {declared!r}")
        if int(declared) > max_body:
            raise BodyTooLargeError
        body = await _read_exactly(reader, int(declared))
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:  # framed by the connection's end
        body = await _read_to_end(reader, max_body)
        keep = False
    return status, reason, body, keep


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    lines = head[:-4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise httpx.RemoteProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise httpx.RemoteProtocolError(f"malformed header line {line[:80]!r}")
        key = name.lower()
        if key in headers and key in ("content-length", "transfer-encoding"):
            raise httpx.RemoteProtocolError(f"{name} given twice")
        headers[key] = value.strip()
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers


async def _read_exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise httpx.RemoteProtocolError("the server closed the connection in a body") from None
    except OSError as error:
        raise httpx.ReadError(str(error)) from None


async def _read_chunked(reader: asyncio.StreamReader, max_body: int) -> bytes:
    body = bytearray()
    while True:
        line = await _read_line(reader)
        size_text = line[:-2].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise httpx.RemoteProtocolError(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            while await _read_line(reader) != b"\r\n":  # trailers: skipped
                pass
            return bytes(body)
        if len(body) + size > max_body:
            raise BodyTooLargeError
        body += await _read_exactly(reader, size)
        if await _read_exactly(reader, 2) != b"\r\n":
            raise httpx.RemoteProtocolError("a chunk without its CRLF")


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise httpx.RemoteProtocolError("a malformed or unfinished chunked body") from None
    except OSError as error:
        raise httpx.ReadError(str(error)) from None


async def _read_to_end(reader: asyncio.StreamReader, max_body: int) -> bytes:
    body = bytearray()
    while True:
        try:
            chunk = await reader.read(65536)
        except OSError as error:
            raise httpx.ReadError(str(error)) from None
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > max_body:
            raise BodyTooLargeError
