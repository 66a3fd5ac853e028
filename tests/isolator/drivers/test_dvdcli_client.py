"""``DvdcliClient`` against real processes: fake ``dvdcli`` scripts written per test."""

from __future__ import annotations

import errno
import logging
import os
import select
import signal
import stat
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors import EventLoopThread, Future
from isolator.common.errors import DriverError, MountRefusedError
from isolator.config import duration
from isolator.config.duration import format_duration
from isolator.drivers import dvdcli, process
from isolator.drivers.dvdcli import DvdcliClient
from tests.support.waits import WAIT

MEMORY_BOUND = 16 << 20
"""Bytes the client may allocate at its peak while stopping a flood (the cap is 1 MiB a
stream; without it the buffer grows as long as the flood lasts)."""


@pytest.fixture
def loop() -> Iterator[EventLoopThread]:
    """A private driver loop; stopping it cancels (and so kills) anything left running."""
    thread = EventLoopThread(name="test-dvdcli-loop")
    yield thread
    thread.stop()


def _script(tmp_path: Path, body: str, name: str = "dvdcli") -> str:
    """An executable fake dvdcli; ``$DIR`` in ``body`` is the test's tmp_path."""
    path = tmp_path / name
    path.write_text(f"#!/bin/bash\nDIR={str(tmp_path)!r}\n{body}\n")
    path.chmod(0o755)
    return str(path)


def _recorded_argv(tmp_path: Path) -> list[str]:
    return (tmp_path / "argv").read_bytes().decode().split("\0")[:-1]


RECORD_ARGV = 'printf "%s\\0" "$@" > "$DIR/argv"'


def _failure(future: Future[Any]) -> str:
    with pytest.raises(DriverError) as caught:
        future.get(timeout=WAIT)
    return str(caught.value)


def _wait_dead(pid: int, timeout: float = WAIT) -> bool:
    """Wait for ``pid`` to exit, on a pidfd (it becomes readable when the process ends)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True  # already gone
    try:
        readable, _, _ = select.select([pidfd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(pidfd)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie is dead (its reaper, not us, must collect it)."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            state = stat_file.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


class _LineChannel:
    """A FIFO the test holds open at both ends: writers never block, reads have a timeout."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)

    def read_lines(self, count: int, timeout: float = WAIT) -> list[bytes]:
        data = b""
        deadline = time.monotonic() + timeout
        while data.count(b"\n") < count:
            readable, _, _ = select.select([self._fd], [], [], deadline - time.monotonic())
            assert readable, f"fewer than {count} lines in {timeout} s"
            data += os.read(self._fd, 4096)
        return data.splitlines()

    def write_lines(self, count: int) -> None:
        os.write(self._fd, b"\n" * count)

    def close(self) -> None:
        os.close(self._fd)


class _PidChannel(_LineChannel):
    """A FIFO the fake dvdcli writes a pid into; the test reads it with a timeout."""

    def read(self, timeout: float = WAIT) -> int:
        [line] = self.read_lines(1, timeout)
        self.close()
        return int(line)


# -- format_duration: stout's own OutputFormat test plus the two Mesos timeouts ----------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (120, "2mins"),
        (600, "10mins"),
        (0.5, "500ms"),
        (0.3, "300ms"),
        (1, "1secs"),
        (1.5, "1500ms"),  # a whole number one unit down wins over "1.5secs"
        (90, "90secs"),  # ... and over "1.5mins"
        (3.14159265358979, "3.141592653secs"),  # truncated to whole nanoseconds
        (3.14, "3140ms"),
        (36000, "10hrs"),
        (-36000, "-10hrs"),
        (10 * 86400, "10days"),
        (86400 + 4 * 3600 + 30 * 60, "1.1875days"),
        (14 * 86400, "2weeks"),
        (0, "0ns"),
        (1e-9, "1ns"),
        (2e-9, "2ns"),
        (1e-6, "1us"),
        (2.5e-6, "2500ns"),
        (1.5e-3, "1500us"),
    ],
)
def test_format_duration_matches_stout(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_duration_bounds() -> None:
    assert duration._format_nanos(2**63 - 1) == "15250.2844524715weeks"
    assert duration._format_nanos(-(2**63)) == "-15250.2844524715weeks"
    for seconds in (10 * 1e9, -10 * 1e9, float("nan")):
        with pytest.raises(ValueError, match="out of the range"):
            format_duration(seconds)


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (3 << 8, "exited with status 3"),
        (signal.SIGKILL, "terminated with signal Killed"),
        (signal.SIGABRT | 0x80, "terminated with signal Aborted (core dumped)"),
        (0x7F | (signal.SIGSTOP << 8), "stopped on signal Stopped (signal)"),
    ],
)
def test_wstringify(status: int, text: str) -> None:
    assert dvdcli._wstringify(status) == text


