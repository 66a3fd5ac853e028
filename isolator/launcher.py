"""Runs a command with a ``ContainerLaunchInfo`` applied, as Mesos's launch helper does.

The isolator only *describes* what a container needs (a mount namespace and bind mounts, or
the older ``mount`` pre-exec commands); Mesos's ``mesos-containerizer launch`` is what applies
it, in the container's own process, right before the task is exec'd. This module is that
helper: :func:`launch` starts ``python -m isolator.launcher``, which

1. unshares a mount namespace (``unshare(CLONE_NEWNS)``) when the launch info asks for one
   or has mounts or pre-exec commands (mounting without one would change the host),
2. marks ``/`` recursively *slave* (``MS_SLAVE | MS_REC``), unless a mount asks for
   ``MS_SHARED``: like Mesos, so nothing mounted in the container propagates back to the host
   while mounts the host makes later (new volumes, disks) still reach the container, which a
   *private* ``/`` would cut off,
3. applies ``mounts`` in order with ``mount(2)``; a read-only bind is a bind followed by a
   ``MS_REMOUNT | MS_BIND | MS_RDONLY`` remount (the kernel ignores ``MS_RDONLY`` on a new
   bind), as stout's ``fs::mount`` does,
4. runs ``pre_exec_commands`` in order (non-shell: ``value`` exec'd with ``arguments`` as its
   argv; shell: ``/bin/sh -c value``); any non-zero exit is a failure,
5. changes to ``working_directory`` (after the mounts, so it may lie inside a volume), and
6. execs the command, which thus keeps the launcher's pid, stdio and exit status.

How the child gets its inputs: the launch info goes on the command line as JSON
(``--launch-info=...``, as Mesos passes ``--launch_info`` to its helper; it holds only paths
and flags); the command's environment, which may hold secrets, goes through an inherited pipe
(``--environment-fd=N``) so it never shows in ``/proc/PID/cmdline``. The launcher itself runs
with the caller's environment so it imports this package exactly as the caller did.

Exit codes of the launcher process when it fails before exec (the message is on stderr):
:data:`EXIT_LAUNCH_FAILURE` (125) for any launcher failure (bad launch info, not root, a failed
mount or pre-exec command, a bad working directory), :data:`EXIT_CANNOT_EXECUTE` (126) when the
command exists but cannot be exec'd and :data:`EXIT_COMMAND_NOT_FOUND` (127) when it does not
exist; the conventions of ``env``, ``timeout`` and the shell. Any other status is the command's.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import shlex
import signal
import subprocess
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import IO, Any

from google.protobuf import json_format

from isolator.errors import strerror
from isolator.linux import (
    CLONE_NEWNS,
    MS_BIND,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
)
from isolator.protos import CommandInfo, ContainerLaunchInfo, ContainerMountInfo

__all__ = [
    "EXIT_CANNOT_EXECUTE",
    "EXIT_COMMAND_NOT_FOUND",
    "EXIT_LAUNCH_FAILURE",
    "LaunchError",
    "apply_launch_info",
    "launch",
    "launcher_command",
    "main",
    "run",
]

EXIT_LAUNCH_FAILURE = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_COMMAND_NOT_FOUND = 127

# The largest single argument Linux accepts (MAX_ARG_STRLEN), minus the option's name.
_MAX_ARGUMENT = 32 * 4096 - 64

_File = int | IO[Any] | None


class LaunchError(Exception):
    """The launch info cannot be applied; the command was not (and will not be) exec'd."""


# -- the parent side ---------------------------------------------------------------------


def launcher_command(launch_info: ContainerLaunchInfo | None, argv: Sequence[str]) -> list[str]:
    """The launcher's command line for ``argv``: to wrap it (e.g. in ``setpriv``) or log it.

    Raises :class:`LaunchError` for a launch info this launcher cannot apply and
    :class:`ValueError` for an empty command.
    """
    if not argv:
        raise ValueError("No command to launch")
    command = [sys.executable, "-m", "isolator.launcher"]
    if launch_info is not None:
        _validate(launch_info)
        text = json_format.MessageToJson(launch_info, preserving_proto_field_name=True, indent=None)
        if len(text.encode()) > _MAX_ARGUMENT:
            raise LaunchError(
                f"The launch info is too large for the command line ({len(text)} characters)"
            )
        command.append(f"--launch-info={text}")
    return [*command, "--", *argv]


