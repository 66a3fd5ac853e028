"""Reading a container's root filesystem from the host without leaving it.

Before the runtime starts, the launcher looks inside the rootfs twice: for the command (so
a missing one exits 127 and a non-executable one 126, as on the host; the runtime itself
exits 1 for both) and for the user's numeric IDs in ``/etc/passwd`` and ``/etc/group``. The
rootfs is the task's: every link in it is resolved as if the rootfs were ``/`` (an absolute
link restarts at it, ``..`` stops there), never by the kernel, so nothing outside is read.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import NamedTuple

from isolator.common.names import printable
from isolator.launch.confine import (
    MAX_SYMLINKS,
    ConfinementError,
    components,
    open_no_symlinks,
    resolve_in_root,
)

__all__ = [
    "DEFAULT_PATH",
    "CommandProblem",
    "User",
    "find_command",
    "open_in_root",
    "read_in_root",
    "resolve_user",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The ``PATH`` a container gets when its environment names none (Docker's and runc's)."""

_MAX_ACCOUNT_FILE = 4 << 20  # bytes of /etc/passwd or /etc/group read at most


class User(NamedTuple):
    """A user as the runtime takes it: numeric IDs only."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...]


class CommandProblem(NamedTuple):
    """Why a command cannot run: the launcher's exit status for it and the message."""

    status: int
    message: str


def open_in_root(root: str, path: str) -> int:
    """An ``O_PATH`` descriptor of ``path`` inside ``root``, its links resolved inside it.

    Raises :class:`OSError` (``ENOENT`` when it is not there) or :class:`ConfinementError`.
    """
    parts = components(path)
    for _ in range(MAX_SYMLINKS + 1):
        if not parts or parts[-1] == "..":
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        parent = "/".join(parts[:-1])
        if parent:
            resolved = resolve_in_root(root, parent, create=False)
            directory = open_no_symlinks(resolved.path)
        else:
            directory = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = os.open(parts[-1], os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
        finally:
            os.close(directory)
        if not stat.S_ISLNK(os.fstat(fd).st_mode):
            return fd
        try:
            target = os.readlink("", dir_fd=fd)
        finally:
            os.close(fd)
        parts = components(target) if target.startswith("/") else parts[:-1] + components(target)
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))


def read_in_root(root: str, path: str, *, limit: int = _MAX_ACCOUNT_FILE) -> bytes:
    """The content of the regular file ``path`` inside ``root``, at most ``limit`` bytes."""
    located = open_in_root(root, path)
    try:
        if not stat.S_ISREG(os.fstat(located).st_mode):
            raise ConfinementError(f"'{printable(path)}' is not a regular file")
        fd = os.open(f"/proc/self/fd/{located}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(located)
    with os.fdopen(fd, "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise ConfinementError(f"'{printable(path)}' is larger than {limit} bytes")
    return data


def find_command(
    root: str, command: str, *, search_path: str | None, cwd: str
) -> CommandProblem | None:
    """Why ``command`` cannot be executed in ``root``, as ``execvp`` would find it, or ``None``.

    A name without ``/`` is looked up in ``search_path`` (the container's ``PATH``), one with
    ``/`` from ``cwd``. 127: found nowhere; 126: found but not an executable file.
    """
    shown = printable(command)
    if "/" in command:
        candidates = [command if command.startswith("/") else f"{cwd.rstrip('/')}/{command}"]
    else:
        directories = (search_path if search_path is not None else DEFAULT_PATH).split(":")
        candidates = [f"{directory or '.'}/{command}" for directory in directories]
        candidates = [c if c.startswith("/") else f"{cwd.rstrip('/')}/{c}" for c in candidates]
    found_unusable = False
    for candidate in candidates:
        try:
            fd = open_in_root(root, candidate)
        except (OSError, ConfinementError):
            continue
        try:
            mode = os.fstat(fd).st_mode
        finally:
            os.close(fd)
        if stat.S_ISREG(mode) and mode & 0o111:
            return None
        found_unusable = True
    if found_unusable:
        return CommandProblem(
            126, f"Failed to execute '{shown}' in the rootfs '{printable(root)}': Permission denied"
        )
    return CommandProblem(
        127,
        f"Failed to execute '{shown}' in the rootfs '{printable(root)}': No such file or directory",
    )


def resolve_user(root: str, user: str) -> User:
    """``user``'s uid, gid and groups from ``root``'s ``/etc/passwd`` and ``/etc/group``.

    As Mesos, which switches user inside the container's root: the name must be there.
    Raises :class:`ConfinementError` with the reason.
    """
    failure = f"Failed to resolve user '{printable(user)}' in the rootfs '{printable(root)}'"
    try:
        passwd = read_in_root(root, "/etc/passwd").decode(errors="replace")
    except (OSError, ConfinementError) as error:
        if user == "root":
            return User(0, 0, ())
        raise ConfinementError(f"{failure}: cannot read /etc/passwd: {error}") from None
    entry = _find_entry(passwd, user)
    if entry is None or len(entry) < 4:
        raise ConfinementError(f"{failure}: no such user in /etc/passwd")
    try:
        uid, gid = int(entry[2]), int(entry[3])
    except ValueError:
        raise ConfinementError(f"{failure}: its /etc/passwd entry has no numeric IDs") from None
    try:
        groups = read_in_root(root, "/etc/group").decode(errors="replace")
    except (OSError, ConfinementError):
        groups = ""
    additional = []
    for line in groups.splitlines():
        fields = line.split(":")
        member = len(fields) >= 4 and user in fields[3].split(",")
        if member and fields[2].isdigit() and int(fields[2]) != gid:
            additional.append(int(fields[2]))
    return User(uid, gid, tuple(additional))


def _find_entry(table: str, name: str) -> list[str] | None:
    for line in table.splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    return None
