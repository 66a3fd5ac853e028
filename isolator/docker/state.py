"""The isolator's checkpoint: which Docker volumes a container uses.

The file format is Mesos's, so an agent's checkpoint directory can be read by this port and
the other way round: the JSON text of a ``DockerVolumes`` message (``state.proto``), compact,
e.g. ``{"volumes":[{"driver":"d1","name":"n1"}]}``. One encoder (``encode_volumes``) writes
it and one decoder (``decode_volumes``) reads it, both through the stdlib's ``json`` and
protobuf's ``json_format``: no JSON is written or parsed by hand. (The decoder reads the
plain shape every checkpoint has, a list of driver and name pairs, from ``json``'s
document directly, as ``json_format`` would, and gives anything else to ``json_format``.)

Unlike Mesos (which checkpoints without ``fsync`` and can leave an empty file after a power
loss, MESOS-9507) the file is written durably: a crash leaves either the old or the new
content, and once ``write_volumes`` returns the new content survives a reboot.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import stat
from collections.abc import Iterable
from typing import Any, Final, NamedTuple, NoReturn

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor

from isolator.common.container_ids import format_container_id
from isolator.common.errors import CheckpointError, IsolatorError, strerror
from isolator.common.fs import (
    FileTooLargeError,
    NotRegularFileError,
    WriteError,
    makedirs_durably,
    read_small_file,
    remove_owned_directory,
    write_atomically,
)
from isolator.docker.paths import VOLUMES_FILE, container_dir, volumes_path
from isolator.protos import ContainerID, DockerVolumes

__all__ = [
    "MAX_CHECKPOINT_BYTES",
    "VolumeKey",
    "checkpoint_container",
    "decode_volumes",
    "encode_volumes",
    "read_checkpoint",
    "read_volumes",
    "remove_checkpoint",
    "write_volumes",
]


logger = logging.getLogger("isolator")


class VolumeKey(NamedTuple):
    """A Docker volume's identity: two volumes are the same volume iff driver and name match."""

    driver: str
    name: str


def _distinct(volumes: Iterable[VolumeKey]) -> list[VolumeKey]:
    """``volumes`` in order; a checkpoint names a volume once (Mesos refuses it twice)."""
    distinct: dict[VolumeKey, None] = {}
    for volume in volumes:
        key = VolumeKey(volume.driver, volume.name)
        if key in distinct:
            raise CheckpointError(
                f"Duplicate docker volume with driver '{key.driver}' and name '{key.name}'"
            )
        distinct[key] = None
    return list(distinct)


_RAPIDJSON_HEX: Final = re.compile(r"(?<!\\)((?:\\\\)*)\\u00([01][0-9a-f])")
"""A ``\\u00xx`` escape ``json.dumps`` wrote (after an even run of backslashes: not an
escaped backslash followed by a literal ``u``)."""


def encode_volumes(volumes: Iterable[VolumeKey]) -> bytes:
    """The checkpoint bytes for ``volumes``, byte for byte what a Mesos agent writes.

    Volumes keep their order. No volumes gives ``{}``, as Mesos omits an empty repeated field.
    Raises ``CheckpointError`` for a volume given twice (it could not be read back) or a
    string that is not valid Unicode.

    protobuf's ``json_format.MessageToDict`` makes the document (the field names of
    ``state.proto``, an empty repeated field left out, as Mesos's ``JSON::protobuf``) and
    ``json.dumps`` writes it. ``MessageToJson`` cannot give Mesos's bytes: without an indent
    it writes ``", "`` and ``": "``. Mesos writes with rapidjson: compact, non-ASCII as raw
    UTF-8, escaping only ``"``, ``\\`` and control characters, which is
    ``json.dumps(separators=(",", ":"), ensure_ascii=False)`` but for one detail: rapidjson
    spells a control character without a short form in upper-case hex (``\\u001F``),
    ``json.dumps`` in lower case; ``_RAPIDJSON_HEX`` turns those to upper case.
    """
    message = DockerVolumes()
    for key in _distinct(volumes):
        try:
            message.volumes.add(driver=key.driver, name=key.name)
        except UnicodeEncodeError as error:  # a lone surrogate: no UTF-8 for it
            raise CheckpointError(f"Failed to encode docker volumes: {error}") from error
    document = json_format.MessageToDict(message, preserving_proto_field_name=True)
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    if "\\u00" in text:
        text = _RAPIDJSON_HEX.sub(lambda m: m.group(1) + "\\u00" + m.group(2).upper(), text)
    return text.encode("utf-8")


