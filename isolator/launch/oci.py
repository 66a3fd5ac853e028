"""Running one container under an OCI runtime (runc, crun) from the launcher process.

The launcher does for a rootfs container what containerd's shim does: it becomes a *child
subreaper*, has the runtime ``create`` the container (the task's stdio are the launcher's
own descriptors, passed as is), ``start`` it, and waits for the container's init itself, so
its wait status is exact: an ``exit 143`` stays 143 and a death by ``SIGTERM`` is reported
by the launcher dying of ``SIGTERM`` (``runtime run`` would report both as 143). Signals the
launcher receives are forwarded with ``runtime kill``. However the task ends, the container
is deleted from the runtime's state and the bundle removed; if the launcher itself is
killed, the next launcher start (or the scheduler's recovery) removes the stopped leftover.

The command is PID 1 of its PID namespace, as under Docker without ``--init``: it receives
only the signals it handles, and ``SIGKILL``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from isolator.common.names import printable
from isolator.launch.mounting import LaunchError
from isolator.launch.oci_bundle import remove_bundle, write_bundle

__all__ = [
    "DEFAULT_RUNTIME",
    "DEFAULT_RUNTIME_ROOT",
    "ID_PREFIX",
    "KILL_REQUEST",
    "RUNTIMES",
    "RuntimeContainer",
    "default_runtime_root",
    "delete_container",
    "kill_container",
    "list_containers",
    "new_container_id",
    "remove_stopped",
    "resolve_runtime",
    "run_container",
    "running_containers",
]

RUNTIMES = ("runc", "crun")
DEFAULT_RUNTIME = "runc"
DEFAULT_RUNTIME_ROOT = "/run/isolator/oci"
"""Where each runtime keeps its state by default: ``/run/isolator/oci/<runtime name>``."""

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


@dataclass(frozen=True)
class RuntimeContainer:
    """One container in the runtime's state, as ``runtime list`` reports it."""

    id: str
    status: str
    pid: int
    bundle: str
    annotations: Mapping[str, str]


def resolve_runtime(runtime: str | None) -> str:
    """The runtime's binary: ``None`` is ``runc``; ``runc``, ``crun`` or an absolute path."""
    name = DEFAULT_RUNTIME if runtime is None else runtime
    if name in RUNTIMES:
        found = shutil.which(name)
        if found is None:
            raise LaunchError(
                f"The OCI runtime '{name}' is not installed (apt-get install -y {name})"
            )
        return found
    if not name.startswith("/") or "\0" in name:
        raise LaunchError(
            f"Unknown OCI runtime '{printable(name)}': expected 'runc', 'crun' or an "
            "absolute path to a runtime binary"
        )
    if not (os.path.isfile(name) and os.access(name, os.X_OK)):
        raise LaunchError(f"The OCI runtime '{printable(name)}' is not an executable file")
    return name


def default_runtime_root(runtime: str) -> str:
    """The project's state directory for ``runtime`` (a name or a path)."""
    return f"{DEFAULT_RUNTIME_ROOT}/{os.path.basename(runtime)}"


def new_container_id() -> str:
    return f"{ID_PREFIX}{os.urandom(8).hex()}"


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


def list_containers(
    runtime: str | None = None, runtime_root: str | os.PathLike[str] | None = None
) -> list[RuntimeContainer]:
    """Every container in the runtime's state (``runtime list``); none if it has no state."""
    binary = resolve_runtime(runtime)
    root = os.fspath(runtime_root or default_runtime_root(binary))
    if not os.path.isdir(root) or not os.listdir(root):
        return []
    done = _runtime(binary, root, "list", "--format", "json", capture_output=True)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise LaunchError(f"Failed to list the containers of '{printable(binary)}': {message}")
    if len(done.stdout) > _MAX_LIST_OUTPUT:
        raise LaunchError(f"The container list of '{printable(binary)}' is too large")
    entries = json.loads(done.stdout or b"null") or []
    return [
        RuntimeContainer(
            id=str(entry.get("id", "")),
            status=str(entry.get("status", "")),
            pid=int(entry.get("pid") or 0),
            bundle=str(entry.get("bundle", "")),
            annotations={str(k): str(v) for k, v in (entry.get("annotations") or {}).items()},
        )
        for entry in entries
        if isinstance(entry, dict)
    ]


