"""Short builders for the Mesos messages an embedder hands to the isolator.

Mesos's tests have ``createDockerVolume`` and friends for the same reason: the protobuf
spelling of "a Docker volume at this path" is long and easy to get subtly wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
