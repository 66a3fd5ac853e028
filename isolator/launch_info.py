"""What a prepared container needs from the launcher: where each volume goes inside it,
and the ``ContainerLaunchInfo`` that says so (Mesos's ``_prepare`` continuation).

Pure functions of the container's config, the flags and the mount points the driver
returned, so every rule here is testable without an actor or a driver.
"""

from __future__ import annotations

import logging
import os
import pwd
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from isolator.errors import IsolatorError, strerror
from isolator.flags import Flags
from isolator.linux import CLONE_NEWNS, MS_BIND, MS_RDONLY, MS_REC
from isolator.paths import join
from isolator.protos import CommandInfo, ContainerConfig, ContainerLaunchInfo
from isolator.state import VolumeKey

__all__ = ["VolumeMount", "build_launch_info", "chown", "mount_target"]

logger = logging.getLogger("isolator")


@dataclass(frozen=True)
class VolumeMount:
    """One Docker volume a container asked for, with its target resolved on the host."""

    volume: VolumeKey
    options: Mapping[str, str]
    target: str
    read_only: bool


def mount_target(container_path: str, config: ContainerConfig, flags: Flags) -> str:
    """Where the volume is mounted, as the launcher will see it; creates missing directories.

    As Mesos: an absolute path without a rootfs must exist on the host; with a rootfs it
    is made inside the rootfs. A relative path lives in the sandbox; with a rootfs the
    host sandbox is bind mounted into it later, so the directory is made in the host
    sandbox and the target is the sandbox's path inside the rootfs.
    """
    rootfs = config.rootfs if config.HasField("rootfs") else None
    if container_path.startswith("/"):
        if rootfs is None:
            if not os.path.lexists(container_path):
                raise IsolatorError(f"Absolute container path '{container_path}' does not exist")
            return container_path
        target = join(rootfs, container_path)
        _make_mount_dir(target)
        return target
    mount_point = join(config.directory, container_path)
    _make_mount_dir(mount_point)
    if rootfs is None:
        return mount_point
    return join(rootfs, flags.sandbox_directory, container_path)


def _make_mount_dir(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise IsolatorError(
            f"Failed to create the target of the mount at '{path}': {strerror(error)}"
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
        if flags.docker_volume_chown and user is not None and user != "root":
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


def chown(user: str, source: str) -> None:
    """Give ``source`` (a volume's root) to ``user``, as Mesos's ``docker_volume_chown``."""
    logger.info("Changing the ownership of docker volume '%s' to user '%s'", source, user)
    try:
        entry = pwd.getpwnam(user)
    except KeyError as error:
        raise IsolatorError(
            f"Failed to set '{user}' as the docker volume '{source}' owner: "
            f"No such user '{user}'"
        ) from error
    try:
        os.lchown(source, entry.pw_uid, entry.pw_gid)
    except OSError as error:
        raise IsolatorError(
            f"Failed to set '{user}' as the docker volume '{source}' owner: {strerror(error)}"
        ) from error


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