# -- argv, stdin, stdout ---------------------------------------------------------------------


def test_mount_runs_mesos_argv_and_returns_raw_stdout(
    tmp_path: Path, loop: EventLoopThread
) -> None:
    path = _script(tmp_path, f"{RECORD_ARGV}\nprintf '  /var/lib/rexray/vol1\\n'")
    client = DvdcliClient(path, loop=loop)

    assert client.mount("rexray", "vol1", {}).get(timeout=WAIT) == "  /var/lib/rexray/vol1\n"
    assert _recorded_argv(tmp_path) == ["mount", "--volumedriver=rexray", "--volumename=vol1"]


def test_mount_passes_one_volumeopts_argument_per_option(
    tmp_path: Path, loop: EventLoopThread
) -> None:
    path = _script(tmp_path, f"{RECORD_ARGV}\necho /mnt")
    options = {"size": "5", "label": "a b=c", "empty": ""}

    DvdcliClient(path, loop=loop).mount("d", "n", options).get(timeout=WAIT)

    assert _recorded_argv(tmp_path)[3:] == [
        "--volumeopts=size=5",
        "--volumeopts=label=a b=c",
        "--volumeopts=empty=",
    ]


def test_unmount_runs_mesos_argv(tmp_path: Path, loop: EventLoopThread) -> None:
    path = _script(tmp_path, RECORD_ARGV)

    assert DvdcliClient(path, loop=loop).unmount("rexray", "vol1").get(timeout=WAIT) is None
    assert _recorded_argv(tmp_path) == ["unmount", "--volumedriver=rexray", "--volumename=vol1"]


@pytest.mark.parametrize(
    ("printed", "answer"),
    [("/var/lib/rexray/vol1\\n", "/var/lib/rexray/vol1"), ("", ""), (" /a b \\n\\n", " /a b \n")],
    ids=["mounted", "not-mounted", "only-the-last-newline-goes"],
)
def test_path_runs_dvdcli_path_and_drops_its_newline(
    tmp_path: Path, loop: EventLoopThread, printed: str, answer: str
) -> None:
    path = _script(tmp_path, f"{RECORD_ARGV}\nprintf '{printed}'")

    assert DvdcliClient(path, loop=loop).path("rexray", "vol1").get(timeout=WAIT) == answer
    assert _recorded_argv(tmp_path) == ["path", "--volumedriver=rexray", "--volumename=vol1"]


def test_path_fails_with_dvdclis_stderr_and_at_the_unmount_timeout(
    tmp_path: Path, loop: EventLoopThread
) -> None:
    failing = _script(tmp_path, "echo 'no such volume' >&2\nexit 1", name="failing")
    error = _failure(DvdcliClient(failing, loop=loop).path("d", "n"))
    assert error == "Unexpected termination of the subprocess: no such volume\n"
    hung = _script(tmp_path, "exec sleep 30", name="hung")
    error = _failure(DvdcliClient(hung, unmount_timeout=0.3, loop=loop).path("d", "n"))
    assert error == "'path' timed out in 300ms"


