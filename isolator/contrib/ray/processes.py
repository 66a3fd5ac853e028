"""Processes that outlive the agent that started them, and how a later agent finds them again.

Ray kills an actor's direct children when it kills the actor (its documented
``RAY_kill_child_processes_on_worker_exit``, on by default), so an agent starts its tasks and
its plugin through a shim (``isolator.contrib.ray.shim``) that forks once more and leaves: the
shim's child is no longer the agent's, waits for the process it supervises and writes that
process's exit status, as containerd's shim does. A later agent, which is nobody's parent,
finds them by ``ProcessId`` (pid *and* start time, so a reused pid is never taken for the
process) and watches them with a pidfd, which works for any process, child or not.

Everything here is an ``async`` function for one event loop; nothing blocks it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from isolator.common.linux import PR_SET_CHILD_SUBREAPER, libc, open_pidfd
from isolator.common.readable import readable

__all__ = [
    "OUTPUT_FILE",
    "PIDS_FILE",
    "STATUS_FILE",
    "ProcessId",
    "SpawnError",
    "Supervised",
    "exited",
    "read_exit_status",
    "read_output",
    "read_pids",
    "reap_children",
    "send_signal",
    "set_subreaper",
    "spawn",
]

PIDS_FILE: Final = "pids"
"""In a run directory: the shim's and its child's ``ProcessId``s, written before it reports."""
STATUS_FILE: Final = "status"
"""In a run directory: the child's exit status, written by the shim once it has reaped it."""
OUTPUT_FILE: Final = "output"
"""In a run directory: the child's stdout and stderr."""

_READ_CHUNK: Final = 65536


class SpawnError(Exception):
    """The shim could not start the process; the message says why."""


@dataclass(frozen=True)
class ProcessId:
    """A process as a later reader can recognise it: a pid alone may be reused by then."""

    pid: int
    start: int
    """When it started, in clock ticks after boot (``/proc/<pid>/stat``, field 22)."""

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        """The process with this pid now (a zombie too), or None if there is none."""
        stat = _stat(pid)
        return None if stat is None else cls(pid, stat[1])

    def running(self) -> bool:
        """Whether this very process still runs (not exited, not a reused pid)."""
        stat = _stat(self.pid)
        return stat is not None and stat[0] not in "ZX" and stat[1] == self.start

    def to_json(self) -> list[int]:
        return [self.pid, self.start]

    @classmethod
    def from_json(cls, data: Any) -> ProcessId:
        """Parse ``[pid, start]``; ``ValueError`` if it is not that."""
        if (
            not isinstance(data, list)
            or len(data) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in data)
        ):
            raise ValueError(f"not a process ID: {data!r}")
        return cls(data[0], data[1])


@dataclass(frozen=True)
class Supervised:
    """A shim and the process it supervises."""

    shim: ProcessId
    child: ProcessId

    def to_json(self) -> dict[str, list[int]]:
        return {"shim": self.shim.to_json(), "child": self.child.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> Supervised:
        if not isinstance(data, dict):
            raise ValueError(f"not a shim record: {data!r}")
        return cls(ProcessId.from_json(data.get("shim")), ProcessId.from_json(data.get("child")))


def _stat(pid: int) -> tuple[str, int] | None:
    """State and start time of ``pid``, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            # The command (field 2) may hold spaces and parentheses: split after the last ")".
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[19])


async def spawn(argv: Sequence[str], run_dir: Path) -> Supervised:
    """Start ``argv`` under a shim that writes its output and exit status into ``run_dir``.

    Returns once the child runs. The shim leads a new session, so a signal to the agent's
    process group (a Ctrl-C) does not reach it. Raises ``SpawnError``.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "isolator.contrib.ray.shim", str(run_dir), "--", *argv]
    first = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert first.stdout is not None
    try:
        report = await _read_to_end(first.stdout.fileno())
    finally:
        first.stdout.close()
        # The first shim process leaves right after its fork: reap it without blocking.
        first_id = ProcessId.of(first.pid)
        if first_id is not None:
            await exited(first_id)
        first.wait()
    try:
        answer = json.loads(report)
        if "error" in answer:
            raise SpawnError(f"Failed to start {argv[0]!r}: {answer['error']}")
        return Supervised.from_json(answer)
    except (ValueError, TypeError):
        raise SpawnError(
            f"The shim for {argv[0]!r} reported {report[:200]!r} (exit {first.returncode})"
        ) from None


async def exited(process: ProcessId) -> None:
    """Returns once ``process`` has exited (at once if it has already)."""
    pidfd = open_pidfd(process.pid)
    if pidfd is None:
        return
    try:
        # The pidfd pins the pid: if it is still our process now, the pidfd is about it.
        if process.running():
            await readable(pidfd)
    finally:
        os.close(pidfd)


def send_signal(process: ProcessId, signum: int, *, group: bool = False) -> bool:
    """Signal ``process`` (with ``group``, its process group) if it still runs; never
    another process that took its pid. False if it has exited."""
    pidfd = open_pidfd(process.pid)
    if pidfd is None:
        return False
    try:
        if not process.running():
            return False
        if group:
            # A group's ID is not reused while any member lives, so once the leader was
            # ours this signals our group or nothing.
            os.killpg(process.pid, signum)
        else:
            signal.pidfd_send_signal(pidfd, signum)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(pidfd)


def read_pids(run_dir: Path) -> Supervised | None:
    """The shim's record in ``run_dir``, or None if it wrote none (it never got that far)."""
    try:
        return Supervised.from_json(json.loads((run_dir / PIDS_FILE).read_bytes()))
    except (OSError, ValueError):
        return None


def read_exit_status(run_dir: Path) -> int | None:
    """The child's exit status (negative: killed by that signal), or None if unknown."""
    try:
        status = json.loads((run_dir / STATUS_FILE).read_bytes())["exit_code"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return status if isinstance(status, int) else None


def read_output(run_dir: Path, limit: int) -> str:
    """The last ``limit`` bytes of the child's output, decoded."""
    try:
        with open(run_dir / OUTPUT_FILE, "rb") as output:
            size = output.seek(0, os.SEEK_END)
            output.seek(max(0, size - limit))
            return output.read().decode(errors="replace")
    except OSError:
        return ""


async def _read_to_end(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    while True:
        await readable(fd)
        try:
            chunk = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def set_subreaper(enabled: bool) -> None:
    """Make this process the one orphaned descendants are reparented to (or stop being it).

    For a driver that runs a whole simulated cluster below it: the shims its agents leave
    become its children, so it can reap them (an init that does not reap would keep them
    as zombies). Raises ``OSError``.
    """
    if libc().prctl(PR_SET_CHILD_SUBREAPER, int(enabled), 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def reap_children(timeout: float) -> list[str]:
    """Reap every child that has exited or exits within ``timeout`` seconds; describe the
    ones still running then (``pid: command``). Only for when no child is another's to
    wait for: it reaps them all."""
    deadline = time.monotonic() + timeout
    running = {}
    for pid in _children():
        pidfd = open_pidfd(pid)
        if pidfd is not None:
            running[pidfd] = pid
    poller = select.poll()
    for pidfd in running:
        poller.register(pidfd, select.POLLIN)
    try:
        while running and (left := deadline - time.monotonic()) > 0:
            for pidfd, _ in poller.poll(left * 1000):
                poller.unregister(pidfd)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(running.pop(pidfd), 0)
                os.close(pidfd)
    finally:
        for pidfd in running:
            os.close(pidfd)
    return [f"{pid}: {_command(pid)}" for pid in running.values()]


def _children() -> list[int]:
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == me:
                found.append(int(entry))
    return found


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"
