"""The launcher process of a rootfs container, run by an OCI runtime (runc, crun).

It does for a rootfs container what containerd's shim does: it becomes a *child
subreaper*, has the runtime start the container detached (``run --detach``; the task's
stdio are the launcher's own descriptors, passed as is) and waits for the container's init
itself, so its wait status is exact: an ``exit 143`` stays 143 and a death by ``SIGTERM``
is reported by the launcher dying of ``SIGTERM`` (a foreground ``runtime run`` would
report both as 143). Signals the
launcher receives are forwarded with ``runtime kill``. However the task ends, the container
is deleted from the runtime's state and the bundle removed; if the launcher itself is
killed, the next launcher start (or the scheduler's recovery) removes the stopped leftover.

The command is PID 1 of its PID namespace, as under Docker without ``--init``: it receives
only the signals it handles, and ``SIGKILL``.

This module uses the standard library only: ``isolator.launcher.launch`` runs it as a
script (``python -I -S oci_supervisor.py --runtime=B --runtime-root=D --container-id=ID
--payload-fd=FD``) with the bundle's config, built in the caller, on an inherited pipe, so
a task's launch pays for a bare interpreter and the runtime, not for the package's imports.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import select
import signal
import subprocess
import sys
import traceback
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any

__all__ = [
    "ID_PREFIX",
    "KILL_REQUEST",
    "LAUNCHER_ANNOTATION",
    "RuntimeCommandError",
    "delete_container",
    "kill_container",
    "list_state",
    "main",
    "remove_bundle",
    "remove_stopped",
    "run_container",
    "run_payload",
    "write_bundle",
]

ID_PREFIX = "isolator-"
"""Every container the launcher makes is named so; it deletes only those."""

LAUNCHER_ANNOTATION = "org.apache.mesos.isolator.launcher-pid"

FORWARDED_SIGNALS = (
    signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1,
    signal.SIGUSR2, signal.SIGALRM, signal.SIGWINCH, signal.SIGCONT,
)  # fmt: skip

KILL_REQUEST = signal.SIGRTMIN + 3
"""The signal asking a launcher to ``SIGKILL`` its task (``RootfsProcess.kill``): a
``SIGKILL`` to the launcher itself could not be forwarded and would leave the task running."""

_RUNTIME_TIMEOUT = 60.0  # seconds for one runtime command that is not the task
_MAX_LIST_OUTPUT = 16 << 20
_PR_SET_CHILD_SUBREAPER = 36
_PID_FILE = "init.pid"


class RuntimeCommandError(Exception):
    """A runtime command failed; the message has its output."""


def _runtime(
    runtime: str, root: str, *args: str, capture_output: bool = False
) -> subprocess.CompletedProcess[bytes]:
    """One runtime command, bounded in time; its output captured or passed through."""
    if capture_output:
        return subprocess.run(
            [runtime, "--root", root, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_RUNTIME_TIMEOUT,
            check=False,
        )
    process = subprocess.Popen([runtime, "--root", root, *args], stdin=subprocess.DEVNULL)
    return subprocess.CompletedProcess(process.args, _wait(process), None, None)


def _wait(process: subprocess.Popen[bytes]) -> int:
    """Wait for ``process`` at most ``_RUNTIME_TIMEOUT``, on a pidfd: ``Popen.wait(timeout)``
    polls with sleeps of up to 50 ms, which would double a runtime command's cost."""
    with process:
        pidfd = os.pidfd_open(process.pid)
        try:
            ready, _, _ = select.select([pidfd], [], [], _RUNTIME_TIMEOUT)
        finally:
            os.close(pidfd)
        if not ready:
            process.kill()
            process.wait()
            raise subprocess.TimeoutExpired(process.args, _RUNTIME_TIMEOUT)
        return process.wait()


def list_state(runtime: str, runtime_root: str) -> list[dict[str, Any]]:
    """``runtime list`` as JSON objects; none when the state directory is missing or empty."""
    if not os.path.isdir(runtime_root) or not os.listdir(runtime_root):
        return []
    done = _runtime(runtime, runtime_root, "list", "--format", "json", capture_output=True)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise RuntimeCommandError(f"Failed to list the containers of '{runtime}': {message}")
    if len(done.stdout) > _MAX_LIST_OUTPUT:
        raise RuntimeCommandError(f"The container list of '{runtime}' is too large")
    entries = json.loads(done.stdout or b"null") or []
    return [entry for entry in entries if isinstance(entry, dict)]


