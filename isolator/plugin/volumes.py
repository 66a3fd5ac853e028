"""What the VolumeDriver calls mean for a directory-backed plugin, free of any HTTP.

Like MatchbookLab/local-persist a volume is just a host directory, but with an idempotent
Create and Docker's documented per-ID mount counting, which the isolator's tests rely on.
Every change is saved before it is applied in memory, all under one lock. Which directories
a volume may use, and how they are made and deleted, is ``mountpoints.Confinement``'s job.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from isolator.common.names import component_problem

from .errors import StateError, VolumeError
from .mountpoints import MOUNTPOINT_OPTION, Confinement, is_within
from .state import VolumeRecord, load_state, save_state

__all__ = ["MOUNTPOINT_OPTION", "DirectoryVolumes", "validate_name"]

_log = logging.getLogger(__name__)


def validate_name(name: str) -> None:
    """Refuse names that are not a single, safe path component."""
    if component_problem(name) is not None:
        raise VolumeError(f"invalid volume name {name!r}")


def _now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class DirectoryVolumes:
    """The volumes of one plugin: a state file plus directories its confinement allows."""

    def __init__(self, confinement: Confinement, state_path: Path) -> None:
        """Load the saved state; ``StateError`` names the file if it is corrupt or if a
        volume in it lies outside the allowed directories (a hand-edited or stale file
        must not make the plugin hand out, or delete, a host directory)."""
        self.confinement = confinement
        self.state_path = state_path
        self._lock = threading.Lock()
        self._volumes: dict[str, VolumeRecord] = load_state(state_path)
        for record in self._volumes.values():
            problem = confinement.stored_problem(record.name, record.mountpoint, record.managed)
            if problem is not None:
                where = f"plugin state file {state_path}: volume {record.name!r}"
                raise StateError(f"{where} {problem}")

    # -- requests -------------------------------------------------------------------------

    def create(self, name: str, options: Mapping[str, str] | None) -> None:
        """Record a volume; creating an existing one succeeds and keeps its first options.

        The ``mountpoint`` option is checked even then, so a refused path always reads as
        refused. Two volumes never share or nest directories: one's Remove would delete, or
        one's task would see, the other's data.
        """
        validate_name(name)
        options = dict(options or {})
        unknown = sorted(set(options) - {MOUNTPOINT_OPTION})
        if unknown:
            names = ", ".join(repr(key) for key in unknown)
            raise VolumeError(f"unknown option {names} (the only option is {MOUNTPOINT_OPTION!r})")
        if MOUNTPOINT_OPTION in options:
            mountpoint = self.confinement.resolve(options[MOUNTPOINT_OPTION])
            managed = False
        else:
            mountpoint, managed = self.confinement.own_directory(name), True
        with self._lock:
            if name in self._volumes:
                return
            self._refuse_overlap(name, mountpoint)
            self.confinement.make_directory(mountpoint)
            record = VolumeRecord(name, mountpoint, _now_rfc3339(), options, managed, {})
            self._commit(name, record)

    def remove(self, name: str) -> None:
        """Forget a volume that nobody mounts; delete its data only if it is the plugin's own.

        The plugin's own is ``<root>/volumes/<name>``, deleted only while it is a real
        directory; a directory given as ``mountpoint`` is never deleted (local-persist's rule).
        """
        with self._lock:
            record = self._get(name)
            if record.mounts:
                raise VolumeError(
                    f"volume {name} is in use (mounted by {len(record.mounts)} ID(s))"
                )
            if record.managed:
                self.confinement.delete_own_directory(name)
            else:
                _log.info("volume %s removed; its directory %r is kept", name, record.mountpoint)
            self._commit(name, None)

    def mount(self, name: str, mount_id: str) -> str:
        """Count one more Mount by ``mount_id``; (re)create the directory; return its path."""
        with self._lock:
            record = self._get(name)
            self.confinement.make_directory(record.mountpoint)
            mounts = dict(record.mounts)
            mounts[mount_id] = mounts.get(mount_id, 0) + 1
            self._commit(name, dataclasses.replace(record, mounts=mounts))
            return record.mountpoint

    def unmount(self, name: str, mount_id: str) -> None:
        """Release the caller ``mount_id``, however many Mounts it sent.

        An ID is one caller (Docker reuses a container's ID for repeated Mounts and sends
        one Unmount when it is done; the isolator mounts once per container and unmounts
        once, after the last one), so its Unmount releases it.

        Releasing what is not held succeeds, as Docker's ``local`` driver does for an ID:
        afterwards the ID holds nothing, which is what the caller asked for. That covers a
        volume that does not exist, too (where ``local`` errs): the isolator unmounts every
        checkpointed volume after a failed prepare, also one whose Create this plugin refused,
        and an error here would strand its checkpoint for good (issue 10). Docker itself
        only unmounts what it mounted, so it never sees the difference.
        """
        with self._lock:
            record = self._volumes.get(name)
            if record is None:
                _log.info("Unmount of volume %r, which does not exist: nothing to release", name)
                return
            mounts = dict(record.mounts)
            if mounts.pop(mount_id, 0) == 0:
                _log.info(
                    "Unmount of volume %s by ID %r, which holds no mount: nothing to release",
                    name,
                    mount_id,
                )
                return
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

    def _refuse_overlap(self, name: str, mountpoint: str) -> None:
        for other in self._volumes.values():
            if is_within(mountpoint, other.mountpoint) or is_within(other.mountpoint, mountpoint):
                raise VolumeError(
                    f"volume {name}: directory {mountpoint!r} overlaps volume {other.name!r}"
                    f" at {other.mountpoint!r}; volumes do not share directories"
                )

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
