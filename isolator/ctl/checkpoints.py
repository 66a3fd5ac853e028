"""``status``, ``volumes`` and ``forget``: the checkpoints, read (or one removed) offline.

Nothing here talks to a running isolator: the checkpoint directory is the isolator's whole
record of who uses which volume, so reading it shows what a recovery would find.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from isolator.common.container_ids import validate_container_id
from isolator.common.errors import CheckpointError, IsolatorError, strerror
from isolator.config.flags import Flags
from isolator.ctl.tables import (
    EXIT_FAILED,
    EXIT_OK,
    Outcome,
    UsageError,
    table,
    volume_json,
    volume_text,
)
from isolator.docker.paths import checkpointed_containers, container_dir, volumes_path
from isolator.docker.state import VolumeKey, read_volumes, remove_checkpoint
from isolator.protos import ContainerID

__all__ = ["Checkpoint", "forget", "read_checkpoints", "status", "volumes", "with_checkpoints"]

State = Literal["volumes", "empty", "no file", "unreadable"]

_NOTES: dict[State, str] = {
    "volumes": "",
    "empty": "the checkpoint is empty: nothing was mounted",
    "no file": "no checkpoint file: the agent stopped before writing it; nothing was mounted",
    "unreadable": "unreadable",
}


@dataclass(frozen=True)
class Checkpoint:
    """One container's checkpoint, as recovery would read it."""

    container: str
    """The container ID's value: the checkpoint directory's name."""
    volumes: tuple[VolumeKey, ...]
    state: State
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "container": self.container,
            "volumes": [volume_json(volume) for volume in self.volumes],
            "checkpoint": self.state,
            "error": self.error,
        }

    @property
    def note(self) -> str:
        note = _NOTES[self.state]
        return f"{note}: {self.error}" if self.error else note


def read_one(root: str, value: str) -> Checkpoint:
    """The checkpoint of container ``value`` under ``root`` (never raises for a bad one)."""
    try:
        found = read_volumes(volumes_path(root, ContainerID(value=value)))
    except CheckpointError as error:
        return Checkpoint(value, (), "unreadable", str(error))
    if found is None:
        return Checkpoint(value, (), "no file")
    return Checkpoint(value, tuple(found), "volumes" if found else "empty")


def read_checkpoints(root: str) -> list[Checkpoint] | None:
    """Every container checkpointed under ``root``, sorted; None if ``root`` does not exist.

    Raises ``OSError`` when ``root`` cannot be listed. Stray entries are skipped with a
    warning (``paths.checkpointed_containers``), as recovery skips them.
    """
    try:
        values = checkpointed_containers(root)
    except FileNotFoundError:
        return None
    return [read_one(root, value) for value in values]


def with_checkpoints(
    flags: Flags,
    render: Callable[[str, list[Checkpoint]], Outcome],
    missing: Callable[[str], Outcome],
) -> Outcome:
    """``render(root, checkpoints)``; ``missing(root)`` when the directory does not exist,
    a failure when it cannot be listed."""
    root = flags.docker_volume_checkpoint_dir
    try:
        checkpoints = read_checkpoints(root)
    except OSError as error:
        message = f"Unable to list docker volume checkpoint directory '{root}': {strerror(error)}"
        return Outcome(EXIT_FAILED, {"checkpoint_dir": root, "error": message}, message)
    return missing(root) if checkpoints is None else render(root, checkpoints)


def _nothing(key: str) -> Callable[[str], Outcome]:
    def missing(root: str) -> Outcome:
        text = f"No checkpoint directory at '{root}': nothing is checkpointed."
        return Outcome(EXIT_OK, {"checkpoint_dir": root, key: []}, text)

    return missing


def status(flags: Flags) -> Outcome:
    """Each checkpointed container and its volumes (``docker ps``-like)."""
    return with_checkpoints(flags, _status, _nothing("containers"))


def _status(root: str, checkpoints: list[Checkpoint]) -> Outcome:
    rows = [
        [checkpoint.container, volume.driver, volume.name, ""]
        for checkpoint in checkpoints
        for volume in checkpoint.volumes
    ]
    rows += [[c.container, "-", "-", c.note] for c in checkpoints if not c.volumes]
    rows.sort(key=lambda row: row[0])
    header = ["CONTAINER", "DRIVER", "VOLUME", "NOTE"]
    if not any(row[-1] for row in rows):  # the NOTE column only when there is a note
        header, rows = header[:-1], [row[:-1] for row in rows]
    text = table(header, rows)
    held = {volume for checkpoint in checkpoints for volume in checkpoint.volumes}
    text += f"{len(checkpoints)} container(s), {len(held)} volume(s) in '{root}'\n"
    bad = [c for c in checkpoints if c.state == "unreadable"]
    data = {"checkpoint_dir": root, "containers": [c.to_json() for c in checkpoints]}
    return Outcome(EXIT_FAILED if bad else EXIT_OK, data, text)


