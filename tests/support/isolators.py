"""Building blocks for isolator tests: sandboxes, checkpoint files, a running isolator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from isolator import DockerVolumeIsolator, Flags
from isolator.testing import RecordingDriverClient

__all__ = ["running_isolator", "sandbox", "volumes_file", "write_checkpoint"]


def sandbox(root: str | Path, name: str) -> str:
    """A directory ``root/name``, made if missing: a container's sandbox, a mount point..."""
    path = os.path.join(root, name)
    os.makedirs(path, exist_ok=True)
    return path


def volumes_file(flags: Flags, value: str) -> Path:
    """Where the isolator checkpoints the volumes of container ``value``."""
    return Path(flags.docker_volume_checkpoint_dir) / value / "volumes"


def write_checkpoint(flags: Flags, value: str, content: bytes) -> Path:
    """A checkpoint for container ``value`` with exactly ``content``, as a crash left it."""
    path = volumes_file(flags, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@contextmanager
def running_isolator(flags: Flags, client: RecordingDriverClient) -> Iterator[DockerVolumeIsolator]:
    """An isolator on ``client``, stopped (without cleanups) at the end of the block."""
    isolator = DockerVolumeIsolator.create(flags, client)
    try:
        yield isolator
    finally:
        isolator.stop()
