"""The work every figure times twice: through the isolator, and as a bare loop.

The bare loops do the same file I/O as the isolator and the same driver calls, in a plain
loop on the calling thread, with nothing else:

- a prepare's part: the checkpoint ``<root>/<id>/volumes`` written with
  ``isolator.common.fs.write_atomically`` (temporary file, fsync, rename, fsync of the container
  directory, and the directory made with an fsync of ``<root>``), then the driver's mount;
- a cleanup's part: the driver's unmount, then ``isolator.common.fs.remove_owned_directory``
  (unlink, rmdir, fsync of ``<root>``);
- a recovery's part: ``os.listdir(root)`` and ``json.load`` of each checkpoint.

What the bare loops leave out is the isolator's own work, and so part of what a ratio
measures: checking the container ID and config, the mount target (one ``lstat`` and
``realpath`` of the container path), copying messages, the actor messages and futures,
the per-volume sequences, reference counts, logging, and the launch info.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from actors import Future, collect
from benchmarks.doubles import ZeroLatencyDriver
from benchmarks.harness import WAIT
from isolator import DockerVolumeIsolator, DriverClient, Flags
from isolator.common.fs import remove_owned_directory, write_atomically
from isolator.docker.state import VolumeKey, encode_volumes
from isolator.messages import container_config, container_id, docker_volume
from isolator.protos import ContainerConfig, ContainerID

__all__ = [
    "DRIVER",
    "Container",
    "bare_all_at_once",
    "bare_cleanup",
    "bare_one_by_one",
    "bare_orphans_cleanup",
    "bare_prepare",
    "bare_recover",
    "containers",
    "isolator_on",
    "prepare_and_cleanup",
    "write_checkpoints",
]

DRIVER = "bench"
"""The volume driver's name in every figure."""

Container = tuple[ContainerID, ContainerConfig, VolumeKey]


def containers(count: int, *, volumes: int | None = None, prefix: str = "c") -> list[Container]:
    """``count`` containers, each with one volume: ``v<i % volumes>`` (all distinct by default).

    Each mounts its volume at ``/tmp`` (absolute, no rootfs: the target exists on the host).
    """
    volumes = volumes or count
    made = []
    for index in range(count):
        name = f"v{index % volumes}"
        config = container_config("/tmp", [docker_volume(DRIVER, name, "/tmp")])
        made.append((container_id(f"{prefix}{index}"), config, VolumeKey(DRIVER, name)))
    return made


@contextmanager
def isolator_on(root: str, driver: DriverClient) -> Iterator[DockerVolumeIsolator]:
    """An isolator checkpointing under ``root``, recovered with nothing to recover."""
    isolator = DockerVolumeIsolator.create(Flags(docker_volume_checkpoint_dir=root), driver)
    try:
        isolator.recover([], []).get(WAIT)
        yield isolator
    finally:
        isolator.stop(timeout=WAIT)


def prepare_and_cleanup(isolator: DockerVolumeIsolator, batch: list[Container]) -> None:
    """Every prepare in flight at once, then every cleanup: the isolator's throughput."""
    collect([isolator.prepare(cid, config) for cid, config, _ in batch]).get(WAIT)
    collect([isolator.cleanup(cid) for cid, _, _ in batch]).get(WAIT)


def bare_prepare(root: str, driver: ZeroLatencyDriver, container: Container) -> None:
    cid, _, volume = container
    write_atomically(f"{root}/{cid.value}/volumes", encode_volumes([volume]))
    _done(driver.mount(volume.driver, volume.name, {}))


def bare_cleanup(root: str, driver: ZeroLatencyDriver, container: Container) -> None:
    cid, _, volume = container
    _done(driver.unmount(volume.driver, volume.name))
    remove_owned_directory(f"{root}/{cid.value}", files=("volumes",))


def bare_all_at_once(root: str, driver: ZeroLatencyDriver, batch: list[Container]) -> None:
    """Every container's prepare part, then every one's cleanup part (P2's order)."""
    for container in batch:
        bare_prepare(root, driver, container)
    for container in batch:
        bare_cleanup(root, driver, container)


def bare_one_by_one(root: str, driver: ZeroLatencyDriver, batch: list[Container]) -> None:
    """Each container's prepare part then its cleanup part, one after another (P1's)."""
    for container in batch:
        bare_prepare(root, driver, container)
        bare_cleanup(root, driver, container)


def bare_recover(root: str) -> list[object]:
    """List the checkpoint directory and parse every checkpoint, nothing more."""
    documents = []
    for entry in os.listdir(root):
        with open(f"{root}/{entry}/volumes", "rb") as file:
            documents.append(json.load(file))
    return documents


def bare_orphans_cleanup(root: str, driver: ZeroLatencyDriver) -> None:
    """``bare_recover``, then each checkpoint's volumes unmounted and the checkpoint removed."""
    for entry in os.listdir(root):
        with open(f"{root}/{entry}/volumes", "rb") as file:
            for volume in json.load(file)["volumes"]:
                _done(driver.unmount(volume["driver"], volume["name"]))
        remove_owned_directory(f"{root}/{entry}", files=("volumes",))


def write_checkpoints(root: str, batch: list[Container]) -> None:
    """Checkpoints as a crashed agent left them (set-up, not timed: no fsync)."""
    for cid, _, volume in batch:
        os.makedirs(f"{root}/{cid.value}")
        with open(f"{root}/{cid.value}/volumes", "wb") as file:
            file.write(encode_volumes([volume]))


def _done(future: Future[Any]) -> None:
    if not future.is_ready():
        raise RuntimeError(f"the zero-latency driver answered {future!r}")
