"""What ``isolator-dvdcli`` has mounted, and where: a small locked state that keeps a Mesos
agent's calls balanced toward the plugin.

A Mesos agent runs ``dvdcli mount`` for every container that uses a volume and ``dvdcli
unmount`` once, after the last (``plugin-call-balance.md``). Passed through, that is N
Mounts and one Unmount: a plugin that counts calls (Docker's ``local`` driver) keeps the
volume forever, one that refuses a duplicate ID fails the second container. So the first
mount is recorded here with its mount point, later mounts print that record without asking
the plugin, and the unmount sends one Unmount, with the recorded ID, and forgets the record.

Layout, in the state directory (default ``/run/isolator-dvdcli``: gone at reboot, as the
mounts are)::

    m-<driver>@<volume>.json   a record (each part percent-encoded: ``names.encoded_file_name``)
    m-<driver>@<volume>.lock   its lock (``fcntl.flock``), kept: removing it would race

A record is ``{"version": 1, "driver": D, "name": N, "mount_id": ID, "mountpoint": P}``,
replaced atomically and durably. ``mountpoint`` is ``null`` while a Mount is in flight or
after one whose outcome is unknown (a timeout, a lost connection, a kill): such a volume
counts as mounted, so the unmount still sends its one Unmount, and the next mount asks
``VolumeDriver.Path`` before it sends a Mount of its own.

The directory must be a real directory owned by this user and writable by nobody else; a
record is read without following links, at most ``MAX_RECORD`` bytes, and must name the
(driver, volume) its file stands for.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from isolator.common.errors import strerror
from isolator.common.fs import (
    WriteError,
    fsync_directory,
    makedirs_durably,
    read_small_file,
    write_atomically,
)
from isolator.common.names import encoded_file_name

__all__ = [
    "DEFAULT_STATE_DIR",
    "LOCK_TIMEOUT",
    "MAX_RECORD",
    "Ledger",
    "LedgerError",
    "Record",
]

DEFAULT_STATE_DIR: Final = "/run/isolator-dvdcli"
MAX_RECORD: Final = 64 << 10
"""A record is about 200 bytes plus the names; anything larger is not ours."""
LOCK_TIMEOUT: Final = 150.0
"""Seconds to wait for another command on the same volume: Mesos kills a dvdcli after
120 s, which releases its lock."""
_VERSION: Final = 1
_POLL: Final = 0.05


class LedgerError(Exception):
    """The state cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Record:
    """One volume this command has mounted: ``mountpoint`` None while unknown."""

    driver: str
    name: str
    mount_id: str
    mountpoint: str | None

    def to_json(self) -> bytes:
        data = {
            "version": _VERSION,
            "driver": self.driver,
            "name": self.name,
            "mount_id": self.mount_id,
            "mountpoint": self.mountpoint,
        }
        return (json.dumps(data, sort_keys=True) + "\n").encode("utf-8", "surrogatepass")


class Ledger:
    """The records in ``state_dir``; ``locked(driver, name)`` holds one volume's lock."""

    def __init__(self, state_dir: str, *, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.state_dir = Path(state_dir)
        self.lock_timeout = lock_timeout

    def _path(self, driver: str, name: str, suffix: str) -> Path:
        return self.state_dir / encoded_file_name(driver, name, kind="m", suffix=suffix)

    def _check_directory(self) -> None:
        """Make the directory (0700) if missing; refuse one another user could write."""
        where = f"isolator-dvdcli state directory {str(self.state_dir)!r}"
        try:
            makedirs_durably(str(self.state_dir), 0o700)
            info = os.lstat(self.state_dir)
        except OSError as error:
            raise LedgerError(f"cannot create {where}: {strerror(error)}") from error
        if not stat.S_ISDIR(info.st_mode):
            raise LedgerError(f"{where} is not a directory")
        if info.st_uid != os.geteuid():
            raise LedgerError(f"{where} belongs to user {info.st_uid}, not to this user")
        if info.st_mode & 0o022:
            raise LedgerError(f"{where} is writable by other users")

    @contextlib.contextmanager
    def locked(self, driver: str, name: str) -> Iterator[None]:
        """Hold the volume's lock for the block: one command per volume at a time."""
        self._check_directory()
        path = self._path(driver, name, ".lock")
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as error:
            raise LedgerError(f"cannot open lock file {path}: {strerror(error)}") from error
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LedgerError(
                            f"lock file {path} is still held by another command on this "
                            f"volume after {self.lock_timeout:g} s"
                        ) from None
                    time.sleep(_POLL)  # another process holds it: nothing to wait on
            yield
        finally:
            os.close(fd)  # releases the lock

    def read(self, driver: str, name: str) -> Record | None:
        """The volume's record, None if there is none; ``LedgerError`` if it is bad."""
        path = self._path(driver, name, ".json")
        try:
            data = read_small_file(path, MAX_RECORD)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise LedgerError(f"cannot read record {path}: {strerror(error)}") from error
        except ValueError as error:  # not a regular file, or too large
            raise LedgerError(f"corrupt record {path}: {error}") from error
        try:
            return _parse(json.loads(data), driver, name)
        except OSError as error:
            raise LedgerError(f"cannot read record {path}: {strerror(error)}") from error
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError too
            raise LedgerError(f"corrupt record {path}: {error}") from error

    def write(self, record: Record) -> None:
        """Replace the volume's record atomically and durably."""
        path = self._path(record.driver, record.name, ".json")
        try:
            write_atomically(path, record.to_json())
        except WriteError as error:
            raise LedgerError(f"cannot write record {path}: {error}") from error

    def forget(self, driver: str, name: str) -> None:
        """Delete the volume's record durably (its lock file stays)."""
        path = self._path(driver, name, ".json")
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            fsync_directory(str(self.state_dir))
        except OSError as error:
            raise LedgerError(f"cannot delete record {path}: {strerror(error)}") from error


def _parse(data: object, driver: str, name: str) -> Record:
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        raise ValueError(f"not a version {_VERSION} record")
    if data.get("driver") != driver or data.get("name") != name:
        raise ValueError("it names another volume than its file does")
    mount_id, mountpoint = data.get("mount_id"), data.get("mountpoint")
    if not isinstance(mount_id, str):
        raise ValueError("'mount_id' is not a string")
    if mountpoint is not None and not (isinstance(mountpoint, str) and mountpoint):
        raise ValueError("'mountpoint' is neither a path nor null")
    return Record(driver, name, mount_id, mountpoint)
