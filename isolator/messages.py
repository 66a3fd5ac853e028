"""Short builders for the Mesos messages an embedder hands to the isolator.

Mesos's tests have ``createDockerVolume`` and friends for the same reason: the protobuf
spelling of "a Docker volume at this path" is long and easy to get subtly wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from google.protobuf.message import Message

from isolator.protos import (
    CommandInfo,
    ContainerConfig,
    ContainerID,
    ContainerInfo,
    ExecutorInfo,
    Volume,
)

__all__ = [
    "container_config",
    "container_id",
    "copy",
    "csi_volume",
    "docker_volume",
    "executor_config",
]

M = TypeVar("M", bound=Message)


def docker_volume(
    driver: str | None,
    name: str,
    container_path: str,
    options: Mapping[str, str] | None = None,
    *,
    read_only: bool = False,
) -> Volume:
    """A volume of ``driver`` named ``name``, seen by the container at ``container_path``."""
    volume = Volume(container_path=container_path, mode=Volume.RO if read_only else Volume.RW)
    volume.source.type = Volume.Source.DOCKER_VOLUME
    if driver is not None:
        volume.source.docker_volume.driver = driver
    volume.source.docker_volume.name = name
    for key, value in (options or {}).items():
        volume.source.docker_volume.driver_options.parameter.add(key=key, value=value)
    return volume


def csi_volume(
    plugin_name: str,
    volume_id: str,
    container_path: str,
    *,
    mode: str | Volume.Mode.ValueType = "RW",
    access_mode: str | int = "SINGLE_NODE_WRITER",
    fs_type: str = "",
    mount_flags: Iterable[str] = (),
    readonly: bool = False,
    volume_context: Mapping[str, str] | None = None,
) -> Volume:
    """A pre-provisioned CSI volume ``volume_id`` of the plugin whose type is ``plugin_name``,
    mounted (a filesystem, ``fs_type`` empty for the plugin's default) at ``container_path``.

    ``mode`` is ``"RW"``/``"RO"`` (or ``Volume.RW``/``Volume.RO``), ``access_mode`` a CSI
    access mode's name or number; ``readonly`` publishes it read-only (also implied by RO).
    Raises ``ValueError`` for an unknown mode or access mode name.
    """
    source_type = Volume.Source.CSIVolume
    access = source_type.VolumeCapability.AccessMode
    volume = Volume(
        container_path=container_path,
        mode=Volume.Mode.Value(mode) if isinstance(mode, str) else mode,
    )
    volume.source.type = Volume.Source.CSI_VOLUME
    csi = volume.source.csi_volume
    csi.plugin_name = plugin_name
    provisioning = csi.static_provisioning
    provisioning.volume_id = volume_id
    capability = provisioning.volume_capability
    capability.mount.SetInParent()
    if fs_type:
        capability.mount.fs_type = fs_type
    capability.mount.mount_flags.extend(mount_flags)
    capability.access_mode.mode = (
        access.Mode.Value(access_mode)
        if isinstance(access_mode, str)
        else access.Mode.ValueType(access_mode)
    )
    if readonly:
        provisioning.readonly = True
    for key, value in (volume_context or {}).items():
        provisioning.volume_context[key] = value
    return volume


def container_config(
    directory: str,
    volumes: Sequence[Volume],
    *,
    command: str = "true",
    rootfs: str | None = None,
    user: str | None = None,
    container_type: ContainerInfo.Type.ValueType = ContainerInfo.MESOS,
) -> ContainerConfig:
    """A container with sandbox ``directory`` and ``volumes`` (Mesos 1.5+ form)."""
    config = ContainerConfig(directory=directory, command_info=CommandInfo(value=command))
    config.container_info.type = container_type
    config.container_info.volumes.extend(volumes)
    if rootfs is not None:
        config.rootfs = rootfs
    if user is not None:
        config.user = user
    return config


def executor_config(directory: str, volumes: Sequence[Volume]) -> ContainerConfig:
    """The original isolator's form: the volumes in ``executor_info.container``."""
    executor = ExecutorInfo(command=CommandInfo(value="true"))
    executor.executor_id.value = "executor"
    executor.container.type = ContainerInfo.MESOS
    executor.container.volumes.extend(volumes)
    return ContainerConfig(
        directory=directory, command_info=CommandInfo(value="true"), executor_info=executor
    )


def container_id(value: str, parent: ContainerID | None = None) -> ContainerID:
    """A container ID; pass ``parent`` for a nested container (printed ``parent.value``)."""
    cid = ContainerID(value=value)
    if parent is not None:
        cid.parent.CopyFrom(parent)
    return cid


def copy(message: M, *, expected: type[M] | None = None, name: str = "message") -> M:
    """A deep copy of a message, so the isolator never shares one with its caller.

    With ``expected``, anything else raises a ``TypeError`` naming the argument.
    """
    if expected is not None and not isinstance(message, expected):
        raise TypeError(
            f"{name} must be a {expected.__name__} message, not {type(message).__name__}"
        )
    duplicate = type(message)()
    duplicate.CopyFrom(message)
    return duplicate
