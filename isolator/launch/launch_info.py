"""What a prepared container needs from the launcher: where each volume goes inside it,
and the ``ContainerLaunchInfo`` that says so (Mesos's ``_prepare`` continuation).

Pure functions of the container's config, the flags and the mount points the driver
returned, so every rule here is testable without an actor or a driver.
"""

from __future__ import annotations

import logging
import os
import pwd
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeGuard

from isolator.common.container_ids import join
from isolator.common.errors import IsolatorError, strerror
from isolator.common.linux import CLONE_NEWNS, MS_BIND, MS_RDONLY, MS_REC
from isolator.common.names import printable
from isolator.config.flags import Flags
from isolator.docker.state import VolumeKey
from isolator.launch.confine import (
    ConfinementError,
    Resolved,
    container_path_problem,
    resolve_in_root,
)
from isolator.protos import CommandInfo, ContainerConfig, ContainerLaunchInfo

__all__ = [
    "VolumeMount",
    "build_launch_info",
    "check_container_path",
    "chown",
    "mount_target",
    "needs_chown",
]

logger = logging.getLogger("isolator")


@dataclass(frozen=True)
class VolumeMount:
    """One Docker volume a container asked for, with its target resolved on the host."""

    volume: VolumeKey
    options: Mapping[str, str]
    target: str
    read_only: bool


def check_container_path(container_path: str, container: str | None = None) -> None:
    """Refuse a ``container_path`` that is no place for a volume, before anything is made.

    ``container`` (already printable) names the container in the message.
    """
    problem = container_path_problem(container_path)
    if problem is not None:
        owner = "" if container is None else f" for container {container}"
        raise IsolatorError(
            f"Invalid container path '{printable(container_path)}'{owner}: {problem}"
        )


def mount_target(container_path: str, config: ContainerConfig, flags: Flags) -> str:
    """Where the volume is mounted, as the launcher will see it; creates missing directories.

    As Mesos: an absolute path without a rootfs must exist on the host; with a rootfs it
    is made inside the rootfs. A relative path lives in the sandbox; with a rootfs the
    host sandbox is bind mounted into it later, so the directory is made in the host
    sandbox and the target is the sandbox's path inside the rootfs.

    Unlike Mesos, a task's links never lead out: inside a rootfs they resolve as if it were
    ``/``, inside the sandbox a link that leaves it is refused (``confine``). The answer is
    the resolved path, free of links, so the launcher can refuse any link found there later.
    """
    check_container_path(container_path)
    rootfs = config.rootfs if config.HasField("rootfs") else None
    if container_path.startswith("/"):
        if rootfs is None:
            if not os.path.lexists(container_path):
                raise IsolatorError(
                    f"Absolute container path '{printable(container_path)}' does not exist"
                )
            # Where mount(2) would land anyway; the host's own links are not the task's.
            return os.path.realpath(container_path)
        return _make_mount_dir(rootfs, container_path, beneath=False).path
    mount_point = _make_mount_dir(config.directory, container_path, beneath=True)
    if rootfs is None:
        return mount_point.path
    return join(os.path.realpath(rootfs), flags.sandbox_directory, mount_point.relative)


def _make_mount_dir(root: str, container_path: str, *, beneath: bool) -> Resolved:
    try:
        return resolve_in_root(root, container_path, beneath=beneath)
    except (OSError, ConfinementError) as error:
        raise IsolatorError(
            f"Failed to create the target of the mount at "
            f"'{printable(join(root, container_path))}': {strerror(error)}"
        ) from error


def build_launch_info(
    mounts: Sequence[VolumeMount], sources: Sequence[str], *, flags: Flags, user: str | None
) -> ContainerLaunchInfo:
    """A new mount namespace with each volume's ``source`` bound at its target.

    With ``docker_volume_chown`` a non-root ``user`` is given each volume's root first.
    """
    launch_info = ContainerLaunchInfo()
    launch_info.clone_namespaces.append(CLONE_NEWNS)
    for mount, source in zip(mounts, sources, strict=True):
        _check_source(mount.volume, source)
        if needs_chown(user, flags):
            chown(user, source)
        if flags.docker_volume_launch_style == "pre_exec_commands":
            _add_mount_commands(launch_info, source, mount)
        else:
            launch_info.mounts.add(
                source=source,
                target=mount.target,
                flags=MS_BIND | MS_REC | (MS_RDONLY if mount.read_only else 0),
            )
    return launch_info


def needs_chown(user: str | None, flags: Flags) -> TypeGuard[str]:
    """Whether ``build_launch_info`` gives the volumes' roots to ``user`` (Mesos's
    ``docker_volume_chown``, for a task user other than root)."""
    return flags.docker_volume_chown and user is not None and user != "root"


def _check_source(volume: VolumeKey, source: str) -> None:
    """Refuse a mount point no launcher could bind safely: not a path, or not an absolute one."""
    problem = None
    if "\0" in source:
        problem = "must not contain a NUL character"
    elif not source.startswith("/"):
        problem = "must be an absolute path"
    if problem is not None:
        raise IsolatorError(
            f"Invalid mount point '{printable(source)}' from driver '{printable(volume.driver)}' "
            f"for volume '{printable(volume.name)}': {problem}"
        )


def chown(user: str, source: str) -> None:
    """Give ``source`` (a volume's root) to ``user``, as Mesos's ``docker_volume_chown``.

    Only a real directory, never ``/`` nor a link: a driver's mount point a task could point
    at ``/etc`` (or anything a link names) would otherwise be handed to the task's user.
    """
    logger.info(
        "Changing the ownership of docker volume '%s' to user '%s'",
        printable(source),
        printable(user),
    )
    failure = f"Failed to set '{printable(user)}' as the docker volume '{printable(source)}' owner"
    try:
        entry = pwd.getpwnam(user)
    except KeyError as error:
        raise IsolatorError(f"{failure}: No such user '{printable(user)}'") from error
    try:
        problem = _chown_directory(source, entry.pw_uid, entry.pw_gid)
    except (OSError, ValueError) as error:
        raise IsolatorError(f"{failure}: {strerror(error)}") from error
    if problem is not None:
        raise IsolatorError(f"{failure}: {problem}")


def _chown_directory(path: str, uid: int, gid: int) -> str | None:
    """``fchown`` the directory at ``path`` through a descriptor that followed no link there.

    Returns why it refused, or ``None`` once done.
    """
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return "it is a symbolic link, not a directory"
    if not stat.S_ISDIR(mode):
        return "it is not a directory"
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        opened, root = os.fstat(fd), os.stat("/")
        # Same inode as "/": "/", "//", "/tmp/.." or a bind mount of the root.
        if (opened.st_dev, opened.st_ino) == (root.st_dev, root.st_ino):
            return "it is the root directory '/'"
        os.fchown(fd, uid, gid)
    finally:
        os.close(fd)
    return None


def _add_mount_commands(launch_info: ContainerLaunchInfo, source: str, mount: VolumeMount) -> None:
    """The original isolator's launch form: ``mount`` commands run before the task."""
    launch_info.pre_exec_commands.append(
        CommandInfo(
            shell=False,
            value="mount",
            arguments=["mount", "-n", "--rbind", source, mount.target],
        )
    )
    if mount.read_only:
        launch_info.pre_exec_commands.append(
            CommandInfo(
                shell=False,
                value="mount",
                arguments=["mount", "-n", "-o", "remount,bind,ro", mount.target],
            )
        )