def remove_stopped(runtime: str, runtime_root: str) -> list[str]:
    """Delete the launcher's containers that no longer run (a launcher was killed); their IDs.

    A ``created`` one is a leftover only if the launcher that made it is gone.
    """
    removed = []
    for container in list_state(runtime, runtime_root):
        name, status = str(container.get("id", "")), container.get("status")
        if not name.startswith(ID_PREFIX):
            continue  # not ours
        annotations = container.get("annotations") or {}
        stale = status == "stopped" or (
            status == "created" and not _alive(str(annotations.get(LAUNCHER_ANNOTATION, "")))
        )
        if stale and delete_container(runtime, runtime_root, name):
            removed.append(name)
    return removed


def delete_container(runtime: str, runtime_root: str, container_id: str) -> bool:
    """``runtime delete --force``: stops it if needed and removes its state (and cgroups)."""
    done = _runtime(runtime, runtime_root, "delete", "--force", container_id, capture_output=True)
    return done.returncode == 0


def kill_container(runtime: str, runtime_root: str, container_id: str, signum: int) -> bool:
    done = _runtime(
        runtime, runtime_root, "kill", container_id, str(int(signum)), capture_output=True
    )
    return done.returncode == 0


def run_payload(
    payload: Mapping[str, Any], *, runtime: str, runtime_root: str, container_id: str
) -> int:
    """Run ``payload["config"]``, or print ``payload["refuse"]``'s message and return its
    status (what stopped the launch before the runtime)."""
    refused = payload.get("refuse")
    if refused is not None:
        print(refused["message"], file=sys.stderr, flush=True)
        return int(refused["status"])
    return run_container(
        payload["config"], runtime=runtime, runtime_root=runtime_root, container_id=container_id
    )


def run_container(
    config: Mapping[str, Any], *, runtime: str, runtime_root: str, container_id: str
) -> int:
    """Run the bundle ``config`` to its end; the task's exit status (or die of its signal).

    Meant for the launcher process (it becomes a subreaper and handles signals). Returns
    125 when the runtime could not start the container (its message is on stderr).
    """
    forwarder = _Forwarder(runtime, runtime_root, container_id)
    # From here to the end a signal is the task's (or waits for it), never the launcher's
    # death half-way through a cleanup.
    forwarder.install()
    os.makedirs(runtime_root, mode=0o700, exist_ok=True)
    try:
        remove_stopped(runtime, runtime_root)
    except (RuntimeCommandError, OSError, subprocess.SubprocessError, ValueError) as error:
        print(f"Failed to remove stopped containers: {error}", file=sys.stderr, flush=True)
    config = {**config, "annotations": {**config.get("annotations", {}),
                                         LAUNCHER_ANNOTATION: str(os.getpid())}}  # fmt: skip
    _become_subreaper()
    bundle = write_bundle(config)
    try:
        status = _start_and_wait(runtime, runtime_root, container_id, bundle, forwarder)
    finally:
        delete_container(runtime, runtime_root, container_id)
        remove_bundle(bundle, extra=(_PID_FILE,))
    if status is None:
        return 125
    if os.WIFSIGNALED(status):
        return _die_of(os.WTERMSIG(status))
    return os.waitstatus_to_exitcode(status)


def write_bundle(config: Mapping[str, Any], *, parent: str | None = None) -> str:
    """A new private directory (0700) holding ``config.json``, under ``parent`` or
    ``$TMPDIR`` (``/tmp``); its path. (``tempfile`` would cost more to import than this.)"""
    base = parent or os.environ.get("TMPDIR") or "/tmp"
    bundle = os.path.join(base, f"isolator-bundle-{os.urandom(8).hex()}")
    os.mkdir(bundle, 0o700)
    fd = os.open(
        os.path.join(bundle, "config.json"),
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
        0o600,
    )
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(config, file)
    return bundle


