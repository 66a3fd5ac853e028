"""Linux kernel constants the isolator and the launcher share (``<sched.h>``, ``<sys/mount.h>``,
``<sys/prctl.h>``), and the two ways to the kernel the stdlib lacks: the C library (``libc``)
and a pidfd that says "no such process" as ``None`` (``open_pidfd``).

Named once here so that no module spells a mount flag as a bare number, loads libc its own
way or wraps ``pidfd_open`` again.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
from typing import Final

__all__ = [
    "CLONE_NEWNS",
    "MNT_DETACH",
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
    "libc",
    "open_pidfd",
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

MNT_DETACH: Final = 2
"""``umount2(2)``: detach now, finish when the mount is no longer busy."""

PR_SET_PDEATHSIG: Final = 1
"""``prctl(2)``: the signal this process gets when its parent dies."""
PR_SET_CHILD_SUBREAPER: Final = 36
"""``prctl(2)``: orphaned descendants are reparented to this process instead of init."""


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library, loaded once, keeping ``errno`` for ``ctypes.get_errno()``, with the
    prototypes of the calls this package makes (``unshare``, ``mount``, ``umount2``,
    ``prctl``).

    A process that forks and calls it in the child (a ``preexec_fn``) calls it once before,
    so the child never loads a library between fork and exec.
    """
    library = ctypes.CDLL(None, use_errno=True)
    library.unshare.argtypes = [ctypes.c_int]
    library.unshare.restype = ctypes.c_int
    library.mount.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    ]
    library.mount.restype = ctypes.c_int
    library.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    library.umount2.restype = ctypes.c_int
    library.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    library.prctl.restype = ctypes.c_int
    return library


def open_pidfd(pid: int) -> int | None:
    """A pidfd for process ``pid`` (``pidfd_open(2)``, Linux 5.3; close-on-exec), or
    ``None`` when there is no such process (it has exited and been reaped).

    Raises ``OSError`` for every other failure: ``ENOSYS`` when this kernel or Python has
    no ``pidfd_open``, ``EMFILE``, ...
    """
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        raise OSError(errno.ENOSYS, "This Python has no os.pidfd_open")
    try:
        fd: int = opener(pid)
    except ProcessLookupError:
        return None
    return fd
