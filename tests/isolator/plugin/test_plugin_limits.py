"""The reference plugin bounds what its clients hold: time (half-sent and idle connections
are dropped), connections (the longest-waiting one makes room), threads (a fixed pool) and
bytes (lines, headers, bodies). Issue 9: 500 half-open connections were 500 threads."""

from __future__ import annotations

import select
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from isolator.plugin import Limits, VolumePlugin
from isolator.plugin.http_request import MAX_BODY
from tests.support.plugin_http import UnixConnection, ok, post
from tests.support.waits import WAIT

FLOOD = 500
NEVER = 3600.0
"""A timeout no test waits for: connections under it stay open for the whole test."""
SHORT = 0.2
"""A timeout the test waits for (each wait is bounded by WAIT, not by SHORT)."""


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="vpl-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start(workdir: Path, **limits: Any) -> VolumePlugin:
    return VolumePlugin(
        socket_path=workdir / "p.sock", root=workdir / "root", limits=Limits(**limits)
    ).start()


def connect(plugin: VolumePlugin, data: bytes = b"") -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(WAIT)
    sock.connect(plugin.socket_path)
    if data:
        sock.sendall(data)
    return sock


def closed_by_peer(sock: socket.socket, timeout: float = 0.0) -> bool:
    """Whether the plugin closed ``sock`` (EOF or reset) within ``timeout`` seconds,
    without having sent anything on it."""
    readable, _, _ = select.select([sock], [], [], timeout)
    if not readable:
        return False
    try:
        data = sock.recv(1)
    except ConnectionResetError:
        return True
    assert data == b"", f"the plugin answered a request it never got: {data!r}"
    return True


def worker_threads(plugin: VolumePlugin) -> list[str]:
    prefix = f"volume-plugin-{plugin.name}-worker"
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


# -- connections ----------------------------------------------------------------------------


def test_500_half_open_connections_hold_no_thread_and_lock_out_no_healthy_client(
    workdir: Path,
) -> None:
    before = threading.active_count()
    plugin = start(workdir, request_timeout=NEVER, idle_timeout=NEVER)
    limits = plugin.limits
    flood: list[socket.socket] = []
    try:
        for _ in range(FLOOD):
            flood.append(connect(plugin, b"POST /VolumeDriver.Li"))  # half a request line
        healthy = UnixConnection(plugin.socket_path)
        try:
            for _ in range(3):  # one kept-alive connection...
                assert post(healthy, "VolumeDriver.List", b"{}\n").status == 200
        finally:
            healthy.close()
        ok(plugin, "VolumeDriver.Create", {"Name": "v"})  # ...and fresh ones
        assert ok(plugin, "VolumeDriver.Get", {"Name": "v"})["Volume"]["Name"] == "v"

        assert threading.active_count() - before <= 1 + limits.max_workers
        # Room was made by closing the connections that had waited longest; the others
        # are still open (their request timeout is far away), and never got an answer.
        still_open = [sock for sock in flood if not closed_by_peer(sock)]
        assert 0 < len(still_open) <= limits.max_connections
        assert still_open == flood[-len(still_open) :]
    finally:
        for sock in flood:
            sock.close()
        plugin.stop()
    assert threading.active_count() == before


def test_half_open_connections_are_closed_after_the_request_timeout(workdir: Path) -> None:
    before = threading.active_count()
    plugin = start(workdir, request_timeout=SHORT, idle_timeout=NEVER)
    flood: list[socket.socket] = []
    try:
        for _ in range(FLOOD):
            flood.append(connect(plugin, b"POST /VolumeDriver.Li"))
            assert threading.active_count() - before <= 1 + plugin.limits.max_workers
        assert all(closed_by_peer(sock, WAIT) for sock in flood)
        assert ok(plugin, "Plugin.Activate") == {"Implements": ["VolumeDriver"]}
    finally:
        for sock in flood:
            sock.close()
        plugin.stop()


HEAD = b"POST /VolumeDriver.List HTTP/1.1\r\nHost: plugin.moby.localhost\r\n"


@pytest.mark.parametrize(
    "sent",
    [
        b"P",
        HEAD,
        HEAD + b"Content-Length: 3\r\n\r\n{",
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\n{}",
    ],
    ids=["request line", "headers", "body", "chunked body"],
)
def test_a_half_sent_request_is_dropped_after_the_request_timeout(
    workdir: Path, sent: bytes
) -> None:
    plugin = start(workdir, request_timeout=SHORT, idle_timeout=NEVER)
    try:
        with connect(plugin, sent) as sock:
            assert closed_by_peer(sock, WAIT)
        assert [call.method for call in plugin.calls] == []
    finally:
        plugin.stop()


def test_a_request_sent_a_byte_at_a_time_is_dropped_after_the_request_timeout(
    workdir: Path,
) -> None:
    # A whole deadline, not a timeout per read: a byte every 50 ms never completes this.
    request = HEAD + b"X-Padding: " + b"x" * 500 + b"\r\n\r\n"
    plugin = start(workdir, request_timeout=SHORT, idle_timeout=NEVER)
    try:
        with connect(plugin) as sock:
            sent = 0
            while not closed_by_peer(sock, 0.05):
                assert sent < len(request), "the plugin waited for the whole drip"
                try:
                    sock.sendall(request[sent : sent + 1])
                except (BrokenPipeError, ConnectionResetError):
                    break  # closed between the check and the send: dropped all the same
                sent += 1
        assert plugin.calls == []
    finally:
        plugin.stop()


