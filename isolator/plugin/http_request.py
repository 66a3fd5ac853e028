"""Reading one HTTP/1.1 request from a stream, within fixed sizes.

Only what Docker's Go client, httpx and ``http.client`` send: a request line, headers, and
a body framed by Content-Length or chunked. Every size is capped, so a request costs at
most about ``MAX_HEADERS * MAX_LINE + MAX_BODY`` bytes; the caller bounds the time.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

__all__ = ["MAX_BODY", "MAX_HEADERS", "MAX_LINE", "BadRequest", "Request", "read_request"]

MAX_BODY = 1 << 20
"""Requests are a few hundred bytes; anything this large is not a Docker client."""
MAX_LINE = 8 << 10
"""A request or header line; Go's client writes lines of well under 200 bytes."""
MAX_HEADERS = 100
"""Header (and chunk trailer) lines, as ``http.client`` allows."""


class BadRequest(Exception):
    """The request cannot be read (HTTP 400, then the connection closes)."""


class Request(NamedTuple):
    """A request read whole: ``close`` says whether the connection ends after its answer."""

    verb: str
    target: str
    body: bytes
    close: bool


async def _line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise BadRequest(f"a line longer than {MAX_LINE} bytes") from None


async def _headers(reader: asyncio.StreamReader) -> dict[str, str]:
    """Header lines up to the empty one, by lowercase name (a repeated name: the last)."""
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = await _line(reader)
        if line in (b"\r\n", b"\n"):
            return headers
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip():
            raise BadRequest("bad header line")
        headers[name.lower()] = value.strip()
    raise BadRequest(f"more than {MAX_HEADERS} header lines")


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        try:
            size = int((await _line(reader)).split(b";", 1)[0], 16)
        except ValueError:
            raise BadRequest("bad chunk size") from None
        total += size
        if size < 0 or total > MAX_BODY:
            raise BadRequest("bad chunk size")
        if size == 0:
            await _headers(reader)  # trailers, ignored
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await _line(reader)  # the CRLF after the chunk


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _chunked(reader)
    length = headers.get("content-length")
    if length is None:
        return b""
    if not (length.isascii() and length.isdigit()) or int(length) > MAX_BODY:
        raise BadRequest("bad Content-Length")
    return await reader.readexactly(int(length))


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes
) -> Request:
    """The request whose first byte was ``first``; ``BadRequest`` if malformed,
    ``asyncio.IncompleteReadError`` if the peer closes in the middle.

    ``writer`` answers ``Expect: 100-continue`` (curl sends it for larger bodies).
    """
    words = (first + await _line(reader)).decode("latin-1").split()
    if len(words) != 3 or words[2] not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest("bad request line")
    verb, target, version = words
    headers = await _headers(reader)
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = await _body(reader, headers)
    connection = headers.get("connection", "").lower()
    close = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
    return Request(verb, target, body, close)
