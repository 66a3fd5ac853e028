"""Which filesystem a path is on, from ``/proc/self/mountinfo``: for ``isolator-ctl doctor``
and for the isolator's choice of where its checkpoint I/O runs."""

from __future__ import annotations

import os
import re
from typing import Final

__all__ = ["MEMORY_BACKED", "MOUNTINFO", "existing_ancestor", "filesystem_of", "memory_backed"]

MOUNTINFO: Final = "/proc/self/mountinfo"
MEMORY_BACKED: Final = frozenset({"tmpfs", "ramfs"})
"""Filesystems in memory: a write or an fsync there never waits for a device."""
_OCTAL: Final = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """A mountinfo path: space, tab, newline and backslash are octal escapes (``\\040``)."""
    return _OCTAL.sub(lambda match: chr(int(match.group(1), 8)), field)


def filesystem_of(path: str) -> tuple[str, str]:
    """The type and mount point of the filesystem ``path`` (or its nearest existing
    ancestor) is on; ``("unknown", "")`` if not found. Raises ``OSError`` when
    ``/proc/self/mountinfo`` cannot be read."""
    target = os.path.realpath(existing_ancestor(path))
    best = ("unknown", "")
    with open(MOUNTINFO, encoding="utf-8", errors="replace") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            point = _unescape(fields[4])
            fstype = fields[fields.index("-") + 1]
            inside = target == point or target.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best[1]):
                best = (fstype, point)
    return best


def memory_backed(path: str) -> bool:
    """Whether ``path`` is on a filesystem in memory; False when that cannot be told."""
    try:
        return filesystem_of(path)[0] in MEMORY_BACKED
    except (OSError, ValueError, IndexError):
        return False


def existing_ancestor(path: str) -> str:
    """``path`` itself if it exists, else its nearest existing ancestor."""
    current = os.path.abspath(path)
    while not os.path.exists(current):
        current = os.path.dirname(current)
    return current
