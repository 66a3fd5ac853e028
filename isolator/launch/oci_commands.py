"""The OCI runtime's commands as the launcher runs them: bounded in time and in output.

Standard library only, like :mod:`isolator.launch.oci_supervisor`, which a bare interpreter
imports with this module from this directory. Commands start with ``os.posix_spawnp``
(``subprocess`` would cost that interpreter its import), with the signals Python ignores
reset, and are waited for on a pidfd; one past its time is killed, reaped and reported.
"""

from __future__ import annotations

import os
import select
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal  # the same names, typed
    from collections.abc import Sequence
    from typing import Any
else:
    import _signal  # ``signal`` without its enums (and the enum module)

__all__ = [
    "RUNTIME_TIMEOUT",
    "RuntimeCommandError",
    "delete_container",
    "kill_container",
    "list_state",
    "reap",
    "spawn",
]

RUNTIME_TIMEOUT = 60.0
"""Seconds one runtime command that is not the task may take."""
_MAX_LIST_OUTPUT = 16 << 20
_MAX_ERROR_OUTPUT = 64 << 10
# What subprocess's restore_signals resets: Python ignores them, and an ignored signal
# stays ignored across exec, into the task.
_RESET_SIGNALS = (_signal.SIGPIPE, _signal.SIGXFSZ)
_DEVNULL = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_WRONLY if fd else os.O_RDONLY, 0)
            for fd in (0, 1, 2)]  # fmt: skip


class RuntimeCommandError(Exception):
    """A runtime command failed or did not finish in time; the message says which."""


def spawn(argv: list[str], actions: list[tuple[Any, ...]]) -> int:
    """Start ``argv`` (found on ``$PATH`` unless a path) with ``actions`` on its
    descriptors; its PID.

    Every other descriptor of the launcher is close-on-exec (Python makes them so), so the
    command gets only 0, 1 and 2, as ``subprocess``'s ``close_fds`` would leave it.
    """
    return os.posix_spawnp(
        argv[0], argv, os.environ, file_actions=actions, setsigdef=_RESET_SIGNALS
    )


def reap(pid: int, argv: Sequence[str], deadline: float) -> int:
    """Wait for ``pid`` until ``deadline``, on a pidfd; its status as ``Popen.returncode``.

    Past the deadline it is killed, reaped, and ``RuntimeCommandError`` raised.
    """
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], max(0.0, deadline - time.monotonic()))
    finally:
        os.close(pidfd)
    if not ready:
        os.kill(pid, _signal.SIGKILL)
        os.waitpid(pid, 0)
        command = " ".join([argv[0], *argv[3:]])  # without its --root
        within = f"within {RUNTIME_TIMEOUT:g} seconds"
        raise RuntimeCommandError(f"The OCI runtime command '{command}' did not finish {within}; "
                                  "it was killed")  # fmt: skip
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _close(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


def _quiet(runtime: str, root: str, *args: str) -> int:
    """One runtime command, its stdio on ``/dev/null``, bounded in time; its status."""
    argv = [runtime, "--root", root, *args]
    pid = spawn(argv, _DEVNULL)
    return reap(pid, argv, time.monotonic() + RUNTIME_TIMEOUT)


def _captured(runtime: str, root: str, *args: str) -> tuple[int, bytes, bytes]:
    """One runtime command with its output read, bounded in size and time: its status,
    stdout and stderr."""
    argv = [runtime, "--root", root, *args]
    deadline = time.monotonic() + RUNTIME_TIMEOUT
    (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe()
    try:
        pid = spawn(argv, [_DEVNULL[0], (os.POSIX_SPAWN_DUP2, out_w, 1),
                            (os.POSIX_SPAWN_DUP2, err_w, 2)])  # fmt: skip
    except BaseException:
        _close(out_r, err_r)
        raise
    finally:
        _close(out_w, err_w)
    limits = {out_r: _MAX_LIST_OUTPUT + 1, err_r: _MAX_ERROR_OUTPUT}
    read = {out_r: bytearray(), err_r: bytearray()}
    try:  # past the deadline, reap kills it
        while limits and (timeout := deadline - time.monotonic()) > 0:
            for fd in select.select(list(limits), [], [], timeout)[0]:
                data = os.read(fd, 65536)
                if not data:
                    del limits[fd]
                else:  # read on to the end, keeping up to the limit
                    read[fd] += data[: limits[fd] - len(read[fd])]
    finally:
        _close(out_r, err_r)
    return reap(pid, argv, deadline), bytes(read[out_r]), bytes(read[err_r])


def list_state(runtime: str, runtime_root: str) -> list[dict[str, Any]]:
    """``runtime list`` as JSON objects; none when the state directory is missing or empty."""
    if not os.path.isdir(runtime_root) or not os.listdir(runtime_root):
        return []
    import json  # only here: a launch with no container left in the state needs none

    status, stdout, stderr = _captured(runtime, runtime_root, "list", "--format", "json")
    if status != 0:
        message = stderr.decode(errors="replace").strip()
        raise RuntimeCommandError(f"Failed to list the containers of '{runtime}': {message}")
    if len(stdout) > _MAX_LIST_OUTPUT:
        raise RuntimeCommandError(f"The container list of '{runtime}' is too large")
    entries = json.loads(stdout or b"null") or []
    return [entry for entry in entries if isinstance(entry, dict)]


def delete_container(runtime: str, runtime_root: str, container_id: str) -> bool:
    """``runtime delete --force``: stops it if needed and removes its state (and cgroups)."""
    return _quiet(runtime, runtime_root, "delete", "--force", container_id) == 0


def kill_container(runtime: str, runtime_root: str, container_id: str, signum: int) -> bool:
    return _quiet(runtime, runtime_root, "kill", container_id, str(int(signum))) == 0