def remove_bundle(bundle: str, *, extra: Sequence[str] = ()) -> None:
    """Remove what :func:`write_bundle` (and the runner: ``extra`` names) wrote, then the dir."""
    for name in ("config.json", *extra):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(bundle, name))
    os.rmdir(bundle)


def _start_and_wait(
    runtime: str, root: str, container_id: str, bundle: str, forwarder: _Forwarder
) -> int | None:
    pid_file = os.path.join(bundle, _PID_FILE)
    sys.stdout.flush()
    sys.stderr.flush()
    # Detached: the task's stdio are the launcher's own, passed as is (stdin too), and the
    # runtime returns once it started the task, which becomes our child (we are a subreaper).
    # One runtime command where create + start would be two.
    starting = subprocess.Popen(
        [runtime, "--root", root, "run", "--detach", "--bundle", bundle, "--pid-file",
         pid_file, container_id]
    )  # fmt: skip
    status = _wait(starting)
    if status != 0:
        print(f"The OCI runtime '{runtime}' failed to start the container "
              f"(exit status {status})", file=sys.stderr, flush=True)  # fmt: skip
        return None
    with open(pid_file, encoding="ascii") as file:
        pid = int(file.read().strip())
    forwarder.started(pid)
    _, status = os.waitpid(pid, 0)
    return status


class _Forwarder:
    """Forwards the launcher's signals to the container, once it exists."""

    def __init__(self, runtime: str, root: str, container_id: str) -> None:
        self.runtime, self.root, self.container_id = runtime, root, container_id
        self.pid: int | None = None
        self.pending: list[int] = []

    def started(self, pid: int) -> None:
        """The task runs: the signals that came before it go to it now, in order."""
        self.pid = pid
        for signum in self.pending:
            kill_container(self.runtime, self.root, self.container_id, signum)

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        if signum == KILL_REQUEST:
            signum = signal.SIGKILL
        if self.pid is None:
            self.pending.append(signum)
        else:
            kill_container(self.runtime, self.root, self.container_id, signum)

    def install(self) -> None:
        for signum in (*FORWARDED_SIGNALS, KILL_REQUEST):
            signal.signal(signum, self.handle)


def _become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "Failed to become a child subreaper")


def _die_of(signum: int) -> int:
    """End the launcher by ``signum``, as the task ended, so its parent sees the same status."""
    sys.stdout.flush()
    sys.stderr.flush()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the core would be the launcher's
    if signum not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
    os.kill(os.getpid(), signum)
    return 128 + signum  # a signal whose default is to go on (SIGCHLD, SIGCONT...)


def _alive(pid_text: str) -> bool:
    if not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def argv_problem(argv: Sequence[str]) -> str | None:
    """Why ``argv`` cannot be a container's command line, or ``None``."""
    if not argv:
        return "No command to launch"
    if any("\0" in argument for argument in argv):
        return "The command has a NUL character"
    return None


_OPTIONS = ("--runtime", "--runtime-root", "--container-id", "--payload-fd")


def main(args: Sequence[str] | None = None) -> int:
    """The launcher process: run the payload's container to its end; 125 on a failure."""
    values: dict[str, str] = {}
    for argument in sys.argv[1:] if args is None else args:
        name, _, value = argument.partition("=")
        if name not in _OPTIONS:
            print(f"Unknown option {name!r}", file=sys.stderr, flush=True)
            return 125
        values[name] = value
    if set(values) != set(_OPTIONS):
        print(f"Needs {', '.join(_OPTIONS)}", file=sys.stderr, flush=True)
        return 125
    try:
        with open(int(values["--payload-fd"]), "rb") as pipe:
            payload = json.loads(pipe.read())
        return run_payload(
            payload,
            runtime=values["--runtime"],
            runtime_root=values["--runtime-root"],
            container_id=values["--container-id"],
        )
    except Exception:  # A bug here must not pass for the command's own status.
        traceback.print_exc()
        print("The launcher failed unexpectedly", file=sys.stderr, flush=True)
        return 125


if __name__ == "__main__":
    sys.exit(main())
