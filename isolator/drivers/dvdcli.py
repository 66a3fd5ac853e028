"""The ``dvdcli`` driver client: Mesos's ``DriverClient`` (driver.cpp), word for word.

Every call is a coroutine on the shared driver loop, so a call in flight costs no thread:
the child is spawned with ``subprocess.Popen`` (as asyncio itself does), its exit is
watched through a pidfd on the loop and its pipes are read with ``add_reader``.
asyncio's own subprocess support is not used because Python 3.11's default child watcher
starts one ``waitpid`` thread per child.

The child leads its own process group (``start_new_session``) and is reaped only at the
very end, so on a timeout or a discard ``killpg`` hits that group and nothing else: a
zombie leader keeps its pid and group id from being reused.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

from actors import EventLoopThread, Future
from isolator.drivers._io import driver_loop
from isolator.drivers.base import DriverClient
from isolator.errors import DriverError

__all__ = ["DvdcliClient", "format_duration"]

logger = logging.getLogger(__name__)

MOUNT_TIMEOUT = 120.0  # Mesos: Seconds(120)
UNMOUNT_TIMEOUT = 600.0  # Mesos: Minutes(10); a detach can take ~20 min (MESOS-7439)

# After SIGKILL a child exits at once unless stuck in the kernel (D state); we wait this
# long to reap it, then give up and leave it to ``subprocess``'s own reaping of orphaned
# ``Popen`` objects, so a timeout is still reported in time.
_REAP_GRACE = 5.0

_READ_CHUNK = 65536

# -- stout's Duration printing -----------------------------------------------------------

_NANOSECONDS = 1
_MICROSECONDS = 1000 * _NANOSECONDS
_MILLISECONDS = 1000 * _MICROSECONDS
_SECONDS = 1000 * _MILLISECONDS
_MINUTES = 60 * _SECONDS
_HOURS = 60 * _MINUTES
_DAYS = 24 * _HOURS
_WEEKS = 7 * _DAYS
_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)

_UNITS = (
    (_NANOSECONDS, "ns"),
    (_MICROSECONDS, "us"),
    (_MILLISECONDS, "ms"),
    (_SECONDS, "secs"),
    (_MINUTES, "mins"),
    (_HOURS, "hrs"),
    (_DAYS, "days"),
    (_WEEKS, "weeks"),
)


def format_duration(seconds: float) -> str:
    """``stringify(Duration)`` from stout, so timeout messages read exactly as Mesos's.

    Like ``Duration::create`` the seconds are truncated to whole nanoseconds; the unit is
    the largest one not above the duration, or the next smaller one when only that gives
    a whole number (``1.5`` -> ``1500ms``, ``90`` -> ``90secs``, ``120`` -> ``2mins``).
    """
    nanos = float(seconds) * _SECONDS
    if not _INT64_MIN <= nanos < 2**63:  # also rejects NaN
        raise ValueError(f"{seconds} seconds is out of the range of a Duration")
    return _format_nanos(int(nanos))


def _format_nanos(nanos: int) -> str:
    # A port of stout's ``operator<<(std::ostream&, const Duration&)``; values are
    # printed as C++ streams print a double at precision 15 (``%.15g``).
    sign = ""
    if nanos < 0:
        sign = "-"
        # ``duration * -1`` goes through a double in stout; Duration::min() becomes max().
        nanos = _INT64_MAX if nanos == _INT64_MIN else min(int(nanos * -1.0), _INT64_MAX)
    index = 0
    while index + 1 < len(_UNITS) and nanos >= _UNITS[index + 1][0]:
        index += 1
    if index > 0:
        unit = _UNITS[index][0]
        if nanos % unit != 0 and nanos % _UNITS[index - 1][0] == 0:
            index -= 1
    unit, name = _UNITS[index]
    if unit == _NANOSECONDS:
        return f"{sign}{nanos}{name}"
    return f"{sign}{float(nanos) / float(unit):.15g}{name}"


# -- Mesos's status texts ------------------------------------------------------------------


def _wstringify(status: int) -> str:
    """Mesos's ``WSTRINGIFY``: a raw wait status in words."""
    if os.WIFEXITED(status):
        return f"exited with status {os.WEXITSTATUS(status)}"
    if os.WIFSIGNALED(status):
        message = f"terminated with signal {_strsignal(os.WTERMSIG(status))}"
        if os.WCOREDUMP(status):
            message += " (core dumped)"
        return message
    if os.WIFSTOPPED(status):
        return f"stopped on signal {_strsignal(os.WSTOPSIG(status))}"
    return f"wait status {status}"