def running_containers(
    runtime: str | None = None, runtime_root: str | os.PathLike[str] | None = None
) -> list[RuntimeContainer]:
    """The launcher's containers that still run: what an agent restart recovers as known."""
    return [
        container
        for container in list_containers(runtime, runtime_root)
        if container.id.startswith(ID_PREFIX) and container.status in ("running", "paused")
    ]


def remove_stopped(runtime: str, runtime_root: str) -> list[str]:
    """Delete the launcher's containers that no longer run (a launcher was killed); their IDs.

    A ``created`` one is a leftover only if the launcher that made it is gone.
    """
    removed = []
    for container in list_containers(runtime, runtime_root):
        if not container.id.startswith(ID_PREFIX):
            continue  # not ours
        stale = container.status == "stopped" or (
            container.status == "created"
            and not _alive(container.annotations.get(LAUNCHER_ANNOTATION, ""))
        )
        if stale and delete_container(runtime, runtime_root, container.id):
            removed.append(container.id)
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
    except (LaunchError, OSError, subprocess.SubprocessError, ValueError) as error:
        print(f"Failed to remove stopped containers: {error}", file=sys.stderr, flush=True)
    config = {**config, "annotations": {**config.get("annotations", {}),
                                         LAUNCHER_ANNOTATION: str(os.getpid())}}  # fmt: skip
    _become_subreaper()
    bundle = write_bundle(config)
    try:
        status = _create_start_wait(runtime, runtime_root, container_id, bundle, forwarder)
    finally:
        delete_container(runtime, runtime_root, container_id)
        remove_bundle(bundle, extra=(_PID_FILE,))
    if status is None:
        return 125
    if os.WIFSIGNALED(status):
        return _die_of(os.WTERMSIG(status))
    if forwarder.aborted is not None:
        return _die_of(forwarder.aborted)
    return os.waitstatus_to_exitcode(status)


def _create_start_wait(
    runtime: str, root: str, container_id: str, bundle: str, forwarder: _Forwarder
) -> int | None:
    pid_file = os.path.join(bundle, _PID_FILE)
    sys.stdout.flush()
    sys.stderr.flush()
    # The task's stdio are the launcher's own, passed as is (stdin too).
    creating = subprocess.Popen(
        [runtime, "--root", root, "create", "--bundle", bundle, "--pid-file", pid_file,
         container_id]
    )  # fmt: skip
    status = _wait(creating)
    if status != 0:
        print(f"The OCI runtime '{printable(runtime)}' failed to create the container "
              f"(exit status {status})", file=sys.stderr, flush=True)  # fmt: skip
        return None
    with open(pid_file, encoding="ascii") as file:
        pid = int(file.read().strip())
    if forwarder.created(pid):
        return 0  # a signal came before the task started: it never will
    started = _runtime(runtime, root, "start", container_id)
    if started.returncode != 0:
        print(f"The OCI runtime '{printable(runtime)}' failed to start the container",
              file=sys.stderr, flush=True)  # fmt: skip
        with contextlib.suppress(ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        return None
    _, status = os.waitpid(pid, 0)  # the init is our child now: we are its subreaper
    return status


class _Forwarder:
    """Forwards the launcher's signals to the container, once it exists."""

    def __init__(self, runtime: str, root: str, container_id: str) -> None:
        self.runtime, self.root, self.container_id = runtime, root, container_id
        self.pid: int | None = None
        self.aborted: int | None = None
        self.pending: list[int] = []

    def created(self, pid: int) -> bool:
        """The container exists; True if a signal came before and it must not start."""
        self.pid = pid
        if self.pending:
            self.aborted = self.pending[0]
            return True
        return False

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
        raise LaunchError(f"Failed to become a child subreaper: {os.strerror(ctypes.get_errno())}")


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
