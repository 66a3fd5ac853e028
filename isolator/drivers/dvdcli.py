"""The ``dvdcli`` driver client: Mesos's ``DriverClient`` (driver.cpp), word for word.

Every call is a coroutine on the shared driver loop, so a call in flight costs no thread
(``process.Child`` watches the child from the loop). On a timeout or a discard the
child's whole process group is SIGKILLed and reaped; so it is when dvdcli writes more
than ``max_output`` bytes to stdout or stderr (not Mesos: it reads them whole).

A failed mount is a ``MountRefusedError`` only when dvdcli could not be run at all: once
it ran, it may have mounted before failing, so every other failure may leave the volume
mounted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping

from actors import EventLoopThread, Future
from isolator.common.errors import DriverError, MountRefusedError, strerror
from isolator.config.defaults import MOUNT_TIMEOUT, UNMOUNT_TIMEOUT
from isolator.config.duration import format_duration
from isolator.drivers._io import driver_loop
from isolator.drivers.base import DriverClient
from isolator.drivers.process import MAX_OUTPUT, Child, Outcome

__all__ = ["DvdcliClient"]

logger = logging.getLogger(__name__)

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


def _failure_text(future: asyncio.Future[bytes]) -> str:
    if future.cancelled():
        return "discarded"
    error = future.exception()
    return "discarded" if error is None else strerror(error)


# -- the client ------------------------------------------------------------------------------


class DvdcliClient(DriverClient):
    """Mounts and unmounts through the ``dvdcli`` binary, as Mesos's ``DriverClient``.

    Calls never block the caller: each is a coroutine on ``loop`` (by default the one
    driver loop), so any number can be in flight on one thread. A call that outlives its
    timeout, or whose future is discarded, has its whole process group SIGKILLed and
    reaped; a discarded call's future is discarded at once and the kill follows on the
    loop. Each of stdout and stderr is kept up to ``max_output`` bytes; beyond, the call
    fails and the group is killed.
    """

    def __init__(
        self,
        dvdcli_path: str = "dvdcli",
        *,
        mount_timeout: float = MOUNT_TIMEOUT,
        unmount_timeout: float = UNMOUNT_TIMEOUT,
        max_output: int = MAX_OUTPUT,
        loop: EventLoopThread | None = None,
    ) -> None:
        self._dvdcli = dvdcli_path
        self._mount_timeout = mount_timeout
        self._unmount_timeout = unmount_timeout
        self._max_output = max_output
        self._loop = loop if loop is not None else driver_loop()

    def mount(self, driver: str, name: str, options: Mapping[str, str]) -> Future[str]:
        """``dvdcli mount``; the future holds its stdout untrimmed (the mount point).

        Fails with ``MountRefusedError`` if dvdcli cannot be run, else with ``DriverError``.
        """
        argv = [self._dvdcli, "mount", f"--volumedriver={driver}", f"--volumename={name}"]
        argv.extend(f"--volumeopts={key}={value}" for key, value in options.items())
        return self._loop.submit(self._mount(argv))

    def unmount(self, driver: str, name: str) -> Future[None]:
        """``dvdcli unmount``; Mesos never retries it, as DVDI unmount is not idempotent."""
        argv = [self._dvdcli, "unmount", f"--volumedriver={driver}", f"--volumename={name}"]
        return self._loop.submit(self._unmount(argv))

    def path(self, driver: str, name: str) -> Future[str]:
        """``dvdcli path``, within the unmount timeout: its stdout without the newline
        dvdcli ends it with; ``""`` when dvdcli prints nothing (the volume is not mounted).

        Not in Mesos, which never asks: the isolator asks after a restart (issue 16).
        """
        argv = [self._dvdcli, "path", f"--volumedriver={driver}", f"--volumename={name}"]
        return self._loop.submit(self._path(argv))

    async def _path(self, argv: list[str]) -> str:
        stdout = await self._run("path", argv, self._unmount_timeout, read_stdout=True)
        text = os.fsdecode(stdout)
        return text[:-1] if text.endswith("\n") else text

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
            child = Child.spawn(argv)
        except (OSError, ValueError) as error:
            # Not run at all, so nothing is mounted: a mount that never was is a refusal.
            kind = MountRefusedError if operation == "mount" else DriverError
            raise kind(f"Failed to execute '{command}': {strerror(error)}") from error
        try:
            try:
                async with asyncio.timeout(timeout):
                    outcome = await child.communicate(
                        read_stdout=read_stdout, limit=self._max_output
                    )
            except TimeoutError:
                await child.kill_and_reap()
                message = f"'{operation}' timed out in {format_duration(timeout)}"
                raise DriverError(message) from None
            except BaseException:  # a discard (CancelledError): stop the child, pass it on
                await child.kill_and_reap()
                raise
        finally:
            child.close()
        if outcome.overflowed is not None:
            raise DriverError(
                f"'{operation}' wrote more than {self._max_output} bytes to "
                f"{outcome.overflowed}, so its process group was killed"
            )
        return _check(outcome)


def _check(outcome: Outcome) -> bytes:
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
