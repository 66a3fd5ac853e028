"""Which Docker volumes a container asks for: read from its config and checked as Mesos's
``prepare`` checks them, before anything touches the disk or a driver."""

from __future__ import annotations

import logging

from isolator.errors import IsolatorError
from isolator.flags import Flags
from isolator.launch_info import VolumeMount, mount_target
from isolator.paths import format_container_id
from isolator.protos import ContainerConfig, ContainerID, ContainerInfo, Volume
from isolator.state import VolumeKey

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
    types are left to their own isolators. Raises ``IsolatorError`` with Mesos's texts.
    """
    info = container_info(config)
    if info is None:
        return []
    if info.type != ContainerInfo.MESOS:
        raise IsolatorError("Can only prepare docker volume driver for a MESOS container")
    mounts: list[VolumeMount] = []
    seen: set[VolumeKey] = set()
    for volume in info.volumes:
        if not volume.HasField("source"):
            continue
        if volume.source.type != Volume.Source.DOCKER_VOLUME:
            logger.debug(
                "Ignored volume type '%s' for container %s",
                Volume.Source.Type.Name(volume.source.type),
                format_container_id(container_id),
            )
            continue
        docker_volume = volume.source.docker_volume
        if not docker_volume.HasField("driver"):
            raise IsolatorError(
                f"The volume driver is not specified for volume '{docker_volume.name}' "
                f"with container {format_container_id(container_id)}"
            )
        key = VolumeKey(docker_volume.driver, docker_volume.name)
        if key in seen:
            raise IsolatorError(
                f"Found duplicate docker volume with driver '{key.driver}' and name '{key.name}'"
            )
        options = {p.key: p.value for p in docker_volume.driver_options.parameter}
        target = mount_target(volume.container_path, config, flags)
        mounts.append(VolumeMount(key, options, target, volume.mode == Volume.RO))
        seen.add(key)
    return mounts