def _strsignal(number: int) -> str:
    return signal.strsignal(number) or f"Unknown signal {number}"


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _failure_text(future: asyncio.Future[bytes]) -> str:
    if future.cancelled():
        return "discarded"
    error = future.exception()
    return "discarded" if error is None else _describe(error)


# -- one dvdcli child ------------------------------------------------------------------------


class _PipeReader:
    """Reads a pipe to EOF from the loop's selector, so a read costs no thread."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, pipe: IO[bytes], what: str, *, keep: bool
    ) -> None:
        self.what = what  # "stdout" or "stderr", for the log
        self._loop = loop
        self._pipe = pipe
        self._fd = pipe.fileno()
        self._keep = keep
        self._chunks: list[bytes] = []
        self.done: asyncio.Future[bytes] = loop.create_future()
        os.set_blocking(self._fd, False)
        loop.add_reader(self._fd, self._on_readable)
        self._reading = True

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, _READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            logger.debug("Failed to read the %s of dvdcli: %s", self.what, error)
            self._stop()
            if not self.done.done():
                self.done.set_exception(error)
            return
        if data:
            if self._keep:
                self._chunks.append(data)
            return
        self._stop()
        if not self.done.done():
            self.done.set_result(b"".join(self._chunks))

    def _stop(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def close(self) -> None:
        self._stop()
        if not self.done.done():
            self.done.cancel()
        elif not self.done.cancelled():
            self.done.exception()  # mark a read error as seen: nobody else may look
        self._pipe.close()


@dataclass(frozen=True)
class _Outcome:
    """What Mesos's ``await(status, read(out), read(err))`` hands its continuation."""

    status: int | None  # the raw wait status; None when the child could not be reaped
    stdout: asyncio.Future[bytes] | None  # None for unmount: Mesos never reads it
    stderr: asyncio.Future[bytes]


