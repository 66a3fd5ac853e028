"""Helpers for the isolator tests; the message builders live in ``isolator.messages``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from isolator import DockerVolumeIsolator, Flags
from isolator.messages import container_config, container_id, docker_volume, executor_config
from isolator.testing import RecordingDriverClient

__all__ = [
    "WAIT",
    "container_config",
    "container_id",
    "docker_volume",
    "executor_config",
    "running_isolator",
    "sandbox",
]

WAIT = 10.0  # seconds a test waits on a future that must complete


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
