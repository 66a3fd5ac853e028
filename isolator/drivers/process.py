"""A child process watched from an asyncio loop without a thread: pidfd, pipes, process group.

The child is spawned with ``subprocess.Popen`` (as asyncio itself does), its exit is
watched through a pidfd on the loop and its pipes are read with ``add_reader``.
asyncio's own subprocess support is not used because Python 3.11's default child watcher
starts one ``waitpid`` thread per child.

The child leads its own process group (``start_new_session``) and is reaped only at the
very end, so ``kill_and_reap`` hits that group and nothing else: a zombie leader keeps
its pid and group id from being reused.

What is kept of a pipe is capped: past ``limit`` bytes the reader stops, throws away what
it holds and kills the group at once, so a child flooding its output costs no more than
the cap (a drained pipe keeps nothing and has no cap).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Final

from isolator.common.linux import open_pidfd
from isolator.common.readable import readable

__all__ = ["MAX_OUTPUT", "Child", "Outcome", "OutputLimitError"]

logger = logging.getLogger(__name__)

REAP_GRACE: Final = 5.0
"""After SIGKILL a child exits at once unless stuck in the kernel (D state); we wait this
long to reap it, then give up and leave it to ``subprocess``'s own reaping of orphaned
``Popen`` objects, so a timeout is still reported in time."""

_READ_CHUNK: Final = 65536

MAX_OUTPUT: Final = 1 << 20
"""Bytes kept of one pipe (1 MiB): dvdcli prints a path, or an error line."""


class OutputLimitError(Exception):
    """A child wrote more than the limit to a pipe that is kept; its group was killed."""

    def __init__(self, what: str, limit: int) -> None:
        self.what = what
        self.limit = limit
        super().__init__(f"more than {limit} bytes on {what}")


class _PipeReader:
    """Reads a pipe to EOF from the loop's selector, so a read costs no thread."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pipe: IO[bytes],
        what: str,
        program: str,
        *,
        keep: bool,
        limit: int,
        on_overflow: Callable[[], None],
    ) -> None:
        self.what = what  # "stdout" or "stderr", for the log
        self._program = program
        self._loop = loop
        self._pipe = pipe
        self._fd = pipe.fileno()
        self._keep = keep
        self._limit = limit
        self._on_overflow = on_overflow
        self._chunks: list[bytes] = []
        self._kept = 0
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
            logger.debug("Failed to read the %s of %s: %s", self.what, self._program, error)
            self._stop()
            if not self.done.done():
                self.done.set_exception(error)
            return
        if data:
            if self._keep:
                self._chunks.append(data)
                self._kept += len(data)
                if self._kept > self._limit:
                    self._overflow()
            return
        self._stop()
        if not self.done.done():
            self.done.set_result(b"".join(self._chunks))

    def _overflow(self) -> None:
        self._stop()
        self._chunks.clear()
        if not self.done.done():
            self.done.set_exception(OutputLimitError(self.what, self._limit))
        self._on_overflow()

    @property
    def overflowed(self) -> bool:
        """Whether the child wrote more than the limit (the group is killed then)."""
        return (
            self.done.done()
            and not self.done.cancelled()
            and isinstance(self.done.exception(), OutputLimitError)
        )

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
class Outcome:
    """What Mesos's ``await(status, read(out), read(err))`` hands its continuation."""

    status: int | None
    """The raw wait status; None when the child could not be reaped."""
    stdout: asyncio.Future[bytes] | None
    """None when stdout was not kept (unmount: Mesos never reads it)."""
    stderr: asyncio.Future[bytes]
    overflowed: str | None = None
    """The pipe (``stdout`` or ``stderr``) that went over the limit, if one did."""


class Child:
    """A spawned child: watches its exit, reads its pipes, kills its group, reaps it.

    Use it from one event loop; ``close`` it when done, whatever happened.
    """

    def __init__(self, popen: subprocess.Popen[bytes], program: str) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.program = program  # for the log
        self._pidfd = _open_pidfd(popen.pid)
        self._exited = False
        self._reaped = False
        self._stdout: _PipeReader | None = None
        self._stderr: _PipeReader | None = None

    @classmethod
    def spawn(cls, argv: list[str]) -> Child:
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
        return cls(popen, os.path.basename(argv[0]))

    async def communicate(self, *, read_stdout: bool, limit: int = MAX_OUTPUT) -> Outcome:
        """Wait for the exit and for EOF on the pipes that are read, then reap.

        Without ``read_stdout``, stdout is drained and thrown away, so a chatty child
        cannot block on a full pipe. A kept pipe that goes over ``limit`` bytes gets the
        group killed at once; ``Outcome.overflowed`` then names it.
        """
        loop = asyncio.get_running_loop()
        assert self._popen.stdout is not None
        assert self._popen.stderr is not None
        reader = functools.partial(
            _PipeReader, loop, program=self.program, limit=limit, on_overflow=self._kill
        )
        self._stdout = reader(self._popen.stdout, "stdout", keep=read_stdout)
        self._stderr = reader(self._popen.stderr, "stderr", keep=True)
        await self._wait_exit()
        reads = [self._stderr.done, self._stdout.done] if read_stdout else [self._stderr.done]
        await asyncio.wait(reads)
        flooded = [r.what for r in (self._stdout, self._stderr) if r.overflowed]
        return Outcome(
            status=self._reap(),
            stdout=self._stdout.done if read_stdout else None,
            stderr=self._stderr.done,
            overflowed=flooded[0] if flooded else None,
        )

    async def kill_and_reap(self) -> None:
        """SIGKILL the child's process group (and the child, should it have left it)."""
        if self._reaped:
            return
        self._kill()
        try:
            async with asyncio.timeout(REAP_GRACE):
                await self._wait_exit()
        except TimeoutError:
            logger.warning("%s process %d has not exited after SIGKILL", self.program, self.pid)
            return
        self._reap()

    def _kill(self) -> None:
        if self._reaped:
            return
        for kill, target in ((os.killpg, self.pid), (os.kill, self.pid)):
            try:
                kill(target, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except OSError as error:
                logger.warning("Failed to kill %s process %d: %s", self.program, self.pid, error)

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
        if self._pidfd is not None:
            await readable(self._pidfd)
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
    try:
        return open_pidfd(pid)
    except OSError:
        return None  # no pidfd_open (kernel before 5.3), or no fd left: the exit is polled
