"""Builders for the isolator tests, after Mesos's ``createDockerVolume`` and friends."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from isolator import DockerVolumeIsolator, Flags
from isolator.protos import (
    CommandInfo,
    ContainerConfig,
    ContainerID,
    ContainerInfo,
    ExecutorInfo,
    Volume,
)
from isolator.testing import RecordingDriverClient

WAIT = 10.0  # seconds a test waits on a future that must complete


def docker_volume(
    driver: str | None,
    name: str,
    container_path: str,
    options: Mapping[str, str] | None = None,
    *,
    read_only: bool = False,
) -> Volume:
    volume = Volume(container_path=container_path, mode=Volume.RO if read_only else Volume.RW)
    volume.source.type = Volume.Source.DOCKER_VOLUME
    if driver is not None:
        volume.source.docker_volume.driver = driver
    volume.source.docker_volume.name = name
    if options is not None:
        for key, value in options.items():
            volume.source.docker_volume.driver_options.parameter.add(key=key, value=value)
    return volume


def container_config(
    directory: str,
    volumes: list[Volume],
    *,
    rootfs: str | None = None,
    user: str | None = None,
    container_type: int = ContainerInfo.MESOS,
) -> ContainerConfig:
    config = ContainerConfig(directory=directory, command_info=CommandInfo(value="true"))
    config.container_info.type = container_type  # type: ignore[assignment]
    config.container_info.volumes.extend(volumes)
    if rootfs is not None:
        config.rootfs = rootfs
    if user is not None:
        config.user = user
    return config


def executor_config(directory: str, volumes: list[Volume]) -> ContainerConfig:
    """The original isolator's form: volumes in ``executor_info.container``."""
    executor = ExecutorInfo(command=CommandInfo(value="true"))
    executor.executor_id.value = "executor"
    executor.container.type = ContainerInfo.MESOS
    executor.container.volumes.extend(volumes)
    return ContainerConfig(
        directory=directory, command_info=CommandInfo(value="true"), executor_info=executor
    )


def container_id(value: str, parent: ContainerID | None = None) -> ContainerID:
    cid = ContainerID(value=value)
    if parent is not None:
        cid.parent.CopyFrom(parent)
    return cid


def sandbox(root: str, name: str) -> str:
    path = os.path.join(root, name)
    os.makedirs(path, exist_ok=True)
    return path


@contextmanager
def running_isolator(
    flags: Flags, client: RecordingDriverClient
) -> Iterator[DockerVolumeIsolator]:
    isolator = DockerVolumeIsolator.create(flags, client)
    try:
        yield isolator
    finally:
        isolator.stop()
