"""Linux kernel constants the isolator and the launcher share (``<sched.h>``, ``<sys/mount.h>``,
``<sys/prctl.h>``).

Named once here so that no module spells a mount flag as a bare number.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CLONE_NEWNS",
    "MS_BIND",
    "MS_NOATIME",
    "MS_NODEV",
    "MS_NODIRATIME",
    "MS_NOEXEC",
    "MS_NOSUID",
    "MS_RDONLY",
    "MS_REC",
    "MS_RELATIME",
    "MS_REMOUNT",
    "MS_SHARED",
    "MS_SLAVE",
    "PR_SET_CHILD_SUBREAPER",
    "PR_SET_PDEATHSIG",
]

CLONE_NEWNS: Final = 0x00020000
"""A new mount namespace (``unshare(2)``, ``clone(2)``)."""

MS_RDONLY: Final = 1
MS_NOSUID: Final = 2
MS_NODEV: Final = 4
MS_NOEXEC: Final = 8
MS_REMOUNT: Final = 32
MS_NOATIME: Final = 1024
MS_NODIRATIME: Final = 2048
MS_BIND: Final = 4096
MS_REC: Final = 16384
MS_SLAVE: Final = 1 << 19
MS_SHARED: Final = 1 << 20
MS_RELATIME: Final = 1 << 21

PR_SET_PDEATHSIG: Final = 1
"""``prctl(2)``: the signal this process gets when its parent dies."""
PR_SET_CHILD_SUBREAPER: Final = 36
"""``prctl(2)``: orphaned descendants are reparented to this process instead of init."""
