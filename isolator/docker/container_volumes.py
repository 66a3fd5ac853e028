"""Which Docker volumes a container asks for: read from its config and checked as Mesos's
``prepare`` checks them, before anything touches the disk or a driver."""

from __future__ import annotations

import logging

from isolator.common.container_ids import format_container_id
from isolator.common.errors import IsolatorError
from isolator.common.names import control_problem, printable
from isolator.config.flags import Flags
from isolator.docker.state import VolumeKey
from isolator.launch.launch_info import VolumeMount, check_container_path, mount_target
from isolator.protos import ContainerConfig, ContainerID, ContainerInfo, Volume

__all__ = ["container_info", "requested_mounts"]

logger = logging.getLogger("isolator")


def container_info(config: ContainerConfig) -> ContainerInfo | None:
    """The container's ``ContainerInfo``, where Mesos 1.5+ or an older agent put it."""
    if config.HasField("container_info"):
        return config.container_info
    # The original isolator read the executor's container (before Mesos 1.5).
    if config.HasField("executor_info") and config.executor_info.HasField("container"):
        return config.executor_info.container
    return None


def requested_mounts(
    container_id: ContainerID, config: ContainerConfig, flags: Flags
) -> list[VolumeMount]:
    """The container's Docker volumes in order, each with its target made ready.

    Empty when the container has no ``ContainerInfo`` or no Docker volume; other volume
    types are left to their own isolators. Every volume is checked before the first
    directory is made, so a refused container leaves nothing behind. Raises
    ``IsolatorError`` with Mesos's texts where Mesos has one.
    """
    info = container_info(config)
    if info is None:
        return []
    if info.type != ContainerInfo.MESOS:
        raise IsolatorError("Can only prepare docker volume driver for a MESOS container")
    container = format_container_id(container_id)
    volumes: list[Volume] = []
    seen: set[VolumeKey] = set()
    for volume in info.volumes:
        if not volume.HasField("source"):
            continue
        if volume.source.type != Volume.Source.DOCKER_VOLUME:
            logger.debug(
                "Ignored volume type '%s' for container %s",
                Volume.Source.Type.Name(volume.source.type),
                container,
            )
            continue
        key = _checked_volume(volume, container)
        if key in seen:
            raise IsolatorError(
                f"Found duplicate docker volume with driver '{key.driver}' and name '{key.name}'"
            )
        check_container_path(volume.container_path, container)
        volumes.append(volume)
        seen.add(key)
    return [_mount(volume, config, flags) for volume in volumes]


def _checked_volume(volume: Volume, container: str) -> VolumeKey:
    """The volume's key, once its driver, name and options are fit to pass to a driver."""
    docker_volume = volume.source.docker_volume
    if not docker_volume.HasField("driver"):
        raise IsolatorError(
            f"The volume driver is not specified for volume '{printable(docker_volume.name)}' "
            f"with container {container}"
        )
    fields = [
        ("docker volume driver", docker_volume.driver),
        ("docker volume name", docker_volume.name),
    ]
    for parameter in docker_volume.driver_options.parameter:
        fields.append(("docker volume driver option", parameter.key))
        fields.append((f"value of docker volume driver option '{parameter.key}'", parameter.value))
    for what, value in fields:
        problem = control_problem(value)
        if problem is not None:
            raise IsolatorError(
                f"Invalid {printable(what)} '{printable(value)}' for container {container}: "
                f"{problem}"
            )
    return VolumeKey(docker_volume.driver, docker_volume.name)


def _mount(volume: Volume, config: ContainerConfig, flags: Flags) -> VolumeMount:
    docker_volume = volume.source.docker_volume
    return VolumeMount(
        VolumeKey(docker_volume.driver, docker_volume.name),
        {p.key: p.value for p in docker_volume.driver_options.parameter},
        mount_target(volume.container_path, config, flags),
        volume.mode == Volume.RO,
    )