def test_unmount_drains_stdout_so_a_chatty_dvdcli_cannot_block(
    tmp_path: Path, loop: EventLoopThread
) -> None:
    # 4 MiB is far more than a pipe holds: unread, the write would block until the timeout.
    path = _script(tmp_path, "head -c 4194304 /dev/zero")
    client = DvdcliClient(path, unmount_timeout=WAIT, loop=loop)

    assert client.unmount("d", "n").get(timeout=WAIT) is None


def test_stdin_is_dev_null(tmp_path: Path, loop: EventLoopThread) -> None:
    path = _script(
        tmp_path,
        'readlink /proc/$$/fd/0\nif read -r line; then echo "line:$line"; else echo EOF; fi',
    )

    out = DvdcliClient(path, loop=loop).mount("d", "n", {}).get(timeout=WAIT)

    assert out == "/dev/null\nEOF\n"


def test_the_call_is_logged_with_mesos_command_string(
    tmp_path: Path, loop: EventLoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    path = _script(tmp_path, "echo /mnt")
    caplog.set_level(logging.INFO, logger="isolator.drivers.dvdcli")

    DvdcliClient(path, loop=loop).mount("d", "n", {"k": "v"}).get(timeout=WAIT)

    assert (
        f"Invoking Docker Volume Driver 'mount' command "
        f"'{path}, {path}, mount, --volumedriver=d, --volumename=n, --volumeopts=k=v'"
    ) in caplog.messages


def test_default_loop_is_the_shared_driver_loop(tmp_path: Path) -> None:
    path = _script(tmp_path, "echo /mnt")
    assert DvdcliClient(path).mount("d", "n", {}).get(timeout=WAIT) == "/mnt\n"


def test_works_without_pidfd(
    tmp_path: Path, loop: EventLoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "_open_pidfd", lambda pid: None)
    ok = _script(tmp_path, "echo /mnt", name="ok")
    bad = _script(tmp_path, "echo no >&2; exit 1", name="bad")

    assert DvdcliClient(ok, loop=loop).mount("d", "n", {}).get(timeout=WAIT) == "/mnt\n"
    assert _failure(DvdcliClient(bad, loop=loop).unmount("d", "n")) == (
        "Unexpected termination of the subprocess: no\n"
    )


# -- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("echo /mnt; echo 'volume not found' >&2; exit 3", "volume not found\n"),
        ("exit 1", ""),
        ("printf 'dying' >&2; kill -KILL $$", "dying"),  # a signal still reports stderr
        ("kill -TERM $$", ""),
    ],
)
@pytest.mark.parametrize("operation", ["mount", "unmount"])
def test_abnormal_exit_reports_stderr_untrimmed(
    tmp_path: Path, loop: EventLoopThread, operation: str, body: str, text: str
) -> None:
    client = DvdcliClient(_script(tmp_path, body), loop=loop)
    future = client.mount("d", "n", {}) if operation == "mount" else client.unmount("d", "n")

    assert _failure(future) == f"Unexpected termination of the subprocess: {text}"


def _failing_reads(monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    """Make reading the child's ``what`` pipe fail with EIO."""
    real = process._PipeReader._on_readable

    def _on_readable(self: process._PipeReader) -> None:
        if self.what != what:
            real(self)
            return
        self._stop()
        if not self.done.done():
            self.done.set_exception(OSError(errno.EIO, os.strerror(errno.EIO)))

    monkeypatch.setattr(process._PipeReader, "_on_readable", _on_readable)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("exit 3", "exited with status 3"),
        ("kill -TERM $$", "terminated with signal Terminated"),
    ],
)
def test_unreadable_stderr_reports_the_wait_status(
    tmp_path: Path, loop: EventLoopThread, monkeypatch: pytest.MonkeyPatch, body: str, text: str
) -> None:
    _failing_reads(monkeypatch, "stderr")
    client = DvdcliClient(_script(tmp_path, f"echo oops >&2; {body}"), loop=loop)

    assert _failure(client.mount("d", "n", {})) == (
        f"Unexpected termination of the subprocess: {text}"
    )


