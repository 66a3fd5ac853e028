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
   bind), as stout's ``fs::mount`` does, then, for a recursive bind, ``mount_setattr`` with
   ``MOUNT_ATTR_RDONLY`` and ``AT_RECURSIVE``, so the submounts are read-only too. Each
   mount goes through ``O_PATH`` descriptors (``/proc/self/fd/N``, as runc): the target is
   opened without following a link at any component and a bind's source without following
   one at its last, so a link planted after ``prepare`` (or inside a volume mounted just
   before) is refused, not followed,
4. runs ``pre_exec_commands`` in order (non-shell: ``value`` exec'd with ``arguments`` as its
   argv; shell: ``/bin/sh -c value``); any non-zero exit is a failure,
5. changes to ``working_directory`` (after the mounts, so it may lie inside a volume), and
6. execs the command, which thus keeps the launcher's pid, stdio and exit status.

Steps 1 to 5 are :mod:`isolator.launch.mounting`; this module starts the process and execs.
With a ``rootfs``, the launcher instead runs the command in that root filesystem under an
OCI runtime (runc, crun): :mod:`isolator.launch.oci_launch`, ``docs/oci.md``.

How the child gets its inputs: the launch info goes on the command line as JSON
(``--launch-info=...``, as Mesos passes ``--launch_info`` to its helper; it holds only paths
and flags); the command's environment, which may hold secrets, goes through an inherited pipe
(``--environment-fd=N``) so it never shows in ``/proc/PID/cmdline``. The launcher itself runs
with the caller's environment so it imports this package exactly as the caller did.

Exit codes of the launcher process when it fails before exec (the message is on stderr):
:data:`EXIT_LAUNCH_FAILURE` (125) for any launcher failure (bad launch info, e.g. a NUL in
any string, which C would silently cut; not root; a link on a mount's path; a failed mount or
pre-exec command; a bad working directory), :data:`EXIT_CANNOT_EXECUTE` (126) when the
command exists but cannot be exec'd and :data:`EXIT_COMMAND_NOT_FOUND` (127) when it does not
exist; the conventions of ``env``, ``timeout`` and the shell. Any other status is the command's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from google.protobuf import json_format

import isolator
from isolator.common.errors import strerror
from isolator.common.names import printable
from isolator.launch.launcher_help import HELP as _HELP
from isolator.launch.launcher_help import USAGE as _USAGE
from isolator.launch.mounting import LaunchError, apply_launch_info, validate_launch_info
from isolator.protos import ContainerLaunchInfo

if TYPE_CHECKING:
    from isolator.launch.oci_launch import RootfsProcess

