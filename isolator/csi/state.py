"""The CSI isolator's checkpoints, in Mesos's on-disk form: each file holds one protobuf
record, its size as a 4-byte native-endian integer then the message (stout's
``protobuf::write``, as ``slave::state::checkpoint`` writes ``VolumeState`` and
``CSIVolumes``), written atomically and durably.

Unlike Mesos, a ``VolumeState`` never holds a secret's value: a ``VALUE`` secret is written
as its type alone, a ``REFERENCE`` keeps its reference (it is no secret itself).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable

from google.protobuf.message import DecodeError, Message

from isolator.common.container_ids import join, validate_container_id
from isolator.common.errors import CheckpointError, IsolatorError, strerror
from isolator.common.fs import (
    WriteError,
    makedirs_durably,
    read_small_file,
    remove_owned_directory,
    write_atomically,
)
from isolator.csi.paths import containers_dir
from isolator.protos import ContainerID, CSIVolume, CSIVolumes, Secret

__all__ = [
    "MAX_STATE_BYTES",
    "VOLUMES_FILE",
    "container_checkpoint",
    "read_container",
    "read_record",
    "redacted",
    "remove_container",
    "write_container",
    "write_record",
]

MAX_STATE_BYTES = 1 << 20
VOLUMES_FILE = "volumes"
_SIZE = struct.Struct("=I")


def redacted(secrets: Iterable[tuple[str, Secret]]) -> dict[str, Secret]:
    """The secrets as they may be written: values dropped, references kept."""
    kept = {}
    for key, secret in secrets:
        copy = Secret(type=secret.type)
        if secret.HasField("reference"):
            copy.reference.CopyFrom(secret.reference)
        kept[key] = copy
    return kept


def write_record(path: str, message: Message) -> None:
    """Write ``message`` to ``path`` atomically and durably; ``CheckpointError`` on failure."""
    data = message.SerializeToString(deterministic=True)
    try:
        makedirs_durably(os.path.dirname(path))
        write_atomically(path, _SIZE.pack(len(data)) + data)
    except (OSError, WriteError) as error:
        raise CheckpointError(f"Failed to checkpoint '{path}': {error}") from error


def read_record(path: str, message: Message) -> bool:
    """Fill ``message`` from ``path``; False if there is no file or it is empty (a crash
    before its content was synced, as Mesos's ``state::read`` returns None)."""
    try:
        data = read_small_file(path, MAX_STATE_BYTES + _SIZE.size)
    except FileNotFoundError:
        return False
    except OSError as error:
        raise CheckpointError(f"Failed to read '{path}': {strerror(error)}") from error
    except ValueError as error:  # not a regular file, or too large
        raise CheckpointError(f"Failed to read '{path}': {error}") from error
    if not data:
        return False
    if len(data) < _SIZE.size:
        raise CheckpointError(f"Failed to read '{path}': truncated record")
    (size,) = _SIZE.unpack_from(data)
    body = data[_SIZE.size :]
    if size > MAX_STATE_BYTES or len(body) != size:
        raise CheckpointError(
            f"Failed to read '{path}': the record says {size} bytes, the file has {len(body)}"
        )
    try:
        message.ParseFromString(body)
    except DecodeError as error:
        raise CheckpointError(f"Failed to read '{path}': {error}") from error
    return True


def container_checkpoint(root: str, container_id: ContainerID) -> str:
    validate_container_id(container_id)
    return join(containers_dir(root), container_id.value, VOLUMES_FILE)


def write_container(
    root: str, container_id: ContainerID, volumes: Iterable[tuple[str, str]]
) -> None:
    """Checkpoint the (plugin type, volume ID) pairs a container uses, before any call."""
    path = container_checkpoint(root, container_id)
    message = CSIVolumes(volumes=[CSIVolume(plugin_name=p, id=v) for p, v in volumes])
    try:
        write_record(path, message)
    except CheckpointError as error:
        raise IsolatorError(f"Failed to checkpoint CSI volumes at '{path}': {error}") from error


def read_container(root: str, container_id: ContainerID) -> list[tuple[str, str]] | None:
    """The container's volumes; None without a checkpoint directory, [] for a missing or
    empty file (a crash before anything was called)."""
    path = container_checkpoint(root, container_id)
    message = CSIVolumes()
    if not read_record(path, message):
        return None if not os.path.isdir(os.path.dirname(path)) else []
    volumes: dict[tuple[str, str], None] = {}
    for volume in message.volumes:
        key = (volume.plugin_name, volume.id)
        if key in volumes:
            raise CheckpointError(
                f"Duplicate CSI volume with plugin '{key[0]}' and ID '{key[1]}' in '{path}'"
            )
        volumes[key] = None
    return list(volumes)


def remove_container(root: str, container_id: ContainerID) -> str:
    """Remove the container's checkpoint directory (only what the isolator wrote)."""
    directory = os.path.dirname(container_checkpoint(root, container_id))
    try:
        remove_owned_directory(directory, files=(VOLUMES_FILE,))
    except FileNotFoundError:
        pass
    except OSError as error:
        raise IsolatorError(
            f"Failed to remove the container directory at '{directory}': {strerror(error)}"
        ) from error
    return directory