def test_unreadable_stdout_fails_mount(
    tmp_path: Path, loop: EventLoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    _failing_reads(monkeypatch, "stdout")
    client = DvdcliClient(_script(tmp_path, "echo /mnt"), loop=loop)

    assert _failure(client.mount("d", "n", {})) == (
        "Failed to read stdout from the subprocess: Input/output error"
    )
    # unmount never looks at stdout
    assert client.unmount("d", "n").get(timeout=WAIT) is None


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        ("not executable", "Permission denied"),
        ("missing", "No such file or directory"),
    ],
)
def test_spawn_failure(tmp_path: Path, loop: EventLoopThread, make: str, reason: str) -> None:
    path = tmp_path / "dvdcli"
    if make == "not executable":
        path.write_text("#!/bin/bash\necho /mnt\n")
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    client = DvdcliClient(str(path), loop=loop)

    assert _failure(client.mount("d", "n", {"k": "v"})) == (
        f"Failed to execute '{path}, {path}, mount, --volumedriver=d, --volumename=n, "
        f"--volumeopts=k=v': {reason}"
    )
    assert _failure(client.unmount("d", "n")) == (
        f"Failed to execute '{path}, {path}, unmount, --volumedriver=d, --volumename=n': {reason}"
    )


def test_a_mount_that_dvdcli_may_have_done_is_no_refusal(
    tmp_path: Path, loop: EventLoopThread
) -> None:
    # dvdcli ran, and may have mounted before it failed: only a spawn failure is a refusal.
    client = DvdcliClient(_script(tmp_path, "echo /mnt; exit 1"), loop=loop)
    with pytest.raises(DriverError) as caught:
        client.mount("d", "n", {}).get(timeout=WAIT)
    assert not isinstance(caught.value, MountRefusedError)


def test_a_mount_dvdcli_could_not_even_start_is_a_refusal(
    tmp_path: Path, loop: EventLoopThread
) -> None:
    client = DvdcliClient(str(tmp_path / "missing"), loop=loop)
    with pytest.raises(MountRefusedError, match=r"^Failed to execute "):
        client.mount("d", "n", {}).get(timeout=WAIT)
    with pytest.raises(DriverError) as caught:  # an unmount is never a refused mount
        client.unmount("d", "n").get(timeout=WAIT)
    assert not isinstance(caught.value, MountRefusedError)


# -- output is bounded -------------------------------------------------------------------------

FLOOD = 'yes "$1" {redirect} &\necho $! > "$DIR/grandchild"\necho $$ > "$DIR/child"\nwait'
"""A dvdcli whose child floods a stream forever; it records both pids."""


@pytest.mark.parametrize(
    ("operation", "stream", "redirect"),
    [("mount", "stdout", ""), ("mount", "stderr", ">&2"), ("unmount", "stderr", ">&2")],
)
def test_a_flooding_dvdcli_is_killed_at_the_output_limit(
    tmp_path: Path, loop: EventLoopThread, operation: str, stream: str, redirect: str
) -> None:
    path = _script(tmp_path, FLOOD.format(redirect=redirect))
    child_pid = _PidChannel(tmp_path / "child")
    grandchild_pid = _PidChannel(tmp_path / "grandchild")
    client = DvdcliClient(path, loop=loop)
    tracemalloc.start()
    try:
        future = client.mount("d", "n", {}) if operation == "mount" else client.unmount("d", "n")
        text = _failure(future)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert text == (
        f"'{operation}' wrote more than {process.MAX_OUTPUT} bytes to {stream}, "
        "so its process group was killed"
    )
    assert peak < MEMORY_BOUND, f"peak {peak} bytes"
    child, grandchild = child_pid.read(), grandchild_pid.read()
    assert not os.path.exists(f"/proc/{child}"), "the child must be killed and reaped"
    assert _wait_dead(grandchild), "the flooding grandchild must be killed"


