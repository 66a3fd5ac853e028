"""The launcher process of a rootfs container, run by an OCI runtime (runc, crun).

It does for a rootfs container what containerd's shim does: it becomes a *child
subreaper*, has the runtime start the container detached (``run --detach``; the task's
stdio are the launcher's own) and waits for the container's init itself, so its wait status
is exact: an ``exit 143`` stays 143 and a death by ``SIGTERM`` is reported by the launcher
dying of ``SIGTERM`` (a foreground ``runtime run`` reports both as 143). Signals the
launcher receives are forwarded with ``runtime kill``. However the task ends, the container
is deleted and the bundle removed; if the launcher itself is killed, the next launcher
start (or the scheduler's recovery) removes the stopped leftover and its bundle. The command
is PID 1 of its PID namespace, as under Docker without ``--init``.

Standard library only: ``isolator.launch.oci_launch.start`` has a bare interpreter
(``python -I -S -c``) import it from its directory (so its bytecode is cached) and run
``main`` with ``--runtime=B --runtime-root=D --container-id=ID --payload-fd=FD``; the
bundle's ``config.json``, encoded in the caller, comes on that inherited pipe. At start it
imports only C modules and :mod:`isolator.launch.oci_commands` (``json``, ``subprocess``,
``signal`` and ``typing`` would cost a bare interpreter about 25 ms).
"""

from __future__ import annotations

import os
import stat
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal  # the same names, typed
    from collections.abc import Sequence
    from types import FrameType
else:
    import _signal  # ``signal`` without its enums (and the enum module)

if TYPE_CHECKING or __package__:
    from isolator.launch import oci_commands as commands
else:  # imported by a bare interpreter from this directory (``oci_launch.start``)
    import oci_commands as commands

