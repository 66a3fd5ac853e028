"""Applying a ``ContainerLaunchInfo`` to the calling process, right before it execs a task.

This is the part of Mesos's ``mesos-containerizer launch`` that the docker/volume isolator
relies on: a mount namespace of its own, ``/`` marked recursively *slave*, the bind mounts
(a read-only bind is a bind followed by a read-only remount, as stout's ``fs::mount``, and
recursively read-only when the bind is recursive, submounts included), the
pre-exec commands, the working directory. ``isolator.launcher`` runs it in a fresh process.

It applies only what it can apply safely: no string with a NUL, and no mount through a link
(``confine.open_no_symlinks``). ``mount`` pre-exec commands take paths as strings and cannot
be guarded this way; the ``mounts`` launch style is the safe one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shlex
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator

from isolator.common.errors import strerror
from isolator.common.linux import (
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
    libc,
)
from isolator.common.names import printable
from isolator.launch.confine import ConfinementError, open_no_symlinks
from isolator.launch.launch_error import LaunchError
from isolator.protos import CommandInfo, ContainerLaunchInfo, ContainerMountInfo

__all__ = ["LaunchError", "apply_launch_info", "validate_launch_info"]


def apply_launch_info(launch_info: ContainerLaunchInfo) -> None:
    """Apply ``launch_info`` to the calling process: namespace, mounts, commands, directory.

    Meant for the launcher process right before exec (it changes the caller's mount
    namespace and must be called from a single-threaded process). Raises :class:`LaunchError`.
    """
    validate_launch_info(launch_info)
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
                f"Failed to change the working directory to '{printable(directory)}': "
                f"{strerror(error)}"
            ) from None


def validate_launch_info(launch_info: ContainerLaunchInfo) -> None:
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
    for what, value in _text_fields(launch_info):
        if "\0" in value:
            # ctypes and exec would cut the string there: 'tgt\0/../../etc' mounts at 'tgt'.
            raise LaunchError(
                f"Invalid launch info: the {what} '{printable(value)}' contains a NUL character"
            )


def _text_fields(launch_info: ContainerLaunchInfo) -> Iterator[tuple[str, str]]:
    """Every string this launcher hands to the kernel, with what it is."""
    for mount in launch_info.mounts:
        yield "mount target", mount.target
        for name in ("source", "type", "options"):
            if mount.HasField(name):
                yield f"mount {name}", getattr(mount, name)
    for command in launch_info.pre_exec_commands:
        yield "pre-exec command", command.value
        for argument in command.arguments:
            yield "pre-exec command argument", argument
    if launch_info.HasField("working_directory"):
        yield "working directory", launch_info.working_directory


def _needs_mount_namespace(launch_info: ContainerLaunchInfo) -> bool:
    # Mounts or mount commands without a namespace of their own would change the host's.
    return (
        CLONE_NEWNS in launch_info.clone_namespaces
        or bool(launch_info.mounts)
        or bool(launch_info.pre_exec_commands)
    )


def _apply_mount(mount: ContainerMountInfo) -> None:
    """Mount through descriptors opened without following a link, as runc does.

    The target was resolved by ``prepare`` and has no link along it; a link there now (or in
    a volume mounted just before) was planted since, and mount(2) would follow it anywhere.
    """
    source = mount.source if mount.HasField("source") else None
    fstype = mount.type if mount.HasField("type") else None
    options = mount.options if mount.HasField("options") else None
    shown = source if source is not None else (fstype or "none")
    where = f"'{printable(shown)}' at '{printable(mount.target)}'"
    failure = f"Failed to mount {where}"
    bind = bool(mount.flags & MS_BIND)
    with contextlib.ExitStack() as closing:
        target_fd = closing.enter_context(_opened(mount.target, failure, confined=True))
        source_fd = None
        if bind and source is not None:
            source_fd = closing.enter_context(_opened(source, failure, confined=False))
            _check_kinds(source_fd, target_fd, failure)
        try:
            _mount(
                source if source_fd is None else _fd_path(source_fd),
                _fd_path(target_fd),
                fstype,
                mount.flags,
                options,
            )
        except OSError as error:
            raise LaunchError(f"{failure}: {strerror(error)}") from None
        if bind and mount.flags & MS_RDONLY:
            _remount_read_only(mount, source_fd, f"Failed to remount {where}")


def _remount_read_only(mount: ContainerMountInfo, source_fd: int | None, failure: str) -> None:
    """Make the new bind read-only; the kernel ignores ``MS_RDONLY`` on a new bind."""
    options = mount.options if mount.HasField("options") else None
    # The target's old descriptor names the directory under the new mount: open it again.
    with _opened(mount.target, failure, confined=True) as mounted:
        if source_fd is not None and not _same_inode(mounted, source_fd):
            raise LaunchError(f"{failure} read-only: the target changed while it was mounted")
        # Keep the bind's nosuid/nodev/noexec/atime flags, which a remount would otherwise
        # clear (and cannot, with EPERM, where they are locked), as `mount -o remount,bind,ro`
        # does: both launch styles then give the same mount.
        try:
            kept = _mount_flags(os.fstatvfs(mounted).f_flag)
            _mount(None, _fd_path(mounted), None, mount.flags | MS_REMOUNT | kept, options)
            if mount.flags & MS_REC:
                # The remount reaches the top mount only: submounts the rbind carried
                # (a volume's own mounts) would stay writable.
                _set_read_only_recursively(mounted)
        except OSError as error:
            raise LaunchError(f"{failure} read-only: {strerror(error)}") from None


@contextlib.contextmanager
def _opened(path: str, failure: str, *, confined: bool) -> Iterator[int]:
    """An ``O_PATH`` descriptor of ``path``, closed at the end of the block.

    ``confined``: no link anywhere along it (a target). Otherwise (a bind source, the
    driver's path) only its last component must not be a link.
    """
    try:
        if confined:
            fd = open_no_symlinks(path)
        else:
            fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                os.close(fd)
                raise ConfinementError(
                    f"'{printable(path)}' is a symbolic link; refusing to follow it"
                )
    except ConfinementError as error:
        raise LaunchError(f"{failure}: {error}") from None
    except OSError as error:
        raise LaunchError(f"{failure}: {strerror(error)}") from None
    try:
        yield fd
    finally:
        os.close(fd)


def _check_kinds(source_fd: int, target_fd: int, failure: str) -> None:
    """A bind puts a directory on a directory and a file on a file; say so before mount(2)."""
    source_is_dir = stat.S_ISDIR(os.fstat(source_fd).st_mode)
    target_is_dir = stat.S_ISDIR(os.fstat(target_fd).st_mode)
    if source_is_dir != target_is_dir:
        kinds = ("a directory", "not one") if source_is_dir else ("not a directory", "one")
        raise LaunchError(f"{failure}: the source is {kinds[0]} but the target is {kinds[1]}")


def _same_inode(first: int, second: int) -> bool:
    a, b = os.fstat(first), os.fstat(second)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _fd_path(fd: int) -> str:
    """The magic link to ``fd``: mount(2) acts on what the descriptor holds, not on a name."""
    return f"/proc/self/fd/{fd}"


def _mount_flags(flags: int) -> int:
    """``statvfs`` per-mount flags as ``mount(2)`` flags."""
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
        shown = printable(command.value)
    else:
        argv = list(command.arguments) or [command.value]
        shown = printable(shlex.join(argv))
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


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


_SYS_MOUNT_SETATTR = 442  # the same number on every architecture (new syscalls are unified)
_MOUNT_ATTR_RDONLY = 0x1
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000


def _set_read_only_recursively(fd: int) -> None:
    """``mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, {MOUNT_ATTR_RDONLY})``.

    Linux 5.12 and later; an older kernel fails with ENOSYS, and the mount is refused rather
    than left writable below.
    """
    attr = _MountAttr(attr_set=_MOUNT_ATTR_RDONLY)
    result = libc().syscall(
        _SYS_MOUNT_SETATTR,
        ctypes.c_int(fd),
        ctypes.c_char_p(b""),
        ctypes.c_uint(_AT_EMPTY_PATH | _AT_RECURSIVE),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{os.strerror(error)} (making the submounts read-only)")


def _unshare_mount_namespace() -> None:
    if libc().unshare(CLONE_NEWNS) != 0:
        error = ctypes.get_errno()
        hint = " (the launcher must be single-threaded)" if error == errno.EINVAL else ""
        raise LaunchError(f"Failed to unshare the mount namespace: {os.strerror(error)}{hint}")


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, options: str | None
) -> None:
    """``mount(2)``; raises :class:`OSError` with the errno."""
    result = libc().mount(
        None if source is None else os.fsencode(source),
        os.fsencode(target),
        None if fstype is None else os.fsencode(fstype),
        flags,
        None if options is None else os.fsencode(options),
    )
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
