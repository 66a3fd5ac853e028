"""What a test may leave on the host: nothing. Read from /proc, shared by the checks."""

from __future__ import annotations

import os

__all__ = ["child_processes", "mount_table", "tree"]


def mount_table() -> list[str]:
    """This process's mount table, sorted: equal tables mean no mount came or went."""
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        return sorted(mountinfo)


def child_processes(*, zombies: bool = True) -> list[str]:
    """Processes whose parent is this one, as ``pid (state): command``."""
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                state, parent = stat.read().rsplit(")", 1)[1].split()[:2]
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        if parent == me and (zombies or state != "Z"):
            found.append(f"{entry} ({state}): {command}")
    return found


def tree(root: str | os.PathLike[str], *, skip: tuple[str, ...] = ()) -> list[str]:
    """Every path under ``root`` (links not followed), sorted; ``skip`` prunes subtrees.

    Taken before and after a test: equal trees mean nothing was made or removed there.
    """
    top = os.fspath(root)
    found = []
    for directory, subdirectories, files in os.walk(top):
        relative = os.path.relpath(directory, top)
        subdirectories[:] = [
            name
            for name in subdirectories
            if os.path.normpath(os.path.join(relative, name)) not in skip
        ]
        found += [os.path.normpath(os.path.join(relative, name)) for name in subdirectories + files]
    return sorted(found)
