"""Reading one HTTP/1.1 request from a stream with ``h11``, within fixed sizes.

``h11`` parses (request line, headers, Content-Length and chunked bodies, keep-alive,
``Expect: 100-continue``) and refuses what HTTP/1.1 forbids, e.g. a request without ``Host``
(Docker's Go client, httpx, ``http.client`` and curl all send one). What it does not bound,
this module does: a line is at most ``MAX_LINE`` bytes, a head ``MAX_HEAD`` bytes and
``MAX_HEADERS`` lines, a body ``MAX_BODY`` bytes, so a request costs at most about
``MAX_HEAD + READ_SIZE + MAX_BODY`` bytes; the caller bounds the time.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

import h11

__all__ = [
    "MAX_BODY",
    "MAX_HEAD",
    "MAX_HEADERS",
    "MAX_LINE",
    "READ_SIZE",
    "BadRequest",
    "PeerClosed",
    "Request",
    "read_request",
]

MAX_BODY = 1 << 20
"""Requests are a few hundred bytes; anything this large is not a Docker client."""
MAX_LINE = 8 << 10
"""A request or header line; Go's client writes lines of well under 200 bytes."""
MAX_HEADERS = 100
"""Header (and chunk trailer) lines, as ``http.client`` allows."""
MAX_HEAD = 64 << 10
"""What ``h11`` may buffer of a head (or chunk header, or trailer) not yet complete."""
READ_SIZE = 64 << 10
"""Bytes read from the socket at a time."""


class BadRequest(Exception):
    """The request cannot be read (HTTP 400, then the connection closes)."""


class PeerClosed(Exception):
    """The peer closed the connection before its request was whole."""


class Request(NamedTuple):
    """A request read whole: ``close`` says whether the connection ends after its answer."""

    verb: str
    target: str
    body: bytes
    close: bool


def new_connection() -> h11.Connection:
    """The server side of one connection, its unfinished heads capped at ``MAX_HEAD``."""
    return h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)


def _next_event(connection: h11.Connection) -> object:
    try:
        return connection.next_event()
    except h11.RemoteProtocolError as error:
        if "Receive buffer too long" in str(error):
            raise BadRequest(f"a head larger than {MAX_HEAD} bytes") from None
        # h11 appends what it refused (bytearray(b'...')): not echoed to a hostile peer.
        raise BadRequest(str(error).split(": bytearray(", 1)[0]) from None


def _check_head(event: h11.Request) -> None:
    """What ``h11`` lets through but a Docker client never sends."""
    if len(event.method) + len(event.target) + len(b"  HTTP/1.1") > MAX_LINE:
        raise BadRequest(f"a line longer than {MAX_LINE} bytes")
    if len(event.headers) > MAX_HEADERS:
        raise BadRequest(f"more than {MAX_HEADERS} header lines")
    for name, value in event.headers:
        if len(name) + len(b": ") + len(value) > MAX_LINE:
            raise BadRequest(f"a line longer than {MAX_LINE} bytes")
        if name == b"content-length" and int(value) > MAX_BODY:
            raise BadRequest("bad Content-Length")


async def _receive(connection: h11.Connection, reader: asyncio.StreamReader) -> None:
    data = await reader.read(READ_SIZE)
    if not data:
        raise PeerClosed
    connection.receive_data(data)


async def read_request(
    connection: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> Request:
    """The next request on ``connection``, fed from ``reader``; ``BadRequest`` if malformed
    or too large, ``PeerClosed`` if the peer closes in the middle.

    ``writer`` answers ``Expect: 100-continue`` (curl sends it for larger bodies).
    """
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = _next_event(connection)
        if event is h11.NEED_DATA:
            await _receive(connection, reader)
        elif isinstance(event, h11.Request):
            _check_head(event)
            head = event
            if connection.they_are_waiting_for_100_continue:
                writer.write(
                    connection.send(
                        h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
                    )
                )
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                raise BadRequest(f"a body larger than {MAX_BODY} bytes")
        elif isinstance(event, h11.EndOfMessage):
            if len(event.headers) > MAX_HEADERS:
                raise BadRequest(f"more than {MAX_HEADERS} header lines")
            assert head is not None
            return Request(
                head.method.decode("ascii"),
                head.target.decode("latin-1"),
                bytes(body),
                connection.their_state is h11.MUST_CLOSE,
            )
        elif isinstance(event, h11.ConnectionClosed):
            raise PeerClosed