def write_volumes(path: str | os.PathLike[str], volumes: Iterable[VolumeKey]) -> None:
    """Checkpoint ``volumes`` to ``path`` atomically and durably (``fs.write_atomically``).

    On failure ``path`` keeps its old content and ``CheckpointError`` carries Mesos's message.
    """
    data = encode_volumes(volumes)
    try:
        write_atomically(path, data)
    except WriteError as error:
        raise CheckpointError(str(error)) from error


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"'{name}' is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key '{key}'")
        result[key] = value
    return result


_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
"""The stdlib's JSON reader, refusing what JSON does not allow and Python does."""


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _check_shape(value: dict[str, Any], descriptor: Descriptor, where: str) -> None:
    """Require objects for messages and arrays for repeated fields.

    ``json_format`` leaves these to Python's duck typing, which accepts some wrong shapes (an
    array where a message belongs parses as an empty message) and words the rest poorly.
    Unknown fields, ``null`` (unset, as in Mesos) and scalar types are left to ``json_format``.
    """
    for name, field_value in value.items():
        field = descriptor.fields_by_name.get(name)
        if field is None or field_value is None:
            continue
        path = f"{where}.{name}"
        if field.is_repeated:
            if not isinstance(field_value, list):
                raise ValueError(
                    f"Expecting a JSON array for '{path}', found {_json_type(field_value)}"
                )
            items = [(f"{path}[{i}]", item) for i, item in enumerate(field_value)]
        else:
            items = [(path, field_value)]
        if field.message_type is None:
            continue
        for item_path, item in items:
            if not isinstance(item, dict):
                raise ValueError(
                    f"Expecting a JSON object for '{item_path}', found {_json_type(item)}"
                )
            _check_shape(item, field.message_type, item_path)


def _refuse(document: dict[str, Any], problem: str, cause: Exception | None) -> NoReturn:
    """Raise for a document ``json_format`` refused: naming its first wrong shape, if any,
    as ``json_format`` words those poorly (or takes an array for an empty message)."""
    try:
        _check_shape(document, DockerVolumes.DESCRIPTOR, DockerVolumes.DESCRIPTOR.name)
    except ValueError as error:
        raise CheckpointError(f"Protobuf parse failed: {error}") from error
    raise CheckpointError(f"Protobuf parse failed: {problem}") from cause


MAX_CHECKPOINT_BYTES: Final = 1 << 20
"""A checkpoint names a few volumes; a larger file is refused unread (it is not ours)."""


def read_volumes(path: str | os.PathLike[str]) -> list[VolumeKey] | None:
    """Read a checkpoint written by ``write_volumes`` or by a Mesos agent.

    Follows Mesos's ``_recover``: ``None`` when the file does not exist and ``[]`` when it is
    empty (both left by a crash; the caller logs a warning and treats the container as using
    no volumes). Anything unreadable or invalid raises ``CheckpointError``
    (``decode_volumes``).
    """
    content = _read_capped(os.fspath(path))
    if content is None:
        return None
    return decode_volumes(content) if content else []


def _read_capped(source: str) -> bytes | None:
    """The file's bytes, or None if it does not exist; never blocks on a FIFO or reads a
    file beyond ``MAX_CHECKPOINT_BYTES``."""
    problem = f"Failed to read docker volumes checkpoint file '{source}'"
    try:
        return read_small_file(source, MAX_CHECKPOINT_BYTES)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CheckpointError(f"{problem}: {strerror(error)}") from error
    except NotRegularFileError as error:
        if stat.S_ISDIR(error.mode):
            raise CheckpointError(f"{problem}: {os.strerror(errno.EISDIR)}") from error
        raise CheckpointError(f"{problem}: it is not a regular file") from error
    except FileTooLargeError as error:
        has = "more than" if error.size is None else f"{error.size} bytes, more than"
        raise CheckpointError(
            f"{problem}: it has {has} the {MAX_CHECKPOINT_BYTES} bytes a checkpoint may have"
        ) from error


