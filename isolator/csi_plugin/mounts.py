"""Bind mounts for the reference CSI plugin: ``mount(2)``/``umount2(2)`` and whether a path
is a mount point now (``/proc/self/mountinfo``), so every call can check before it acts."""

from __future__ import annotations

import ctypes
import os

from isolator.common.linux import MNT_DETACH, MS_BIND, MS_RDONLY, MS_REC, MS_REMOUNT, libc

__all__ = ["bind", "is_mount_point", "unmount"]

_EINVAL = 22


def _check(result: int, what: str, path: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what} '{path}': {os.strerror(error)}")


def bind(source: str, target: str, *, read_only: bool = False) -> None:
    """Bind ``source`` at ``target`` (recursively), then make it read-only if asked:
    a bind mount takes ``MS_RDONLY`` only on a remount."""
    _check(
        libc().mount(os.fsencode(source), os.fsencode(target), None, MS_BIND | MS_REC, None),
        "mount",
        target,
    )
    if read_only:
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        result = libc().mount(None, os.fsencode(target), None, flags, None)
        if result != 0:
            error = ctypes.get_errno()
            libc().umount2(os.fsencode(target), MNT_DETACH)
            raise OSError(error, f"remount read-only '{target}': {os.strerror(error)}")


def unmount(target: str) -> None:
    """Unmount ``target`` (lazily, as a busy mount must still go); not mounted is fine."""
    while is_mount_point(target):
        result = libc().umount2(os.fsencode(target), MNT_DETACH)
        if result != 0 and ctypes.get_errno() == _EINVAL:
            return  # not a mount point after all (raced)
        _check(result, "umount", target)


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as ``\\ooo``."""
    if "\\" not in field:
        return field
    out = bytearray()
    raw = field.encode()
    index = 0
    while index < len(raw):
        escape = raw[index + 1 : index + 4]
        if raw[index] == 0x5C and len(escape) == 3 and escape.isdigit():
            out.append(int(escape, 8))
            index += 4
        else:
            out.append(raw[index])
            index += 1
    return os.fsdecode(bytes(out))


def is_mount_point(path: str) -> bool:
    """Whether ``path`` (as given: made absolute, links not followed) is a mount point."""
    wanted = os.path.abspath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
        return any(_unescape(line.split(" ", 5)[4]) == wanted for line in table)