class _Child:
    """A spawned dvdcli: watches its exit, reads its pipes, kills its group, reaps it."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        self._pidfd = _open_pidfd(popen.pid)
        self._exited = False
        self._reaped = False
        self._stdout: _PipeReader | None = None
        self._stderr: _PipeReader | None = None

    @classmethod
    def spawn(cls, argv: list[str]) -> _Child:
        """Fork and exec at once, like libprocess's ``subprocess``; raises on failure."""
        popen = subprocess.Popen(
            argv,
            bufsize=0,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            start_new_session=True,
        )
        return cls(popen)

    async def communicate(self, *, read_stdout: bool) -> _Outcome:
        """Wait for the exit and for EOF on the pipes Mesos reads, then reap.

        For unmount, stdout is drained and thrown away: Mesos pipes it but never reads
        it, which could block a chatty child on a full pipe.
        """
        loop = asyncio.get_running_loop()
        assert self._popen.stdout is not None
        assert self._popen.stderr is not None
        self._stdout = _PipeReader(loop, self._popen.stdout, "stdout", keep=read_stdout)
        self._stderr = _PipeReader(loop, self._popen.stderr, "stderr", keep=True)
        await self._wait_exit()
        reads = [self._stderr.done, self._stdout.done] if read_stdout else [self._stderr.done]
        await asyncio.wait(reads)
        return _Outcome(
            status=self._reap(),
            stdout=self._stdout.done if read_stdout else None,
            stderr=self._stderr.done,
        )

    async def kill_and_reap(self) -> None:
        """SIGKILL the child's process group (and the child, should it have left it)."""
        if self._reaped:
            return
        for kill, target in ((os.killpg, self.pid), (os.kill, self.pid)):
            try:
                kill(target, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except OSError as error:
                logger.warning("Failed to kill dvdcli process %d: %s", self.pid, error)
        try:
            async with asyncio.timeout(_REAP_GRACE):
                await self._wait_exit()
        except TimeoutError:
            logger.warning("dvdcli process %d has not exited after SIGKILL", self.pid)
            return
        self._reap()

    def close(self) -> None:
        """Stop reading and close every descriptor; nothing here waits."""
        for reader in (self._stdout, self._stderr):
            if reader is not None:
                reader.close()
        for pipe in (self._popen.stdout, self._popen.stderr):
            if pipe is not None:
                pipe.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    async def _wait_exit(self) -> None:
        # Waits for the exit without reaping, so the pid stays ours until ``_reap``.
        if self._exited:
            return
        loop = asyncio.get_running_loop()
        if self._pidfd is not None:
            exited: asyncio.Future[None] = loop.create_future()

            def _wake() -> None:
                if not exited.done():
                    exited.set_result(None)

            loop.add_reader(self._pidfd, _wake)
            try:
                await exited
            finally:
                loop.remove_reader(self._pidfd)
        else:
            delay = 0.001
            while not self._poll_exit():
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
        self._exited = True

    def _poll_exit(self) -> bool:
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True  # somebody else reaped it; ``_reap`` will say so
        return info is not None and info.si_pid != 0

    def _reap(self) -> int | None:
        """The raw wait status, or None when it cannot be had (Mesos's status None)."""
        if self._reaped:
            return None
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            self._reaped = True
            self._popen.returncode = sys.maxsize  # Popen's own "status unknown" value
            return None
        if pid == 0:
            return None
        self._reaped = True
        # Tell Popen the child is reaped, so it never waits for (or warns about) it.
        self._popen.returncode = os.waitstatus_to_exitcode(status)
        return status


def _open_pidfd(pid: int) -> int | None:
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        fd: int = pidfd_open(pid)
    except OSError:
        return None  # kernel before 5.3: the exit is polled instead
    return fd


# -- the client ------------------------------------------------------------------------------


class DvdcliClient(DriverClient):
    """Mounts and unmounts through the ``dvdcli`` binary, as Mesos's ``DriverClient``.

    Calls never block the caller: each is a coroutine on ``loop`` (by default the one
    driver loop), so any number can be in flight on one thread. A call that outlives its
    timeout, or whose future is discarded, has its whole process group SIGKILLed and
    reaped; a discarded call's future is discarded at once and the kill follows on the
    loop.
    """

    def __init__(
        self,
        dvdcli_path: str = "dvdcli",
        *,
        mount_timeout: float = MOUNT_TIMEOUT,
        unmount_timeout: float = UNMOUNT_TIMEOUT,
        loop: EventLoopThread | None = None,
    ) -> None:
        self._dvdcli = dvdcli_path
        self._mount_timeout = mount_timeout
        self._unmount_timeout = unmount_timeout
        self._loop = loop if loop is not None else driver_loop()

    def mount(self, driver: str, name: str, options: Mapping[str, str]) -> Future[str]:
        """``dvdcli mount``; the future holds its stdout untrimmed (the mount point)."""
        argv = [self._dvdcli, "mount", f"--volumedriver={driver}", f"--volumename={name}"]
        argv.extend(f"--volumeopts={key}={value}" for key, value in options.items())
        return self._loop.submit(self._mount(argv))

    def unmount(self, driver: str, name: str) -> Future[None]:
        """``dvdcli unmount``; Mesos never retries it, as DVDI unmount is not idempotent."""
        argv = [self._dvdcli, "unmount", f"--volumedriver={driver}", f"--volumename={name}"]
        return self._loop.submit(self._unmount(argv))

    async def _mount(self, argv: list[str]) -> str:
        stdout = await self._run("mount", argv, self._mount_timeout, read_stdout=True)
        return os.fsdecode(stdout)  # surrogateescape: any path bytes survive a round trip

    async def _unmount(self, argv: list[str]) -> None:
        await self._run("unmount", argv, self._unmount_timeout, read_stdout=False)

    async def _run(
        self, operation: str, argv: list[str], timeout: float, *, read_stdout: bool
    ) -> bytes:
        # Mesos's quirk: the path is joined in front of argv, whose argv[0] is the path.
        command = ", ".join([self._dvdcli, *argv])
        logger.info("Invoking Docker Volume Driver '%s' command '%s'", operation, command)
        try:
            child = _Child.spawn(argv)
        except (OSError, ValueError) as error:
            raise DriverError(f"Failed to execute '{command}': {_describe(error)}") from error
        try:
            try:
                async with asyncio.timeout(timeout):
                    outcome = await child.communicate(read_stdout=read_stdout)
            except TimeoutError:
                await child.kill_and_reap()
                message = f"'{operation}' timed out in {format_duration(timeout)}"
                raise DriverError(message) from None
            except BaseException:  # a discard (CancelledError): stop the child, pass it on
                await child.kill_and_reap()
                raise
        finally:
            child.close()
        return _check(outcome)


def _check(outcome: _Outcome) -> bytes:
    """Mesos's continuation after ``await``: the status first, then the output."""
    if outcome.status is None:
        raise DriverError("Failed to reap the subprocess")
    if outcome.status != 0:
        stderr = outcome.stderr
        if stderr.cancelled() or stderr.exception() is not None:
            raise DriverError(
                f"Unexpected termination of the subprocess: {_wstringify(outcome.status)}"
            )
        text = stderr.result().decode("utf-8", "replace")
        raise DriverError(f"Unexpected termination of the subprocess: {text}")
    stdout = outcome.stdout
    if stdout is None:
        return b""
    if stdout.cancelled() or stdout.exception() is not None:
        raise DriverError(f"Failed to read stdout from the subprocess: {_failure_text(stdout)}")
    return stdout.result()
