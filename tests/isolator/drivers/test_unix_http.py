"""``unix_http``, the plugin transport on a unix socket, against a raw server that answers
exactly the bytes a test gives: framings, keep-alive, and the bounds on what it reads."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from actors import EventLoopThread
from isolator.drivers.unix_http import MAX_HEAD, BodyTooLargeError, UnixHTTPPool
from tests.support.waits import WAIT


class ThenClose(bytes):
    """An answer after which the server closes the connection."""


Answer = Callable[[bytes], bytes | None]
"""The request's bytes -> the answer's bytes (``ThenClose``: and close); None: close
without answering."""


class RawServer:
    """A unix-socket server on ``loop``; each connection answers each request as told."""

    def __init__(self, loop: EventLoopThread, path: str, answer: Answer) -> None:
        self.connections = 0
        self.closed = threading.Semaphore(0)
        self.requests: list[bytes] = []
        self._answer = answer
        self._server = loop.submit(self._start(path)).get(WAIT)

    async def _start(self, path: str) -> asyncio.Server:
        return await asyncio.start_unix_server(self._serve, path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = self._answer(request)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if isinstance(answer, ThenClose):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the loop is stopping
        finally:
            writer.close()
            self.closed.release()


@pytest.fixture
def loop() -> Iterator[EventLoopThread]:
    thread = EventLoopThread(name="test-unix-http")
    yield thread
    thread.stop()


@pytest.fixture
def socket_path() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as directory:  # short: unix socket paths are capped
        yield str(Path(directory) / "p.sock")


def pool_for(path: str) -> UnixHTTPPool:
    return UnixHTTPPool(
        path, headers={"Host": "h", "Accept": "a"}, max_idle=2, idle_timeout=30, dial_timeout=1
    )


def post(loop: EventLoopThread, pool: UnixHTTPPool, max_body: int = 1000) -> tuple[int, str, bytes]:
    return loop.submit(pool.post("/X", b'{"Name":"v"}\n', max_body=max_body)).get(WAIT)


def failure(loop: EventLoopThread, pool: UnixHTTPPool, max_body: int = 1000) -> BaseException:
    future = loop.submit(pool.post("/X", b"{}", max_body=max_body))
    future.wait(WAIT)
    error = future.failure()
    assert error is not None, future
    return error


def fixed(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def test_a_request_carries_the_headers_and_the_answer_is_read_by_length(
    loop: EventLoopThread, socket_path: str
) -> None:
    server = RawServer(loop, socket_path, lambda _: fixed(b'{"Err":""}'))
    pool = pool_for(socket_path)
    assert post(loop, pool) == (200, "OK", b'{"Err":""}')
    assert server.requests == [
        b'POST /X HTTP/1.1\r\nHost: h\r\nAccept: a\r\nContent-Length: 13\r\n\r\n{"Name":"v"}\n'
    ]


def test_a_kept_alive_connection_is_reused_and_one_that_says_close_is_not(
    loop: EventLoopThread, socket_path: str
) -> None:
    answers = [fixed(b"1"), fixed(b"2", b"Connection: close\r\n"), fixed(b"3")]
    server = RawServer(loop, socket_path, lambda _: answers.pop(0))
    pool = pool_for(socket_path)
    assert [post(loop, pool)[2] for _ in range(3)] == [b"1", b"2", b"3"]
    assert server.connections == 2


def test_chunked_answers_with_extensions_and_trailers(
    loop: EventLoopThread, socket_path: str
) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"
    )
    server = RawServer(loop, socket_path, lambda _: chunked)
    pool = pool_for(socket_path)
    assert post(loop, pool)[2] == b"abcde"
    assert post(loop, pool)[2] == b"abcde"  # the trailer was read whole: the connection reused
    assert server.connections == 1


def test_an_answer_framed_by_the_connection_end(loop: EventLoopThread, socket_path: str) -> None:
    RawServer(loop, socket_path, lambda _: ThenClose(b"HTTP/1.0 500 Oops\r\n\r\n{}"))
    assert post(loop, pool_for(socket_path)) == (500, "Oops", b"{}")


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n",  # declared: refused unread
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n" + b"x" * 1001,
        ThenClose(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 1001),
    ],
)
def test_a_body_over_the_cap_is_refused(
    loop: EventLoopThread, socket_path: str, answer: bytes
) -> None:
    RawServer(loop, socket_path, lambda _: answer)
    assert isinstance(failure(loop, pool_for(socket_path)), BodyTooLargeError)


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (None, httpx.RemoteProtocolError),  # closed before any answer: maybe sent
        (ThenClose(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"), httpx.RemoteProtocolError),
        (b"SMTP 220 hello\r\n\r\n", httpx.RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", httpx.RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", httpx.RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * MAX_HEAD + b"\r\n\r\n", httpx.RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", httpx.RemoteProtocolError),
    ],
)
def test_broken_answers_are_protocol_errors(
    loop: EventLoopThread, socket_path: str, answer: bytes | None, kind: type[Exception]
) -> None:
    RawServer(loop, socket_path, lambda _: answer)
    assert isinstance(failure(loop, pool_for(socket_path)), kind)


def test_no_listener_is_a_connect_error(loop: EventLoopThread, socket_path: str) -> None:
    error = failure(loop, pool_for(socket_path))
    assert isinstance(error, httpx.ConnectError)
    assert "No such file or directory" in str(error)


def test_an_idle_connection_the_server_closed_is_not_reused(
    loop: EventLoopThread, socket_path: str
) -> None:
    answers = iter([ThenClose(fixed(b"1")), fixed(b"2")])  # no "Connection: close" said
    server = RawServer(loop, socket_path, lambda _: next(answers))
    pool = pool_for(socket_path)
    assert post(loop, pool)[2] == b"1"
    assert server.closed.acquire(timeout=WAIT)
    loop.submit(_ticks(3)).get(WAIT)  # the loop reads the end of the idle connection
    assert post(loop, pool)[2] == b"2"  # on a new connection, not a "maybe sent" failure
    assert server.connections == 2


async def _ticks(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def test_closing_the_pool_fails_later_posts_and_ends_one_in_flight(
    loop: EventLoopThread, socket_path: str
) -> None:
    RawServer(loop, socket_path, lambda _: b"")  # never answers
    pool = pool_for(socket_path)
    in_flight = loop.submit(pool.post("/X", b"{}", max_body=10))
    loop.submit(asyncio.sleep(0.05)).get(WAIT)
    loop.submit(pool.aclose()).get(WAIT)
    in_flight.wait(WAIT)
    assert isinstance(in_flight.failure(), httpx.RemoteProtocolError)
    assert isinstance(failure(loop, pool), RuntimeError)


def test_an_informational_answer_is_skipped(loop: EventLoopThread, socket_path: str) -> None:
    server = RawServer(loop, socket_path, lambda _: b"HTTP/1.1 100 Continue\r\n\r\n" + fixed(b"1"))
    pool = pool_for(socket_path)
    assert post(loop, pool) == (200, "OK", b"1")
    assert post(loop, pool) == (200, "OK", b"1")
    assert server.connections == 1


def test_a_head_within_the_cap_is_read_and_one_past_it_refused(
    loop: EventLoopThread, socket_path: str
) -> None:
    def head(size: int) -> bytes:  # a head of exactly ``size`` bytes, then a body
        start = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX: "
        return start + b"y" * (size - len(start) - 4) + b"\r\n\r\n" + b"1"

    answers = iter([head(MAX_HEAD), head(MAX_HEAD + 1)])
    RawServer(loop, socket_path, lambda _: next(answers))
    pool = pool_for(socket_path)
    assert post(loop, pool)[2] == b"1"
    error = failure(loop, pool)
    assert isinstance(error, httpx.RemoteProtocolError)
    assert f"larger than {MAX_HEAD} bytes" in str(error)