def test_idle_connections_are_closed_after_the_idle_timeout(workdir: Path) -> None:
    plugin = start(workdir, request_timeout=NEVER, idle_timeout=SHORT)
    try:
        with connect(plugin) as silent:  # connects and never sends
            assert closed_by_peer(silent, WAIT)
        kept_alive = UnixConnection(plugin.socket_path)
        try:
            assert post(kept_alive, "Plugin.Activate", b"").status == 200
            assert kept_alive.sock is not None
            assert closed_by_peer(kept_alive.sock, WAIT)
        finally:
            kept_alive.close()
    finally:
        plugin.stop()


def test_at_the_limit_the_longest_waiting_connection_makes_room(workdir: Path) -> None:
    plugin = start(workdir, max_connections=2, request_timeout=NEVER, idle_timeout=NEVER)
    try:
        with connect(plugin) as first, connect(plugin) as second, connect(plugin) as third:
            assert closed_by_peer(first, WAIT)
            third.sendall(
                b"POST /Plugin.Activate HTTP/1.1\r\nHost: plugin.moby.localhost\r\n"
                b"Content-Length: 0\r\n\r\n"
            )
            assert third.recv(4096).startswith(b"HTTP/1.1 200 OK\r\n")
            assert not closed_by_peer(second)
    finally:
        plugin.stop()


def test_requests_run_on_a_bounded_pool_of_threads(workdir: Path) -> None:
    plugin = start(workdir, max_workers=2)
    seen: list[list[str]] = []
    failures: list[BaseException] = []
    barrier = threading.Barrier(20)

    def client(index: int) -> None:
        try:
            barrier.wait(timeout=WAIT)
            ok(plugin, "VolumeDriver.Create", {"Name": f"v{index}"})
            seen.append(worker_threads(plugin))
        except BaseException as error:  # reported below, from the test's own thread
            failures.append(error)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=WAIT)
    finally:
        plugin.stop()
    assert not failures
    workers = {name for names in seen for name in names}
    assert 0 < len(workers) <= 2, workers
    assert worker_threads(plugin) == []


# -- sizes and shapes -----------------------------------------------------------------------


def exchange(plugin: VolumePlugin, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection, read until the plugin closes it."""
    with connect(plugin, data) as sock:
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (HEAD + b"Content-Length: 1048577\r\n\r\n", "bad Content-Length"),
        (HEAD + b"Content-Length: -1\r\n\r\n", "bad Content-Length"),
        (
            HEAD + b"Transfer-Encoding: chunked\r\n\r\n100001\r\n" + b"x" * 0x100001,
            "a body larger than 1048576 bytes",
        ),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", "illegal chunk header"),
        (b"POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "Missing mandatory Host: header"),
        (HEAD + b"X: " + b"x" * 9000 + b"\r\n\r\n", "a line longer than 8192 bytes"),
        (HEAD + b"X: y\r\n" * 101 + b"\r\n", "more than 100 header lines"),
        (HEAD + b"X: " + b"x" * 70000, "a head larger than 65536 bytes"),
        (b"POST /VolumeDriver.List\r\n\r\n", "illegal request line"),
    ],
)
def test_oversized_or_malformed_requests_are_400_and_closed(
    workdir: Path, data: bytes, reason: str
) -> None:
    plugin = start(workdir)
    try:
        answer = exchange(plugin, data)
    finally:
        plugin.stop()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close\r\n" in answer
    assert answer.endswith(f'{{"Err": "bad request: {reason}"}}\n'.encode())
    assert plugin.calls == []


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_of_the_largest_size_is_read(workdir: Path, chunked: bool) -> None:
    prefix, suffix = b'{"Name": "v", "Opts": {}, "Padding": "', b'"}'
    body = prefix + b"x" * (MAX_BODY - len(prefix) - len(suffix)) + suffix
    if chunked:
        framing = b"Transfer-Encoding: chunked\r\n\r\n"
        framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:1000], body[1000:]))
        data = HEAD + framing + framed + b"0\r\n\r\n"
    else:
        data = HEAD + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
    plugin = start(workdir)
    try:
        with connect(plugin, data.replace(b"/VolumeDriver.List", b"/VolumeDriver.Create")) as sock:
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK\r\n")
        assert ok(plugin, "VolumeDriver.List", {})["Volumes"][0]["Name"] == "v"
    finally:
        plugin.stop()


def test_pipelined_requests_are_answered_in_order(workdir: Path) -> None:
    plugin = start(workdir)
    try:
        one = HEAD.replace(b"List", b"Capabilities") + b"Content-Length: 3\r\n\r\n{}\n"
        answer = exchange(plugin, one + HEAD + b"Connection: close\r\nContent-Length: 0\r\n\r\n")
    finally:
        plugin.stop()
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert answer.index(b'"Capabilities"') < answer.index(b'"Volumes"')
    assert [call.method for call in plugin.calls] == [
        "VolumeDriver.Capabilities",
        "VolumeDriver.List",
    ]


def test_expect_continue_and_other_verbs(workdir: Path) -> None:
    plugin = start(workdir)
    try:
        body = b"{}\n"
        answer = exchange(
            plugin,
            HEAD + b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: 3\r\n\r\n" + body,
        )
        assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
        answer = exchange(plugin, b"GET /VolumeDriver.List HTTP/1.0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    finally:
        plugin.stop()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("request_timeout", 0),
        ("idle_timeout", -1.0),
        ("max_connections", 0),
        ("max_workers", 1.5),
        ("max_workers", True),
    ],
)
def test_limits_are_checked_on_construction(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"^Limits\.{field} must be") as raised:
        Limits(**{field: value})  # type: ignore[arg-type]
    assert str(raised.value) == f"Limits.{field} must be a positive number, not {value!r}"