def launch(
    launch_info: ContainerLaunchInfo | None,
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdin: _File = None,
    stdout: _File = None,
    stderr: _File = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with ``launch_info`` applied; the returned process becomes the command.

    ``cwd`` (applied after the mounts, so it may be inside a volume) overrides the launch
    info's ``working_directory``; ``env`` replaces the inherited environment of the command
    only. ``launch_info=None`` execs the command as is, in the caller's mount namespace. A
    failure before exec shows as the process's exit status (:data:`EXIT_LAUNCH_FAILURE` ...)
    and its message on its stderr.
    """
    if cwd is not None:
        launch_info = _copy(launch_info)
        launch_info.working_directory = os.fspath(cwd)
    command = launcher_command(launch_info, argv)
    if env is None:
        return subprocess.Popen(command, stdin=stdin, stdout=stdout, stderr=stderr)

    data = json.dumps(dict(env)).encode()
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(
            [*command[:3], f"--environment-fd={read_end}", *command[3:]],
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            pass_fds=(read_end,),
        )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(write_end, view) :]
    except BrokenPipeError:
        pass  # The launcher died before reading; its status tells why.
    finally:
        os.close(write_end)
    return process


def run(
    launch_info: ContainerLaunchInfo | None,
    argv: Sequence[str],
    *,
    timeout: float | None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdin: _File = None,
    stdout: _File = subprocess.PIPE,
    stderr: _File = subprocess.PIPE,
) -> subprocess.CompletedProcess[bytes]:
    """:func:`launch` and wait, capturing the output; like :func:`subprocess.run`.

    On timeout the process is killed and reaped, then :class:`subprocess.TimeoutExpired` is
    raised, so no process outlives the call.
    """
    with launch(
        launch_info, argv, cwd=cwd, env=env, stdin=stdin, stdout=stdout, stderr=stderr
    ) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as timed_out:
            process.kill()
            out, err = process.communicate()
            raise subprocess.TimeoutExpired(
                process.args, timed_out.timeout, output=out, stderr=err
            ) from None
        except BaseException:
            process.kill()
            raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _copy(launch_info: ContainerLaunchInfo | None) -> ContainerLaunchInfo:
    copy = ContainerLaunchInfo()
    if launch_info is not None:
        copy.CopyFrom(launch_info)
    return copy


# -- the child side ----------------------------------------------------------------------


def apply_launch_info(launch_info: ContainerLaunchInfo) -> None:
    """Apply ``launch_info`` to the calling process: namespace, mounts, commands, directory.

    Meant for the launcher process right before exec (it changes the caller's mount
    namespace and must be called from a single-threaded process). Raises :class:`LaunchError`.
    """
    _validate(launch_info)
    if _needs_mount_namespace(launch_info):
        euid = os.geteuid()
        if euid != 0:
            raise LaunchError(
                "Cannot apply the launch info: creating a mount namespace and bind mounting "
                f"volumes needs root (CAP_SYS_ADMIN) but the launcher runs as uid {euid}; "
                "run the launcher as root"
            )
        _unshare_mount_namespace()
        if not any(mount.flags & MS_SHARED for mount in launch_info.mounts):
            try:
                _mount(None, "/", None, MS_SLAVE | MS_REC, None)
            except OSError as error:
                raise LaunchError(f"Failed to mark '/' as rslave: {strerror(error)}") from None
        for mount in launch_info.mounts:
            _apply_mount(mount)
        for command in launch_info.pre_exec_commands:
            _run_pre_exec_command(command)
    if launch_info.HasField("working_directory"):
        directory = launch_info.working_directory
        try:
            os.chdir(directory)
        except OSError as error:
            raise LaunchError(
                f"Failed to change the working directory to '{directory}': {strerror(error)}"
            ) from None


def _validate(launch_info: ContainerLaunchInfo) -> None:
    """Refuse what this launcher cannot do rather than silently run the command without it."""
    unsupported = []
    if launch_info.HasField("rootfs"):
        unsupported.append("rootfs")
    if launch_info.HasField("user"):
        unsupported.append("user")
    if launch_info.HasField("command"):
        unsupported.append("command")
    if launch_info.enter_namespaces:
        unsupported.append("enter_namespaces")
    unsupported += [
        f"clone_namespaces ({namespace:#x})"
        for namespace in launch_info.clone_namespaces
        if namespace != CLONE_NEWNS
    ]
    if unsupported:
        raise LaunchError(
            f"Unsupported launch info: {', '.join(unsupported)}; this launcher applies only "
            "clone_namespaces (CLONE_NEWNS), mounts, pre_exec_commands and working_directory"
        )
    for command in launch_info.pre_exec_commands:
        if not command.HasField("value"):
            raise LaunchError("The 'value' of a pre-exec command is not specified")


def _needs_mount_namespace(launch_info: ContainerLaunchInfo) -> bool:
    # Mounts or mount commands without a namespace of their own would change the host's.
    return (
        CLONE_NEWNS in launch_info.clone_namespaces
        or bool(launch_info.mounts)
        or bool(launch_info.pre_exec_commands)
    )


def _apply_mount(mount: ContainerMountInfo) -> None:
    source = mount.source if mount.HasField("source") else None
    fstype = mount.type if mount.HasField("type") else None
    options = mount.options if mount.HasField("options") else None
    shown = source if source is not None else (fstype or "none")
    try:
        _mount(source, mount.target, fstype, mount.flags, options)
    except OSError as error:
        raise LaunchError(
            f"Failed to mount '{shown}' at '{mount.target}': {strerror(error)}"
        ) from None
    if mount.flags & MS_BIND and mount.flags & MS_RDONLY:
        # Keep the bind's nosuid/nodev/noexec/atime flags, which a remount would otherwise
        # clear (and cannot, with EPERM, where they are locked), as `mount -o remount,bind,ro`
        # does: both launch styles then give the same mount.
        try:
            kept = _mount_flags(mount.target)
            _mount(None, mount.target, None, mount.flags | MS_REMOUNT | kept, options)
        except OSError as error:
            raise LaunchError(
                f"Failed to remount '{shown}' at '{mount.target}' read-only: {strerror(error)}"
            ) from None


def _mount_flags(path: str) -> int:
    """The per-mount flags of the mount at ``path``, as ``mount(2)`` flags."""
    flags = os.statvfs(path).f_flag
    kept = 0
    for st_flag, ms_flag in (
        (os.ST_NOSUID, MS_NOSUID),
        (os.ST_NODEV, MS_NODEV),
        (os.ST_NOEXEC, MS_NOEXEC),
        (os.ST_NOATIME, MS_NOATIME),
        (os.ST_NODIRATIME, MS_NODIRATIME),
        (os.ST_RELATIME, MS_RELATIME),
    ):
        if flags & st_flag:
            kept |= ms_flag
    return kept


def _run_pre_exec_command(command: CommandInfo) -> None:
    """Run one pre-exec command to completion, with the launcher's environment."""
    if command.shell:
        argv = ["/bin/sh", "-c", command.value]
        shown = command.value
    else:
        argv = list(command.arguments) or [command.value]
        shown = shlex.join(argv)
    try:
        # stdin is not the task's to consume; the output is diagnostics, kept off its stdout.
        done = subprocess.run(
            argv,
            executable=None if command.shell else command.value,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
    except OSError as error:
        raise LaunchError(
            f"Failed to execute pre-exec command '{shown}': {strerror(error)}"
        ) from None
    output = done.stdout.decode(errors="replace").strip()
    if done.returncode != 0:
        status = (
            f"terminated with signal {signal.Signals(-done.returncode).name}"
            if done.returncode < 0
            else f"exited with status {done.returncode}"
        )
        raise LaunchError(
            f"Failed to execute pre-exec command '{shown}': {status}"
            + (f": {output}" if output else "")
        )
    if output:
        print(output, file=sys.stderr, flush=True)


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.unshare.argtypes = [ctypes.c_int]
    libc.unshare.restype = ctypes.c_int
    libc.mount.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    ]
    libc.mount.restype = ctypes.c_int
    return libc


def _unshare_mount_namespace() -> None:
    if _libc().unshare(CLONE_NEWNS) != 0:
        error = ctypes.get_errno()
        hint = " (the launcher must be single-threaded)" if error == errno.EINVAL else ""
        raise LaunchError(f"Failed to unshare the mount namespace: {os.strerror(error)}{hint}")


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, options: str | None
) -> None:
    """``mount(2)``; raises :class:`OSError` with the errno."""
    result = _libc().mount(
        None if source is None else os.fsencode(source),
        os.fsencode(target),
        None if fstype is None else os.fsencode(fstype),
        flags,
        None if options is None else os.fsencode(options),
    )
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


