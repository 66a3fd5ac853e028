"""Paths a task names, kept inside the root they belong to (a rootfs, a sandbox).

The isolator runs as root and a task controls both the path it asks for and, through its
image or its sandbox, the symbolic links along it. ``os.makedirs`` and ``mount(2)`` follow
such links anywhere on the host, so neither may see a task's path as is:

- :func:`resolve_in_root` walks the path one component at a time from a descriptor of the
  root (``openat(O_PATH | O_NOFOLLOW)``, ``readlinkat``, ``mkdirat``), reading each link and
  resolving it itself, as ``openat2`` does with ``RESOLVE_IN_ROOT`` (an absolute link
  restarts at the root, ``..`` stops there) or ``RESOLVE_BENEATH`` (a link that leaves is
  refused). No link is ever handed to the kernel to follow.
- :func:`open_no_symlinks` is the launcher's side: it opens a path prepared earlier without
  following a link anywhere along it, so a link planted after ``prepare`` is refused.

Like filepath-securejoin and runc, the result is checked against ``/proc/self/fd`` so a
directory moved during the walk cannot carry it outside.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from isolator.common.errors import strerror
from isolator.common.names import printable

__all__ = [
    "MAX_SYMLINKS",
    "ConfinementError",
    "Resolved",
    "components",
    "container_path_problem",
    "open_no_symlinks",
    "resolve_in_root",
]

MAX_SYMLINKS = 40
"""Links followed in one resolution before it fails with ELOOP: Linux's own limit."""

_OPEN_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class ConfinementError(Exception):
    """A path cannot be resolved or opened inside its root; the message says which part and why."""


def components(path: str) -> list[str]:
    """The path's components, without the empty and ``.`` ones a ``/`` or ``./`` leaves."""
    return [part for part in path.split("/") if part not in ("", ".")]


def container_path_problem(path: str) -> str | None:
    """Why ``path`` cannot be where a volume goes, or ``None``; completes "<what> ...".

    NUL names no path at all, ``..`` is how a path leaves its root, and a path with nothing
    left after normalising names the root itself, which a volume must not cover.
    """
    if "\0" in path:
        return "must not contain a NUL character"
    parts = components(path)
    if ".." in parts:
        return "must not contain a '..' component"
    if not parts:
        return "must name a directory below the root"
    return None


class Resolved(NamedTuple):
    """Where a path landed: the root as the kernel names it and the resolved path below it."""

    root: str
    relative: str

    @property
    def path(self) -> str:
        return f"{self.root.rstrip('/')}/{self.relative}"


# A part still to walk and the link it came from, printable (None: the caller's path).
_Part = tuple[str, str | None]