FindMountPoints = Callable[[list[VolumeKey]], Mapping[VolumeKey, "str | Exception"]]
"""Asks the plugins where volumes are mounted (``ctl.plugins.mount_points``)."""


def volumes(flags: Flags, find: FindMountPoints | None = None) -> Outcome:
    """Each checkpointed volume, how many containers hold it and which, and, with ``find``,
    the mount point its plugin reports (what the isolator reuses after a restart)."""
    return with_checkpoints(flags, functools.partial(_volumes, find=find), _nothing("volumes"))


def _volumes(root: str, checkpoints: list[Checkpoint], *, find: FindMountPoints | None) -> Outcome:
    holders: dict[VolumeKey, list[str]] = {}
    for checkpoint in checkpoints:
        for volume in checkpoint.volumes:
            holders.setdefault(volume, []).append(checkpoint.container)
    ordered = sorted(holders.items())
    points = find([volume for volume, _ in ordered]) if find is not None and ordered else {}
    header = ["DRIVER", "VOLUME", "HOLDERS", "CONTAINERS"]
    if find is not None:
        header.insert(3, "MOUNT POINT")
    rows = []
    for volume, names in ordered:
        row = [volume.driver, volume.name, str(len(names)), ", ".join(names)]
        if find is not None:
            row.insert(3, _mount_point_text(points.get(volume)))
        rows.append(row)
    text = table(header, rows)
    for volume, _names in ordered:
        point = points.get(volume)
        if isinstance(point, Exception):
            text += f"mount point unknown: {volume_text(volume)}: {point}\n"
    bad = [c for c in checkpoints if c.state == "unreadable"]
    for checkpoint in bad:
        text += f"holders unknown: container {checkpoint.container}'s {checkpoint.note}\n"
    data = {
        "checkpoint_dir": root,
        "volumes": [
            {**volume_json(volume), "holders": len(names), "containers": names}
            | ({"mount_point": _mount_point_json(points.get(volume))} if find else {})
            for volume, names in ordered
        ],
        "unreadable": [c.to_json() for c in bad],
    }
    return Outcome(EXIT_FAILED if bad else EXIT_OK, data, text)


def _mount_point_text(point: str | Exception | None) -> str:
    if isinstance(point, str):
        return point or "(not mounted)"
    return "?"


def _mount_point_json(point: str | Exception | None) -> dict[str, str | None]:
    if isinstance(point, str):
        return {"path": point or None, "error": None}
    return {"path": None, "error": str(point) if point is not None else "not asked"}


def forget(flags: Flags, container: str, *, yes: bool) -> Outcome:
    """Remove a stranded checkpoint without unmounting anything (the isolator's ``forget``).

    Without ``yes`` nothing is removed: ``UsageError`` says what would be.
    """
    root = flags.docker_volume_checkpoint_dir
    container_id = ContainerID(value=container)
    try:
        validate_container_id(container_id)
    except IsolatorError as error:
        raise UsageError(str(error)) from None
    directory = container_dir(root, container_id)
    if not os.path.lexists(directory):
        message = f"Container {container} has no checkpoint: '{directory}' does not exist"
        return Outcome(EXIT_FAILED, {"container": container, "error": message}, message)
    checkpoint = read_one(root, container)
    held = ", ".join(volume_text(v) for v in checkpoint.volumes) or "none"
    what = (
        f"the checkpoint of container {container} at '{directory}' (volumes: {held}); "
        "its volumes are NOT unmounted: a plugin keeps them mounted for the agent's mount ID"
    )
    if not yes:
        raise UsageError(
            f"Not removing {what}. Do it only with the agent stopped, or for a container "
            "it no longer knows; to remove it, run again with --yes"
        )
    data: dict[str, Any] = {"container": container, "checkpoint": checkpoint.to_json()}
    try:
        remove_checkpoint(root, container_id)
    except IsolatorError as error:
        return Outcome(EXIT_FAILED, {**data, "removed": None, "error": str(error)}, str(error))
    return Outcome(EXIT_OK, {**data, "removed": directory}, f"Removed {what}")