__all__ = [
    "EXIT_CANNOT_EXECUTE",
    "EXIT_COMMAND_NOT_FOUND",
    "EXIT_LAUNCH_FAILURE",
    "LaunchError",
    "RootfsProcess",
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


# -- the parent side ---------------------------------------------------------------------


def launcher_command(
    launch_info: ContainerLaunchInfo | None,
    argv: Sequence[str],
    *,
    rootfs: Mapping[str, str] | None = None,
) -> list[str]:
    """The launcher's command line for ``argv``: to wrap it (e.g. in ``setpriv``) or log it.

    ``rootfs``: the options :func:`isolator.launch.oci_launch.rootfs_options` made, for a
    container with its own root filesystem. Raises :class:`LaunchError` for a launch info
    this launcher cannot apply and :class:`ValueError` for an empty command.
    """
    if not argv:
        raise ValueError("No command to launch")
    command = [sys.executable, "-m", "isolator.launcher"]
    command += [f"{name}={value}" for name, value in (rootfs or {}).items()]
    if launch_info is not None:
        if rootfs is None:
            validate_launch_info(launch_info)
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
    rootfs: str | os.PathLike[str] | None = None,
    sandbox: str | os.PathLike[str] | None = None,
    runtime: str | None = None,
    runtime_root: str | os.PathLike[str] | None = None,
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

    With ``rootfs`` (or the launch info's), the command runs inside that root filesystem
    under an OCI runtime (``runtime``: ``None`` for ``runc``, ``"crun"``, or a binary's
    absolute path; ``runtime_root`` its ``--root``, by default
    ``/run/isolator/oci/<runtime>``), with ``sandbox`` bound at ``/mnt/mesos/sandbox``;
    ``cwd`` is then a path inside the container and the process a :class:`RootfsProcess`,
    whose exit status is the command's (see ``docs/oci.md``).
    """
    if cwd is not None:
        launch_info = _copy(launch_info)
        launch_info.working_directory = os.fspath(cwd)
    if any(option is not None for option in (rootfs, sandbox, runtime, runtime_root)):
        # Only here: a host launch (once per task) loads none of the OCI modules.
        from isolator.launch import oci_launch  # noqa: PLC0415

        options = oci_launch.rootfs_options(
            launch_info, rootfs=rootfs, sandbox=sandbox, runtime=runtime, runtime_root=runtime_root
        )
        assert options is not None  # None only without a rootfs, refused above
        return oci_launch.start(
            _copy(launch_info), argv, options, env=env, stdin=stdin, stdout=stdout, stderr=stderr
        )
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
    rootfs: str | os.PathLike[str] | None = None,
    sandbox: str | os.PathLike[str] | None = None,
    runtime: str | None = None,
    runtime_root: str | os.PathLike[str] | None = None,
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
        launch_info,
        argv,
        rootfs=rootfs,
        sandbox=sandbox,
        runtime=runtime,
        runtime_root=runtime_root,
        cwd=cwd,
        env=env,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
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


def _rootfs_process() -> type[subprocess.Popen[bytes]]:
    from isolator.launch.oci_launch import RootfsProcess  # noqa: PLC0415

    return RootfsProcess


def __getattr__(name: str) -> Any:
    """``RootfsProcess``, loaded on first use (see :func:`launch`)."""
    if name == "RootfsProcess":
        return _rootfs_process()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _copy(launch_info: ContainerLaunchInfo | None) -> ContainerLaunchInfo:
    copy = ContainerLaunchInfo()
    if launch_info is not None:
        copy.CopyFrom(launch_info)
    return copy


# -- the launcher process ----------------------------------------------------------------

_ROOTFS_OPTIONS = ("--rootfs", "--sandbox", "--runtime", "--runtime-root", "--container-id")


def main(args: Sequence[str] | None = None) -> int:
    """The launcher process: apply the launch info, then exec; returns only on failure."""
    try:
        launch_info, environment, argv, rootfs = _parse(
            list(sys.argv[1:] if args is None else args)
        )
        if rootfs:
            if "--rootfs" not in rootfs:
                raise LaunchError(f"The options {', '.join(rootfs)} need --rootfs\n{_USAGE}")
            from isolator.launch.oci_launch import launch_in_rootfs  # noqa: PLC0415

            return launch_in_rootfs(launch_info or ContainerLaunchInfo(), argv, rootfs, environment)
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
) -> tuple[ContainerLaunchInfo | None, dict[str, str] | None, list[str], dict[str, str]]:
    launch_info: ContainerLaunchInfo | None = None
    environment: dict[str, str] | None = None
    rootfs: dict[str, str] = {}
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option == "--":
            break
        _print_and_exit_if_asked(option)
        name, has_value, value = option.partition("=")
        if name not in ("--launch-info", "--environment-fd", *_ROOTFS_OPTIONS):
            raise LaunchError(f"Unknown option '{printable(name)}'\n{_USAGE}")
        if not has_value:
            if not args:
                raise LaunchError(f"Option '{name}' needs a value\n{_USAGE}")
            value = args.pop(0)
        if name in _ROOTFS_OPTIONS:
            rootfs[name] = value
        elif name == "--launch-info":
            try:
                launch_info = json_format.Parse(value, ContainerLaunchInfo())
            except json_format.ParseError as error:
                raise LaunchError(f"Failed to parse the launch info: {error}") from None
        else:
            environment = _read_environment(value)
    if not args:
        raise LaunchError(f"No command to execute\n{_USAGE}")
    return launch_info, environment, args, rootfs


def _print_and_exit_if_asked(option: str) -> None:
    """``--help`` and ``--version``: print, and exit 0."""
    if option in ("-h", "--help"):
        print(_HELP, end="")
        raise SystemExit(0)
    if option == "--version":
        print(f"isolator-launcher {isolator.__version__}")
        raise SystemExit(0)


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
    for key, value in environment.items():
        if "\0" in key or "\0" in value:
            raise LaunchError(
                f"The environment on fd {fd_text} has a NUL character in '{printable(key)}'"
            )
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
        return _fail(
            EXIT_COMMAND_NOT_FOUND, f"Failed to execute '{printable(argv[0])}': {strerror(error)}"
        )
    except OSError as error:
        return _fail(
            EXIT_CANNOT_EXECUTE, f"Failed to execute '{printable(argv[0])}': {strerror(error)}"
        )


def _fail(code: int, message: str) -> int:
    print(message, file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
