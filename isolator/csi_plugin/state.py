"""The reference CSI plugin's durable record of what it staged and published, so a
restarted plugin answers repeated calls as the spec requires (idempotently) and knows
which mounts it owes an unmount.

One JSON file, written atomically and durably (``write_atomically``) before each call
answers. Bounded: a file larger than ``MAX_STATE_BYTES`` is refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from isolator.common.fs import write_atomically

__all__ = ["MAX_STATE_BYTES", "PluginState", "Published", "Staged"]

MAX_STATE_BYTES = 4 << 20


@dataclass
class Staged:
    path: str
    capability: str  # the VolumeCapability's text form: a repeat must match it


@dataclass
class Published:
    readonly: bool
    capability: str


@dataclass
class _Volume:
    staged: Staged | None = None
    published: dict[str, Published] = field(default_factory=dict)  # target -> how


class PluginState:
    """Volume ID -> its staging path and publish targets."""

    def __init__(self, path: str) -> None:
        self._path = path
        self.volumes: dict[str, _Volume] = {}
        self._load()

    def _load(self) -> None:
        try:
            with open(self._path, "rb") as stream:
                data = stream.read(MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return
        if len(data) > MAX_STATE_BYTES:
            raise ValueError(f"State file '{self._path}' is larger than {MAX_STATE_BYTES} bytes")
        document: dict[str, Any] = json.loads(data)
        for volume_id, record in document.get("volumes", {}).items():
            staged = record.get("staged")
            self.volumes[volume_id] = _Volume(
                staged=None if staged is None else Staged(**staged),
                published={t: Published(**p) for t, p in record.get("published", {}).items()},
            )

    def volume(self, volume_id: str) -> _Volume:
        return self.volumes.setdefault(volume_id, _Volume())

    def save(self) -> None:
        document = {
            "volumes": {
                volume_id: {
                    "staged": None if v.staged is None else vars(v.staged),
                    "published": {t: vars(p) for t, p in v.published.items()},
                }
                for volume_id, v in self.volumes.items()
                if v.staged is not None or v.published
            }
        }
        os.makedirs(os.path.dirname(self._path), exist_ok=True)
        write_atomically(self._path, json.dumps(document, sort_keys=True).encode())