# -- the launcher process ----------------------------------------------------------------

_USAGE = (
    "usage: python -m isolator.launcher [--launch-info=JSON] [--environment-fd=FD] "
    "[--] COMMAND [ARG]..."
)


def main(args: Sequence[str] | None = None) -> int:
    """The launcher process: apply the launch info, then exec; returns only on failure."""
    try:
        launch_info, environment, argv = _parse(list(sys.argv[1:] if args is None else args))
        if launch_info is not None:
            apply_launch_info(launch_info)
    except LaunchError as error:
        return _fail(EXIT_LAUNCH_FAILURE, str(error))
    except Exception:  # A bug here must not pass for the command's own status.
        traceback.print_exc()
        return _fail(EXIT_LAUNCH_FAILURE, "The launcher failed unexpectedly")
    return _exec(argv, environment)


def _parse(
    args: list[str],
) -> tuple[ContainerLaunchInfo | None, dict[str, str] | None, list[str]]:
    launch_info: ContainerLaunchInfo | None = None
    environment: dict[str, str] | None = None
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option == "--":
            break
        if option in ("-h", "--help"):
            print(_USAGE)
            raise SystemExit(0)
        name, has_value, value = option.partition("=")
        if name not in ("--launch-info", "--environment-fd"):
            raise LaunchError(f"Unknown option '{name}'\n{_USAGE}")
        if not has_value:
            if not args:
                raise LaunchError(f"Option '{name}' needs a value\n{_USAGE}")
            value = args.pop(0)
        if name == "--launch-info":
            try:
                launch_info = json_format.Parse(value, ContainerLaunchInfo())
            except json_format.ParseError as error:
                raise LaunchError(f"Failed to parse the launch info: {error}") from None
        else:
            environment = _read_environment(value)
    if not args:
        raise LaunchError(f"No command to execute\n{_USAGE}")
    return launch_info, environment, args


def _read_environment(fd_text: str) -> dict[str, str]:
    try:
        with open(int(fd_text), "rb") as pipe:
            environment = json.loads(pipe.read())
    except (ValueError, OSError) as error:
        raise LaunchError(f"Failed to read the environment from fd {fd_text}: {error}") from None
    if not isinstance(environment, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in environment.items()
    ):
        raise LaunchError(f"The environment on fd {fd_text} is not an object of strings")
    return environment


def _exec(argv: list[str], environment: dict[str, str] | None) -> int:
    """Exec the command; returns the launcher's exit status only if that fails."""
    # Python ignores these; an ignored signal stays ignored across exec.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, os.environ if environment is None else environment)
    except FileNotFoundError as error:
        return _fail(EXIT_COMMAND_NOT_FOUND, f"Failed to execute '{argv[0]}': {strerror(error)}")
    except OSError as error:
        return _fail(EXIT_CANNOT_EXECUTE, f"Failed to execute '{argv[0]}': {strerror(error)}")


def _fail(code: int, message: str) -> int:
    print(message, file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