__all__ = [
    "ID_PREFIX",
    "KILL_REQUEST",
    "LAUNCHER_ANNOTATION",
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
"""The bundle's annotation naming the launcher's PID, written by the caller."""

FORWARDED_SIGNALS = (
    _signal.SIGHUP, _signal.SIGINT, _signal.SIGQUIT, _signal.SIGTERM, _signal.SIGUSR1,
    _signal.SIGUSR2, _signal.SIGALRM, _signal.SIGWINCH, _signal.SIGCONT,
)  # fmt: skip

KILL_REQUEST = _signal.SIGRTMIN + 3
"""The signal asking a launcher to ``SIGKILL`` its task (``RootfsProcess.kill``): a
``SIGKILL`` to the launcher itself could not be forwarded and would leave the task running."""

_PR_SET_CHILD_SUBREAPER = 36
_PID_FILE = "init.pid"
_BUNDLE_PREFIX = "isolator-bundle-"


def remove_stopped(runtime: str, runtime_root: str) -> list[str]:
    """Delete the launcher's containers that no longer run (a launcher was killed); their IDs.

    A ``created`` one is a leftover only if the launcher that made it is gone.
    """
    removed = []
    for container in commands.list_state(runtime, runtime_root):
        name, status = str(container.get("id", "")), container.get("status")
        if not name.startswith(ID_PREFIX):
            continue  # not ours
        annotations = container.get("annotations") or {}
        stale = status == "stopped" or (
            status == "created" and not _alive(str(annotations.get(LAUNCHER_ANNOTATION, "")))
        )
        if stale and commands.delete_container(runtime, runtime_root, name):
            removed.append(name)
            _remove_leftover_bundle(str(container.get("bundle", "")))
    return removed


def _remove_leftover_bundle(bundle: str) -> None:
    """A killed launcher's bundle, if ``write_bundle`` made it: a private directory of ours
    by that name (``remove_bundle`` then deletes only our two files, and an emptied dir)."""
    try:
        info = os.lstat(bundle)  # the directory itself, never a link to one
        if (
            os.path.basename(bundle).startswith(_BUNDLE_PREFIX)
            and info.st_uid == os.geteuid()
            and stat.S_ISDIR(info.st_mode)
            and stat.S_IMODE(info.st_mode) == 0o700
        ):
            remove_bundle(bundle, extra=(_PID_FILE,))
    except OSError as error:
        print(f"Failed to remove the bundle '{bundle}': {error}", file=sys.stderr, flush=True)


def run_payload(payload: bytes, *, runtime: str, runtime_root: str, container_id: str) -> int:
    """Run the container a payload describes; its status.

    A payload is ``b"run\n"`` and the bundle's ``config.json`` (which names the launcher's
    PID in ``LAUNCHER_ANNOTATION``), or ``b"refuse STATUS\n"`` and the message of what
    stopped the launch before the runtime (printed; STATUS returned).
    """
    head, _, body = payload.partition(b"\n")
    if head == b"run":
        return run_container(
            body, runtime=runtime, runtime_root=runtime_root, container_id=container_id
        )
    kind, _, status = head.partition(b" ")
    if kind != b"refuse" or not status.isdigit():
        raise ValueError(f"Unknown launcher payload {head[:40]!r}")
    print(body.decode(errors="replace"), file=sys.stderr, flush=True)
    return int(status)


def run_container(config: bytes, *, runtime: str, runtime_root: str, container_id: str) -> int:
    """Run the bundle whose ``config.json`` is ``config`` to its end; the task's exit
    status (or die of its signal).

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
    except (commands.RuntimeCommandError, OSError, ValueError) as error:
        print(f"Failed to remove stopped containers: {error}", file=sys.stderr, flush=True)
    _become_subreaper()
    bundle = write_bundle(config)
    try:
        status = _start_and_wait(runtime, runtime_root, container_id, bundle, forwarder)
    finally:
        commands.delete_container(runtime, runtime_root, container_id)
        remove_bundle(bundle, extra=(_PID_FILE,))
    if status is None:
        return 125
    if os.WIFSIGNALED(status):
        return _die_of(os.WTERMSIG(status))
    return os.waitstatus_to_exitcode(status)


def write_bundle(config: bytes, *, parent: str | None = None) -> str:
    """A new private directory (0700) holding ``config`` as ``config.json``, under
    ``parent`` or ``$TMPDIR`` (``/tmp``); its path. (``tempfile`` would cost more to import
    than this.)"""
    base = parent or os.environ.get("TMPDIR") or "/tmp"
    bundle = os.path.join(base, f"{_BUNDLE_PREFIX}{os.urandom(8).hex()}")
    os.mkdir(bundle, 0o700)
    fd = os.open(
        os.path.join(bundle, "config.json"),
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
        0o600,
    )
    with os.fdopen(fd, "wb") as file:
        file.write(config)
    return bundle


def remove_bundle(bundle: str, *, extra: Sequence[str] = ()) -> None:
    """Remove what :func:`write_bundle` (and the runner: ``extra`` names) wrote, then the dir."""
    for name in ("config.json", *extra):
        try:
            os.unlink(os.path.join(bundle, name))
        except FileNotFoundError:
            pass
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
    argv = [runtime, "--root", root, "run", "--detach", "--bundle", bundle, "--pid-file",
            pid_file, container_id]  # fmt: skip
    status = commands.reap(
        commands.spawn(argv, []), argv, time.monotonic() + commands.RUNTIME_TIMEOUT
    )
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
            commands.kill_container(self.runtime, self.root, self.container_id, signum)

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        if signum == KILL_REQUEST:
            signum = _signal.SIGKILL
        if self.pid is None:
            self.pending.append(signum)
        else:
            commands.kill_container(self.runtime, self.root, self.container_id, signum)

    def install(self) -> None:
        for signum in (*FORWARDED_SIGNALS, KILL_REQUEST):
            _signal.signal(signum, self.handle)


def _become_subreaper() -> None:
    import ctypes  # here, not at start: ``--help`` and a refused launch do not need it

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "Failed to become a child subreaper")


def _die_of(signum: int) -> int:
    """End the launcher by ``signum``, as the task ended, so its parent sees the same status."""
    sys.stdout.flush()
    sys.stderr.flush()
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the core would be the launcher's
    if signum not in (_signal.SIGKILL, _signal.SIGSTOP):
        _signal.signal(signum, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [signum])
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
            payload = pipe.read()
        return run_payload(
            payload,
            runtime=values["--runtime"],
            runtime_root=values["--runtime-root"],
            container_id=values["--container-id"],
        )
    except Exception:  # A bug here must not pass for the command's own status.
        import traceback

        traceback.print_exc()
        print("The launcher failed unexpectedly", file=sys.stderr, flush=True)
        return 125


if __name__ == "__main__":
    sys.exit(main())