def decode_volumes(content: bytes) -> list[VolumeKey]:
    """The volumes of a checkpoint's bytes, in their order; the one reader of the format.

    The stdlib's ``json`` reads the text (refusing a duplicate key and ``NaN``, which are not
    JSON's); a document of the plain shape is read as it stands (``_plain_volumes``), any
    other by protobuf's ``json_format.ParseDict`` into ``DockerVolumes``,
    ignoring fields it does not define, as Mesos does, so a newer agent's file still reads.
    Raises ``CheckpointError`` worded as Mesos's (``JSON parse failed: ...``,
    ``Protobuf parse failed: ...``) and for a volume named twice.
    """
    try:
        document = _DECODER.decode(content.decode("utf-8"))
    except (ValueError, RecursionError) as error:
        raise CheckpointError(f"JSON parse failed: {error}") from error
    if not isinstance(document, dict):
        raise CheckpointError(
            f"JSON parse failed: Expecting a JSON object, found {_json_type(document)}"
        )

    plain = _plain_volumes(document)
    if plain is not None:
        return plain if len(plain) < 2 else _distinct(plain)  # one volume is distinct
    message = DockerVolumes()
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (ValueError, json_format.ParseError) as error:
        _refuse(document, str(error), error)
    if not message.IsInitialized():
        # Worded as Mesos's protobuf::parse, which lists InitializationErrorString().
        missing = [
            f"volumes[{index}].{name}"
            for index, volume in enumerate(message.volumes)
            for name in ("driver", "name")
            if not volume.HasField(name)
        ]
        _refuse(document, f"Missing required fields: {', '.join(missing)}", None)
    return _distinct(VolumeKey(volume.driver, volume.name) for volume in message.volumes)


def _plain_volumes(document: dict[str, Any]) -> list[VolumeKey] | None:
    """The volumes of a document of the plain shape this isolator and Mesos write for volumes
    without options (``{"volumes":[{"driver":"d","name":"n"}]}``, ASCII strings), read
    without ``json_format``, which costs about 30 us a checkpoint at recovery; None for
    anything else, which ``ParseDict`` then reads. What this accepts, it reads exactly as
    ``ParseDict`` does (a property test compares the two)."""
    if len(document) != 1:
        return None
    entries = document.get("volumes")
    if type(entries) is not list:
        return None
    volumes = []
    for entry in entries:
        if type(entry) is not dict or len(entry) != 2:
            return None
        driver, name = entry.get("driver"), entry.get("name")
        if type(driver) is not str or type(name) is not str:
            return None
        if not (driver.isascii() and name.isascii()):
            return None
        volumes.append(VolumeKey(driver, name))
    return volumes


def checkpoint_container(root: str, container_id: ContainerID, volumes: list[VolumeKey]) -> None:
    """Write ``<root>/<id>/volumes`` before any mount, so a crash can still unmount them.

    Raises ``IsolatorError`` with Mesos's texts.
    """
    directory = container_dir(root, container_id)
    try:
        # Durably: a directory whose entry a power loss can undo takes the checkpoint in
        # it along, and the mounts it records would leak.
        makedirs_durably(directory)
        if not os.path.isdir(directory):  # a file in the way: os.makedirs's error
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), directory)
    except OSError as error:
        raise IsolatorError(
            f"Failed to create the container directory at '{directory}': {strerror(error)}"
        ) from error
    path = volumes_path(root, container_id)
    try:
        write_volumes(path, volumes)
    except CheckpointError as error:
        raise IsolatorError(f"Failed to checkpoint docker volumes at '{path}': {error}") from error


def remove_checkpoint(root: str, container_id: ContainerID, *, missing_ok: bool = False) -> str:
    """Remove a container's checkpoint directory, deleting only what the isolator wrote.

    Returns the directory. Raises ``IsolatorError`` with Mesos's text, also when the
    directory holds anything else (``Directory not empty``: that is not ours to delete).
    """
    directory = container_dir(root, container_id)
    try:
        remove_owned_directory(directory, files=(VOLUMES_FILE,))
    except OSError as error:
        if missing_ok and isinstance(error, FileNotFoundError):
            return directory
        raise IsolatorError(
            f"Failed to remove the checkpoint directory at '{directory}': {strerror(error)}"
        ) from error
    return directory


def read_checkpoint(root: str, container_id: ContainerID) -> list[VolumeKey] | None:
    """The volumes checkpointed for a container; None when it has no checkpoint directory
    (cleaned up already, or the agent died before ``prepare`` made it).

    A missing or empty file means nothing was mounted (MESOS-9507): a warning, and ``[]``.
    Raises ``CheckpointError`` for a checkpoint that cannot be read or parsed.
    """
    path = volumes_path(root, container_id)
    volumes = read_volumes(path)
    if volumes:
        return volumes
    if volumes is None and not os.path.exists(container_dir(root, container_id)):
        return None
    logger.warning(
        "The docker volumes checkpointed at '%s' for container %s %s",
        path,
        format_container_id(container_id),
        "does not exist" if volumes is None else "is empty",
    )
    return []
