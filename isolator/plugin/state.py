"""The plugin's durable state: one JSON file, rewritten atomically after every change.

A restarted plugin must find its volumes *and* its per-ID mount counts again, or it would
forget who still uses a volume; hence a durable, atomic write (``isolator.common.fs``) on
every save.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isolator.common.fs import WriteError, write_atomically

from .errors import StateError

__all__ = ["STATE_VERSION", "VolumeRecord", "load_state", "save_state"]

STATE_VERSION = 1


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
    """Mount ID -> how many Mounts that ID holds; IDs at zero are dropped."""

    def to_json(self) -> dict[str, Any]:
        """The record as stored in the state file."""
        return {
            "mountpoint": self.mountpoint,
            "created_at": self.created_at,
            "options": dict(self.options),
            "managed": self.managed,
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
        return cls(name, mountpoint, created_at, dict(options), managed, dict(mounts))


def load_state(path: Path) -> dict[str, VolumeRecord]:
    """Read the state file; a missing file is an empty state, a bad one a ``StateError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise StateError(f"cannot read plugin state file {path}: {error.strerror}") from error
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError(f"not a version {STATE_VERSION} state object")
        volumes = data.get("volumes")
        if not isinstance(volumes, dict):
            raise ValueError("'volumes' is not an object")
        return {name: VolumeRecord.from_json(name, rec) for name, rec in volumes.items()}
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        raise StateError(f"corrupt plugin state file {path}: {error}") from error


def save_state(path: Path, volumes: Mapping[str, VolumeRecord]) -> None:
    """Replace the state file atomically and durably, or raise ``StateError`` and leave it."""
    data = {
        "version": STATE_VERSION,
        "volumes": {name: volumes[name].to_json() for name in sorted(volumes)},
    }
    payload = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")
    try:
        write_atomically(path, payload)
    except WriteError as error:
        raise StateError(f"cannot write plugin state file {path}: {error}") from error