@dataclass
class _Walk:
    """Where a resolution stands: a descriptor and a name for each directory below the root."""

    root: str
    root_fd: int
    beneath: bool
    names: list[str] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    links: int = 0

    def here(self, *more: str) -> str:
        return "/".join([self.root.rstrip("/"), *self.names, *more])

    def current(self) -> int:
        return self.fds[-1] if self.fds else self.root_fd

    def up(self, origin: str | None) -> None:
        if self.names:
            self.names.pop()
            os.close(self.fds.pop())
        elif self.beneath:
            outside = f"points outside '{printable(self.root)}'"
            raise ConfinementError(f"{origin or 'the path'} {outside}")

    def to_root(self) -> None:
        while self.fds:
            os.close(self.fds.pop())
        self.names.clear()

    def enter(self, name: str, *, create: bool) -> int:
        """A descriptor of ``name`` in the current directory, not following it; maybe made."""
        try:
            return os.open(name, _OPEN_PATH, dir_fd=self.current())
        except FileNotFoundError:
            if not create:
                raise
        # mkdirat never follows a link at its last component. Made meanwhile by another?
        # Whatever it is, it is opened and checked as any other component.
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o777, dir_fd=self.current())
        return os.open(name, _OPEN_PATH, dir_fd=self.current())

    def follow(self, name: str, fd: int, pending: deque[_Part]) -> None:
        """Queue the target of the link ``fd`` (found at ``name``) in place of it."""
        target = os.readlink("", dir_fd=fd)  # readlinkat(fd, ""): the very link opened
        link = f"the symbolic link '{printable(self.here(name))}' -> '{printable(target)}'"
        self.links += 1
        if self.links > MAX_SYMLINKS:
            raise ConfinementError(f"{os.strerror(errno.ELOOP)} (at {link})")
        if target.startswith("/"):
            if self.beneath:
                raise ConfinementError(f"{link} points outside '{printable(self.root)}'")
            self.to_root()
        pending.extendleft((part, link) for part in reversed(components(target)))

    def step(self, part: str, origin: str | None, pending: deque[_Part], *, create: bool) -> None:
        if part == "..":
            self.up(origin)
            return
        fd = self.enter(part, create=create)
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                self.follow(part, fd, pending)
            elif not stat.S_ISDIR(mode):
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        except BaseException:
            os.close(fd)
            raise
        if stat.S_ISLNK(mode):
            os.close(fd)
            return
        self.names.append(part)
        self.fds.append(fd)

    def verify(self) -> None:
        """Refuse a result the kernel places elsewhere: a directory moved during the walk."""
        actual = os.readlink(f"/proc/self/fd/{self.current()}")
        if actual != self.here():
            raise ConfinementError(
                f"'{printable(self.here())}' moved while it was resolved "
                f"(it is now '{printable(actual)}')"
            )

    def close(self) -> None:
        self.to_root()
        os.close(self.root_fd)


def resolve_in_root(
    root: str, path: str, *, beneath: bool = False, create: bool = True
) -> Resolved:
    """``path`` resolved inside ``root``; missing directories are made there.

    ``beneath=False`` treats ``root`` as ``/`` (a rootfs: an absolute link restarts at it,
    ``..`` stops at it); ``beneath=True`` refuses any link that leaves ``root`` (a sandbox,
    whose absolute links mean the host). The answer names a directory with no link below the
    root; ``root`` itself is the agent's and is followed.

    Raises :class:`ConfinementError` (naming the link at fault) or :class:`OSError`.
    """
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        real_root = os.readlink(f"/proc/self/fd/{root_fd}")
    except BaseException:
        os.close(root_fd)
        raise
    walk = _Walk(real_root, root_fd, beneath)
    try:
        pending: deque[_Part] = deque((part, None) for part in components(path))
        while pending:
            part, origin = pending.popleft()
            try:
                walk.step(part, origin, pending, create=create)
            except OSError as error:
                if origin is None:
                    raise
                raise ConfinementError(f"{strerror(error)} (through {origin})") from error
        if not walk.names:
            raise ConfinementError(f"it resolves to the root '{printable(real_root)}' itself")
        walk.verify()
        return Resolved(real_root, "/".join(walk.names))
    finally:
        walk.close()


def open_no_symlinks(path: str) -> int:
    """An ``O_PATH`` descriptor of the absolute ``path``, refusing a link at any component.

    For the launcher: a path ``prepare`` resolved has no link below ``/`` any more, so a link
    found now was planted since. The caller closes the descriptor. Raises
    :class:`ConfinementError` or :class:`OSError`.
    """
    if not path.startswith("/"):
        raise ConfinementError("it is not an absolute path")
    parts = components(path)
    if ".." in parts:
        raise ConfinementError("it has a '..' component")
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    for index, part in enumerate(parts):
        try:
            child = os.open(part, _OPEN_PATH, dir_fd=fd)
        finally:
            os.close(fd)
        fd = child
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            os.close(fd)
            walked = "/" + "/".join(parts[: index + 1])
            raise ConfinementError(
                f"'{printable(walked)}' is a symbolic link; refusing to follow it"
            )
    return fd
