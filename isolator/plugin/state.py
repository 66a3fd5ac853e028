"""The plugin's durable state: one small JSON file per volume, each replaced atomically.

A restarted plugin must find its volumes *and* their mount counts again, or it would forget
who still uses a volume; hence a durable, atomic write (``isolator.common.fs``) on every
change. One file per volume makes a change cost one small write whatever the number of
volumes (issue 20): the single ``state.json`` of before was rewritten whole on every Mount.

Layout of the state directory (default ``<root>/state``)::

    v-<name, percent-encoded>.json    one volume (v#<sha256 of the name>.json if that is long)

A file holds ``{"version": 2, "name": ..., "mountpoint": ..., "created_at": ...,
"options": {...}, "managed": bool, "count": N, "mounts": {ID: n}}``. The name is never used
as a path: the file name is derived from it, and a file whose name does not match the name
it holds is refused, so a hand-made file cannot alias another volume. Files starting with
``.`` are a crash's leftover temporaries and are skipped. A version 1 ``state.json`` (the
old single file) is read by ``read_legacy`` and carried over once by ``import_legacy``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isolator.common.fs import WriteError, fsync_directory, read_small_file, write_atomically
from isolator.common.names import encoded_file_name

from .errors import StateError

__all__ = [
    "LEGACY_VERSION",
    "STATE_VERSION",
    "VolumeRecord",
    "delete_volume",
    "import_legacy",
    "load_state",
    "read_legacy",
    "save_volume",
    "volume_file_name",
]

STATE_VERSION = 2
LEGACY_VERSION = 1
_MAX_FILE = 1 << 20
"""A volume file is a few hundred bytes; a larger one is not ours."""


@dataclass(frozen=True)
class VolumeRecord:
    """One volume as the plugin remembers it; immutable so a failed save changes nothing."""

    name: str
    mountpoint: str
    created_at: str
    options: Mapping[str, str] = field(default_factory=dict)
    managed: bool = False
    """True when the directory is the plugin's own ``<root>/volumes/<name>`` (Remove deletes it)."""
    mounts: Mapping[str, int] = field(default_factory=dict)
    """Mount ID -> Mounts that ID sent and has not taken back; IDs at zero are dropped."""
    count: int = 0
    """The volume's mount count as the plugin's counting mode keeps it; released at 0."""

    def to_json(self) -> dict[str, Any]:
        """The record as stored in its file."""
        return {
            "version": STATE_VERSION,
            "name": self.name,
            "mountpoint": self.mountpoint,
            "created_at": self.created_at,
            "options": dict(self.options),
            "managed": self.managed,
            "count": self.count,
            "mounts": dict(self.mounts),
        }

    @classmethod
    def from_json(cls, name: str, data: object) -> VolumeRecord:
        """Parse one stored record; ``ValueError`` says what is wrong with it."""
        if not isinstance(data, dict):
            raise ValueError(f"volume {name!r} is not an object")
        mountpoint = data.get("mountpoint")
        created_at = data.get("created_at")
        options = data.get("options", {})
        managed = data.get("managed", False)
        mounts = data.get("mounts", {})
        if not isinstance(mountpoint, str) or not os.path.isabs(mountpoint):
            raise ValueError(f"volume {name!r} has no absolute mountpoint")
        if not isinstance(created_at, str):
            raise ValueError(f"volume {name!r} has no created_at")
        if not isinstance(options, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in options.items()
        ):
            raise ValueError(f"volume {name!r} has bad options")
        if not isinstance(managed, bool):
            raise ValueError(f"volume {name!r} has a bad managed flag")
        if not isinstance(mounts, dict) or not all(
            isinstance(k, str) and type(v) is int and v > 0 for k, v in mounts.items()
        ):
            raise ValueError(f"volume {name!r} has bad mount counts")
        # A version 1 record has no count: every Mount it holds counts.
        count = data.get("count", sum(mounts.values()))
        if type(count) is not int or count < 0:
            raise ValueError(f"volume {name!r} has a bad count")
        return cls(name, mountpoint, created_at, dict(options), managed, dict(mounts), count)


