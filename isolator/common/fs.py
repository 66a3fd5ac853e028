"""Durable file writes: a crash leaves the old content or the new, never a torn file.

One implementation serves the isolator's checkpoints and the reference plugin's state
file: write a temporary file in the target's directory (so the rename never crosses
devices, MESOS-2319), fsync it, rename it over the target, fsync the directory so the
rename itself survives a power loss. Mesos renames without the fsyncs (MESOS-9507).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile

from isolator.common.errors import strerror

__all__ = [
    "FileTooLargeError",
    "NotRegularFileError",
    "WriteError",
    "fsync_directory",
    "makedirs_durably",
    "read_small_file",
    "remove_owned_directory",
    "write_atomically",
]


class WriteError(Exception):
    """A durable write failed; the message names the step and the file, as Mesos words it."""


def fsync_directory(directory: str) -> None:
    """Flush a directory's entries (a rename or a new file in it) to the device."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs_durably(directory: str, mode: int = 0o755) -> None:
    """``mkdir -p`` that fsyncs the parent of each directory it creates.

    Existing directories are accepted, as Mesos's ``os::mkdir``; raises ``OSError``.
    """
    missing: list[str] = []
    current = directory
    while current and not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for path in reversed(missing):
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            continue
        fsync_directory(os.path.dirname(path) or ".")


def _temporary_prefix(name: str) -> str:
    return f".{name}."


def _write_all_and_sync(fd: int, data: bytes) -> None:
    """Write all of ``data``, flush it to the device, and close ``fd`` in any case."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably; raise ``WriteError`` if not.

    Missing parent directories are created (durably). On failure the temporary file is
    removed and ``path`` keeps its old content.
    """
    target = os.fspath(path)
    base = os.path.dirname(target) or "."
    try:
        makedirs_durably(base)
    except OSError as error:
        raise WriteError(f"Failed to create directory '{base}': {strerror(error)}") from error
    try:
        fd, temp = tempfile.mkstemp(dir=base, prefix=_temporary_prefix(os.path.basename(target)))
    except OSError as error:
        raise WriteError(f"Failed to create temporary file: {strerror(error)}") from error
    renamed = False
    try:
        try:
            _write_all_and_sync(fd, data)
        except OSError as error:
            raise WriteError(
                f"Failed to write temporary file '{temp}': {strerror(error)}"
            ) from error
        try:
            os.rename(temp, target)
            renamed = True
            fsync_directory(base)  # part of the rename: Mesos's os::rename(sync=true)
        except OSError as error:
            raise WriteError(
                f"Failed to rename '{temp}' to '{target}': {strerror(error)}"
            ) from error
    except BaseException:
        if not renamed:
            with contextlib.suppress(OSError):  # the failure being reported matters more
                os.unlink(temp)
        raise


def remove_owned_directory(directory: str, *, files: tuple[str, ...]) -> None:
    """Remove ``directory`` and the ``files`` in it that we wrote (with any temporaries a
    crash left), durably; never anything else.

    A directory that holds anything more is left as it is and the removal fails with
    ``ENOTEMPTY``: whatever else is there is not ours to delete. Raises ``OSError``.
    """
    prefixes = tuple(_temporary_prefix(name) for name in files)
    for entry in os.listdir(directory):
        if entry in files or entry.startswith(prefixes):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, entry))
    os.rmdir(directory)
    fsync_directory(os.path.dirname(directory.rstrip("/")) or ".")


class NotRegularFileError(ValueError):
    """What ``read_small_file`` found is not a regular file (``mode``: its ``st_mode``)."""

    def __init__(self, mode: int) -> None:
        super().__init__("not a regular file")
        self.mode = mode


class FileTooLargeError(ValueError):
    """A file ``read_small_file`` refused: ``size`` bytes (None: it grew past ``limit``
    while being read)."""

    def __init__(self, size: int | None, limit: int) -> None:
        super().__init__(f"larger than {limit} bytes")
        self.size = size
        self.limit = limit


def read_small_file(path: str | os.PathLike[str], limit: int, *, follow: bool = False) -> bytes:
    """The bytes of the regular file at ``path``, which may have at most ``limit``.

    Never blocks on a FIFO (or a device), never reads past ``limit + 1`` bytes, and without
    ``follow`` never follows a link at ``path`` (``ELOOP``). Raises ``OSError``
    (``FileNotFoundError`` when there is none), ``NotRegularFileError`` and
    ``FileTooLargeError``, for the caller to word.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFileError(info.st_mode)
        if info.st_size > limit:
            raise FileTooLargeError(info.st_size, limit)
        content = _read_at_most(fd, min(info.st_size, limit) + 1, limit)
    finally:
        os.close(fd)
    if len(content) > limit:  # it grew meanwhile
        raise FileTooLargeError(None, limit)
    return content


def _read_at_most(fd: int, size: int, limit: int) -> bytes:
    """Up to ``size`` bytes: one read when the file is shorter, as a regular file reads
    short only at its end; up to ``limit + 1`` when it grew since it was stat'ed."""
    chunks = []
    while size > 0:
        chunk = os.read(fd, size)
        chunks.append(chunk)
        if len(chunk) < size:
            break
        size = limit + 1 - sum(map(len, chunks))
    return b"".join(chunks)
