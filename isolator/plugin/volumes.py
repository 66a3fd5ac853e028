"""What the VolumeDriver calls mean for a directory-backed plugin, free of any HTTP.

Like MatchbookLab/local-persist a volume is just a host directory, but with an idempotent
Create and Docker's documented per-ID mount counting, which the isolator's tests rely on.
Every change is saved before it is applied in memory, all under one lock.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from isolator.names import component_problem

from .errors import StateError, VolumeError
from .state import VolumeRecord, load_state, save_state

__all__ = ["MOUNTPOINT_OPTION", "DirectoryVolumes", "validate_name"]

MOUNTPOINT_OPTION = "mountpoint"


def validate_name(name: str) -> None:
    """Refuse names that are not a single, safe path component."""
    if component_problem(name) is not None:
        raise VolumeError(f"invalid volume name {name!r}")


def _now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _make_dir(path: str) -> None:
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    except OSError as error:
        raise VolumeError(f"cannot create directory {path}: {error.strerror}") from error


class DirectoryVolumes:
    """The volumes of one plugin: a state file plus directories under ``root`` (or elsewhere)."""

    def __init__(self, root: Path, state_path: Path) -> None:
        """Load the saved state; a corrupt file raises ``StateError`` naming it."""
        self.root = root
        self.state_path = state_path
        self._lock = threading.Lock()
        self._volumes: dict[str, VolumeRecord] = load_state(state_path)

    # -- requests -------------------------------------------------------------------------

    def create(self, name: str, options: Mapping[str, str] | None) -> None:
        """Record a volume; creating an existing one succeeds and keeps its first options."""
        validate_name(name)
        options = dict(options or {})
        unknown = sorted(set(options) - {MOUNTPOINT_OPTION})
        if unknown:
            names = ", ".join(repr(key) for key in unknown)
            raise VolumeError(f"unknown option {names} (the only option is {MOUNTPOINT_OPTION!r})")
        if MOUNTPOINT_OPTION in options:
            mountpoint = options[MOUNTPOINT_OPTION]
            if not os.path.isabs(mountpoint):
                raise VolumeError(f"option {MOUNTPOINT_OPTION!r} must be an absolute path")
            mountpoint, managed = os.path.normpath(mountpoint), False
        else:
            mountpoint, managed = str(self.root / "volumes" / name), True
        with self._lock:
            if name in self._volumes:
                return
            _make_dir(mountpoint)
            record = VolumeRecord(name, mountpoint, _now_rfc3339(), options, managed, {})
            self._commit(name, record)

    def remove(self, name: str) -> None:
        """Forget a volume that nobody mounts; delete its data only if it is the plugin's own."""
        with self._lock:
            record = self._get(name)
            if record.mounts:
                raise VolumeError(
                    f"volume {name} is in use (mounted by {len(record.mounts)} ID(s))"
                )
            if record.managed:
                try:
                    shutil.rmtree(record.mountpoint)
                except FileNotFoundError:
                    pass
                except OSError as error:
                    raise VolumeError(
                        f"cannot delete {record.mountpoint}: {error.strerror or error}"
                    ) from error
            self._commit(name, None)

    def mount(self, name: str, mount_id: str) -> str:
        """Count one more Mount by ``mount_id``; (re)create the directory; return its path."""
        with self._lock:
            record = self._get(name)
            _make_dir(record.mountpoint)
            mounts = dict(record.mounts)
            mounts[mount_id] = mounts.get(mount_id, 0) + 1
            self._commit(name, dataclasses.replace(record, mounts=mounts))
            return record.mountpoint

    def unmount(self, name: str, mount_id: str) -> None:
        """Release the caller ``mount_id``, however many Mounts it sent.

        An ID is one caller (Docker reuses a container's ID for repeated Mounts and sends
        one Unmount when it is done; the isolator mounts once per container and unmounts
        once, after the last one), so its Unmount releases it. An ID that holds no mount
        is an error.
        """
        with self._lock:
            record = self._get(name)
            mounts = dict(record.mounts)
            if mounts.pop(mount_id, 0) == 0:
                raise VolumeError(f"volume {name} is not mounted by ID {mount_id!r}")
            self._commit(name, dataclasses.replace(record, mounts=mounts))

    def path(self, name: str) -> str:
        """The mountpoint while any ID holds a mount, else ``""`` (Docker's Path contract)."""
        with self._lock:
            record = self._get(name)
            return record.mountpoint if record.mounts else ""

    def get(self, name: str) -> VolumeRecord:
        """The record of ``name``; ``VolumeError`` if there is none."""
        with self._lock:
            return self._get(name)

    def list(self) -> list[VolumeRecord]:
        """All records, sorted by name."""
        with self._lock:
            return [self._volumes[name] for name in sorted(self._volumes)]

    # -- internals ------------------------------------------------------------------------

    def _get(self, name: str) -> VolumeRecord:
        record = self._volumes.get(name)
        if record is None:
            raise VolumeError(f"volume {name} not found")
        return record

    def _commit(self, name: str, record: VolumeRecord | None) -> None:
        """Save the state with ``name`` replaced (or dropped), then apply it in memory."""
        volumes = dict(self._volumes)
        if record is None:
            volumes.pop(name, None)
        else:
            volumes[name] = record
        try:
            save_state(self.state_path, volumes)
        except StateError as error:
            raise VolumeError(str(error)) from error
        self._volumes = volumes
