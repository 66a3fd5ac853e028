"""What the VolumeDriver calls mean for a directory-backed plugin, free of any HTTP.

Like MatchbookLab/local-persist a volume is just a host directory, with an idempotent
Create and a mount count read from the stream of Mounts and Unmounts in one of the ways
real plugins read it (``../shared/reference/plugin-call-balance.md``), so callers can be
tested against each:

- ``calls`` (the default), Docker's own ``local`` driver: every successful Mount adds one,
  every Unmount takes one, whatever its ID; the volume is released at 0.
- ``ids``, a set of IDs: a Mount adds its ID, an Unmount removes its ID however many
  Mounts it sent; released when the set is empty.
- ``refuse_duplicate_id`` (with either), a loopback-style plugin: a second Mount of the
  same (Name, ID) without an Unmount between is refused.

Released means Path answers ``""`` (there is nothing to unmount for a directory). Every
change is saved before it is applied in memory, all under one lock. Which directories a
volume may use, and how they are made and deleted, is ``mountpoints.Confinement``'s job.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal, get_args

from isolator.common.names import component_problem

from .errors import StateError, VolumeError
from .mountpoints import MOUNTPOINT_OPTION, Confinement, is_within
from .state import (
    VolumeRecord,
    delete_volume,
    import_legacy,
    load_state,
    read_legacy,
    save_volume,
    volume_file_name,
)

__all__ = ["COUNT_MODES", "MOUNTPOINT_OPTION", "CountMode", "DirectoryVolumes", "validate_name"]

CountMode = Literal["calls", "ids"]
COUNT_MODES: Final[tuple[CountMode, ...]] = get_args(CountMode)

_log = logging.getLogger(__name__)


def validate_name(name: str) -> None:
    """Refuse names that are not a single, safe path component."""
    if component_problem(name) is not None:
        raise VolumeError(f"invalid volume name {name!r}")


def _now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class DirectoryVolumes:
    """The volumes of one plugin: a state file plus directories its confinement allows."""

    def __init__(
        self,
        confinement: Confinement,
        state_dir: Path,
        *,
        count: CountMode = "calls",
        refuse_duplicate_id: bool = False,
        legacy_state: Path | None = None,
    ) -> None:
        """Load the saved state; ``StateError`` names the file if it is corrupt or if a
        volume in it lies outside the allowed directories (a hand-edited or stale file
        must not make the plugin hand out, or delete, a host directory).

        Without ``state_dir``, a version 1 ``legacy_state`` file is checked the same way
        and imported into it.
        """
        if count not in COUNT_MODES:
            raise ValueError(f"count mode must be one of {COUNT_MODES}, not {count!r}")
        self.confinement = confinement
        self.state_dir = state_dir
        self.count_mode: CountMode = count
        self.refuse_duplicate_id = refuse_duplicate_id
        self._lock = threading.Lock()
        self._volumes: dict[str, VolumeRecord] = {}
        legacy = None
        if legacy_state is not None and not state_dir.exists() and legacy_state.exists():
            legacy = legacy_state
        stored = read_legacy(legacy) if legacy else load_state(state_dir)
        for name, record in stored.items():
            problem = confinement.stored_problem(record.name, record.mountpoint, record.managed)
            if problem is not None:
                path = legacy or state_dir / volume_file_name(name)
                raise StateError(f"plugin state file {path}: volume {name!r} {problem}")
            self._volumes[name] = self._normalised(record)
        if legacy:
            import_legacy(stored, legacy, state_dir)
            _log.info("imported plugin state file %s into %s", legacy, state_dir)

    def _normalised(self, record: VolumeRecord) -> VolumeRecord:
        """A stored record under this mode (the state may come from the other mode)."""
        if self.count_mode == "ids":
            count = len(record.mounts)
        else:
            count = record.count if record.mounts else 0
        return dataclasses.replace(record, count=count, mounts=record.mounts if count else {})

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
            if record.count:
                raise VolumeError(
                    f"volume {name} is in use (mount count {record.count}, "
                    f"by {len(record.mounts)} ID(s))"
                )
            if record.managed:
                self.confinement.delete_own_directory(name)
            else:
                _log.info("volume %s removed; its directory %r is kept", name, record.mountpoint)
            self._commit(name, None)

    def mount(self, name: str, mount_id: str) -> str:
        """Count one more Mount by ``mount_id``; (re)create the directory; return its path.

        With ``refuse_duplicate_id``, a Mount by an ID that holds the volume is refused.
        """
        with self._lock:
            record = self._get(name)
            if self.refuse_duplicate_id and mount_id in record.mounts:
                raise VolumeError(
                    f"volume {name} is already mounted by ID {mount_id!r}; "
                    "unmount it before mounting it again"
                )
            self.confinement.make_directory(record.mountpoint)
            mounts = dict(record.mounts)
            mounts[mount_id] = mounts.get(mount_id, 0) + 1
            count = record.count + 1 if self.count_mode == "calls" else len(mounts)
            self._commit(name, dataclasses.replace(record, mounts=mounts, count=count))
            return record.mountpoint

    def unmount(self, name: str, mount_id: str) -> None:
        """Take back one Mount (``calls``) or the caller ``mount_id`` (``ids``).

        In ``calls`` mode any Unmount counts, as Docker's ``local`` driver counts: the ID
        only says whose entry in ``mounts`` goes down. In ``ids`` mode an ID is one caller,
        and its Unmount releases it however many Mounts it sent.

        Releasing what is not held succeeds, as Docker's ``local`` driver does: afterwards
        nothing is held, which is what the caller asked for. That covers a volume that does
        not exist, too (where ``local`` errs): the isolator unmounts every checkpointed
        volume after a failed prepare, also one whose Create this plugin refused, and an
        error here would strand its checkpoint for good (issue 10).
        """
        with self._lock:
            record = self._volumes.get(name)
            if record is None:
                _log.info("Unmount of volume %r, which does not exist: nothing to release", name)
                return
            mounts = dict(record.mounts)
            held = mounts.pop(mount_id, 0)
            if self.count_mode == "ids":
                if not held:
                    _log.info(
                        "Unmount of volume %s by ID %r, which holds no mount: nothing to release",
                        name,
                        mount_id,
                    )
                    return
                count = len(mounts)
            else:
                if not record.count:
                    _log.info(
                        "Unmount of volume %s by ID %r, which is not mounted: nothing to release",
                        name,
                        mount_id,
                    )
                    return
                if held > 1:
                    mounts[mount_id] = held - 1
                count = record.count - 1
                if not count:
                    mounts = {}  # whoever still appears there, nothing is mounted any more
            self._commit(name, dataclasses.replace(record, mounts=mounts, count=count))
            if not count:
                _log.info("volume %s released: its mount count is 0", name)

    def path(self, name: str) -> str:
        """The mountpoint while the volume is mounted, else ``""`` (Docker's Path contract)."""
        with self._lock:
            record = self._get(name)
            return record.mountpoint if record.count else ""

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
        """Save ``name``'s file (or delete it), then apply the change in memory."""
        try:
            if record is None:
                delete_volume(self.state_dir, name)
            else:
                save_volume(self.state_dir, record)
        except StateError as error:
            raise VolumeError(str(error)) from error
        if record is None:
            self._volumes.pop(name, None)
        else:
            self._volumes[name] = record