def volume_file_name(name: str) -> str:
    """The file holding volume ``name``: never a path, never hidden, at most ~200 bytes."""
    return encoded_file_name(name, kind="v", suffix=".json")


def _read(path: Path) -> bytes:
    """A volume file's bytes; refuses non-regular files and links (never follows one).
    Its refusals are ``ValueError``s ("not a regular file", "larger than N bytes")."""
    return read_small_file(path, _MAX_FILE)


def load_state(state_dir: Path) -> dict[str, VolumeRecord]:
    """Read every volume file; a missing directory is an empty state, a bad file a
    ``StateError`` naming it."""
    try:
        entries = sorted(os.listdir(state_dir))
    except FileNotFoundError:
        return {}
    except OSError as error:
        where = f"plugin state directory {state_dir}"
        raise StateError(f"cannot read {where}: {error.strerror}") from error
    volumes: dict[str, VolumeRecord] = {}
    for entry in entries:
        if entry.startswith("."):
            continue  # a temporary file a crash left behind
        path = state_dir / entry
        try:
            data = json.loads(_read(path))
            if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
                raise ValueError(f"not a version {STATE_VERSION} volume object")
            name = data.get("name")
            if not isinstance(name, str) or volume_file_name(name) != entry:
                raise ValueError("its name does not match the file name")
            volumes[name] = VolumeRecord.from_json(name, data)
        except OSError as error:
            raise StateError(f"cannot read plugin state file {path}: {error.strerror}") from error
        except ValueError as error:  # json.JSONDecodeError and UnicodeDecodeError too
            raise StateError(f"corrupt plugin state file {path}: {error}") from error
    return volumes


def save_volume(state_dir: Path, record: VolumeRecord) -> None:
    """Replace ``record``'s file atomically and durably, or raise ``StateError``."""
    path = state_dir / volume_file_name(record.name)
    payload = (json.dumps(record.to_json(), sort_keys=True) + "\n").encode("utf-8")
    try:
        write_atomically(path, payload)
    except WriteError as error:
        raise StateError(f"cannot write plugin state file {path}: {error}") from error


def delete_volume(state_dir: Path, name: str) -> None:
    """Delete volume ``name``'s file durably (gone already is fine), or raise ``StateError``."""
    path = state_dir / volume_file_name(name)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        fsync_directory(os.fspath(state_dir))
    except OSError as error:
        raise StateError(f"cannot delete plugin state file {path}: {error.strerror}") from error


def read_legacy(legacy: Path) -> dict[str, VolumeRecord]:
    """The volumes of a version 1 ``state.json``; ``StateError`` if it is corrupt."""
    try:
        data = json.loads(_read(legacy))
        if not isinstance(data, dict) or data.get("version") != LEGACY_VERSION:
            raise ValueError(f"not a version {LEGACY_VERSION} state object")
        volumes = data.get("volumes")
        if not isinstance(volumes, dict):
            raise ValueError("'volumes' is not an object")
        return {name: VolumeRecord.from_json(name, rec) for name, rec in volumes.items()}
    except OSError as error:
        raise StateError(f"cannot read plugin state file {legacy}: {error.strerror}") from error
    except ValueError as error:
        raise StateError(f"corrupt plugin state file {legacy}: {error}") from error


def import_legacy(records: Mapping[str, VolumeRecord], legacy: Path, state_dir: Path) -> None:
    """Write ``read_legacy``'s records as ``state_dir``, then rename the old file to
    ``<legacy>.imported`` (kept, never deleted).

    Staged in a sibling directory renamed into place, so a crash midway leaves the old
    file in charge and the import is simply done again.
    """
    staging = state_dir.with_name(f".{state_dir.name}.importing")
    for record in records.values():
        save_volume(staging, record)
    try:
        staging.mkdir(exist_ok=True)
        os.rename(staging, state_dir)
        fsync_directory(os.fspath(state_dir.parent))
        os.rename(legacy, legacy.with_name(legacy.name + ".imported"))
        fsync_directory(os.fspath(legacy.parent))
    except OSError as error:
        raise StateError(f"cannot import plugin state file {legacy}: {error.strerror}") from error