def test_the_output_limit_is_a_keyword(tmp_path: Path, loop: EventLoopThread) -> None:
    at_limit = _script(tmp_path, "printf /123456789", name="ten")
    over = _script(tmp_path, "printf /1234567890", name="eleven")
    mounted = DvdcliClient(at_limit, max_output=10, loop=loop).mount("d", "n", {})
    assert mounted.get(timeout=WAIT) == "/123456789"
    flooded = DvdcliClient(over, max_output=10, loop=loop).mount("d", "n", {})
    assert _failure(flooded) == (
        "'mount' wrote more than 10 bytes to stdout, so its process group was killed"
    )


# -- timeouts and discards ---------------------------------------------------------------------


def test_mount_timeout_kills_the_whole_process_group(tmp_path: Path, loop: EventLoopThread) -> None:
    # The grandchild keeps stdout and stderr open, so waiting for EOF alone would hang too.
    path = _script(
        tmp_path,
        'sleep 30 &\necho $! > "$DIR/grandchild"\necho $$ > "$DIR/child"\nwait',
    )
    client = DvdcliClient(path, mount_timeout=0.5, loop=loop)
    child_pid = _PidChannel(tmp_path / "child")
    grandchild_pid = _PidChannel(tmp_path / "grandchild")

    started = time.monotonic()
    assert _failure(client.mount("d", "n", {})) == "'mount' timed out in 500ms"
    assert time.monotonic() - started >= 0.5  # not before its time; WAIT bounds the rest

    child, grandchild = child_pid.read(), grandchild_pid.read()
    assert not os.path.exists(f"/proc/{child}"), "the child must be killed and reaped"
    assert _wait_dead(grandchild), "the grandchild must be killed"


def test_unmount_timeout(tmp_path: Path, loop: EventLoopThread) -> None:
    path = _script(tmp_path, 'echo $$ > "$DIR/child"\nexec sleep 30')
    client = DvdcliClient(path, unmount_timeout=0.3, loop=loop)
    child = _PidChannel(tmp_path / "child")

    assert _failure(client.unmount("d", "n")) == "'unmount' timed out in 300ms"
    assert not os.path.exists(f"/proc/{child.read()}")


def test_discard_kills_the_process_group(tmp_path: Path, loop: EventLoopThread) -> None:
    path = _script(
        tmp_path,
        'sleep 30 &\necho $! > "$DIR/grandchild"\necho $$ > "$DIR/child"\nwait',
    )
    child_pid = _PidChannel(tmp_path / "child")
    grandchild_pid = _PidChannel(tmp_path / "grandchild")
    future = DvdcliClient(path, loop=loop).mount("d", "n", {})
    grandchild, child = grandchild_pid.read(), child_pid.read()
    assert _alive(child)

    future.discard()

    assert future.wait(timeout=WAIT)
    assert future.is_discarded()
    assert _wait_dead(child), "child killed"
    assert _wait_dead(grandchild), "grandchild killed"


def test_many_mounts_run_concurrently_without_a_thread_each(
    tmp_path: Path, loop: EventLoopThread
) -> None:
    # Each child says it started, then waits for a line on "go": only if all 20 run at
    # once does the test see 20 starts before it lets any of them finish.
    started = _LineChannel(tmp_path / "started")
    go = _LineChannel(tmp_path / "go")
    path = _script(
        tmp_path,
        'echo "$$" > "$DIR/started"\nread -r _ < "$DIR/go"\necho "/mnt/${3#--volumename=}"',
    )
    client = DvdcliClient(path, loop=loop)
    _ = loop.loop  # start the loop's one thread before counting
    before = threading.active_count()

    futures = [client.mount("d", f"vol{i}", {}) for i in range(20)]
    during = threading.active_count()
    assert len(started.read_lines(20)) == 20, "the 20 calls did not all run at once"
    assert all(f.is_pending() for f in futures)
    go.write_lines(20)
    results = [f.get(timeout=WAIT) for f in futures]
    started.close()
    go.close()

    assert results == [f"/mnt/vol{i}\n" for i in range(20)]
    assert during == before
    assert threading.active_count() == before
