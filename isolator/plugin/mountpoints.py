"""Where a volume's directory may live, and making or deleting one without leaving there.

A task chooses the ``mountpoint`` option and the isolator, as root, bind mounts (and may
``chown``) whatever directory the plugin returns: a plugin that accepts ``/etc`` hands the
task the host (issue 9). So a mountpoint must lie strictly inside an allowed directory: the
plugin's own ``<root>/volumes`` or one the operator allows (``--allow-mountpoint``).

- The option must be absolute, free of NUL and of ``..`` components (refused, not
  normalised: a path that climbs is a mistake or an attack, never a need).
- Symlinks in it are resolved (``realpath``) and the result must still be inside; the stored
  path is the resolved one, so it holds no symlink.
- An allowed directory itself is refused as a mountpoint: that volume would contain every
  other volume made there. ``/`` is never an allowed directory.
- A mountpoint may not hold the plugin's own files (root, state file, socket).
- Directories are made by walking from the allowed directory with ``O_NOFOLLOW``, so a
  symlink planted after the check fails the call instead of being followed; deletion is
  ``rmtree`` of a real directory under ``<root>/volumes`` only, through a descriptor.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterable

from isolator.common.errors import strerror

from .errors import PluginError, VolumeError

__all__ = ["MOUNTPOINT_OPTION", "Confinement", "is_inside", "is_within"]

MOUNTPOINT_OPTION = "mountpoint"

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_HINT = "start the plugin with --allow-mountpoint to allow it"


def is_inside(path: str, directory: str) -> bool:
    """Whether normalised absolute ``path`` lies strictly inside ``directory``."""
    return path != directory and os.path.commonpath([path, directory]) == directory


def is_within(path: str, directory: str) -> bool:
    """Whether normalised absolute ``path`` is ``directory`` or lies inside it."""
    return path == directory or is_inside(path, directory)


def _allowed_root(directory: str | os.PathLike[str]) -> str:
    """An operator's directory as a real path; ``/`` and missing directories are refused."""
    real = os.path.realpath(os.path.abspath(directory))
    where = f"allowed mountpoint directory {os.fspath(directory)!r}"
    if real == "/":
        raise PluginError(f"{where} is the whole host")
    if not os.path.isdir(real):
        raise PluginError(f"{where} is not an existing directory")
    return real


class Confinement:
    """The allowed directories of one plugin and the only ways it touches directories.

    Built at start; raises ``PluginError`` for an allowed directory that is ``/`` or missing.
    The plugin's own volumes directory need not exist yet.
    """

    def __init__(
        self,
        volumes_dir: str | os.PathLike[str],
        allowed: Iterable[str | os.PathLike[str]] = (),
        reserved: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        self.volumes_dir = os.path.realpath(volumes_dir)
        roots = [self.volumes_dir, *(_allowed_root(directory) for directory in allowed)]
        self.roots: tuple[str, ...] = tuple(dict.fromkeys(roots))
        """Real paths, the plugin's own volumes directory first."""
        self.listed = repr(list(self.roots))
        """The allowed directories as error messages show them."""
        self._reserved = tuple(os.path.realpath(os.path.abspath(path)) for path in reserved)

    def own_directory(self, name: str) -> str:
        """Where the volume ``name`` lives when no mountpoint is given (a checked name)."""
        return os.path.join(self.volumes_dir, name)

    # -- checks -----------------------------------------------------------------------------

    def resolve(self, value: str) -> str:
        """The real directory the ``mountpoint`` option names, or ``VolumeError`` saying why not."""
        where = f"option {MOUNTPOINT_OPTION!r}: {value!r}"
        if "\0" in value:
            raise VolumeError(f"{where} contains a NUL character")
        if not os.path.isabs(value):
            raise VolumeError(f"{where} must be an absolute path")
        if ".." in value.split("/"):
            raise VolumeError(f"{where} has a '..' component; {self._inside_one()}")
        real = os.path.realpath(value)
        problem = self.problem(real)
        if problem is not None:
            if real != os.path.normpath(value):
                where += f" resolves to {real!r}, which"
            raise VolumeError(f"{where} {problem}")
        return real

    def problem(self, path: str) -> str | None:
        """Why normalised ``path`` cannot be a mountpoint, completing "<path> ...", or None."""
        if path == "/":
            return f"is the host's root directory; {self._inside_one()}"
        if path in self.roots:
            return f"is an allowed directory itself; {self._inside_one()}"
        if not any(is_inside(path, root) for root in self.roots):
            return f"is outside the allowed directories {self.listed}; {_HINT}"
        for own in self._reserved:
            if is_within(own, path):
                return f"holds the plugin's own files ({own!r})"
        return None

    def stored_problem(self, name: str, mountpoint: str, managed: bool) -> str | None:
        """Why a record read from the state file cannot be trusted, or None."""
        if ".." in mountpoint.split("/") or os.path.normpath(mountpoint) != mountpoint:
            return f"mountpoint {mountpoint!r} is not a normalised path"
        own = self.own_directory(name)
        if managed and mountpoint != own:
            return f"is the plugin's own but its mountpoint {mountpoint!r} is not {own!r}"
        problem = self.problem(mountpoint)
        return None if problem is None else f"mountpoint {mountpoint!r} {problem}"

    def _inside_one(self) -> str:
        return f"a volume must be a directory inside one of the allowed directories {self.listed}"

    # -- the filesystem -------------------------------------------------------------------

    def make_directory(self, path: str) -> None:
        """``mkdir -p path`` from its allowed directory, following no symlink on the way."""
        root = next((root for root in self.roots if is_inside(path, root)), None)
        if root is None:
            raise VolumeError(f"cannot create directory {path!r}: {self.problem(path)}")
        try:
            fd = os.open(root, _DIRECTORY)
        except OSError as error:
            reason = strerror(error)
            raise VolumeError(f"cannot open allowed directory {root!r}: {reason}") from error
        done = root
        try:
            for part in os.path.relpath(path, root).split(os.sep):
                done = os.path.join(done, part)
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, _DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = child
        except OSError as error:
            reason = _failed_step(fd, os.path.basename(done), error)
            raise VolumeError(f"cannot create directory {path!r}: {done!r} {reason}") from error
        finally:
            os.close(fd)

    def delete_own_directory(self, name: str) -> None:
        """``rm -r <root>/volumes/<name>`` if it is a real directory; a symlink is refused."""
        path = self.own_directory(name)
        try:
            fd = os.open(self.volumes_dir, _DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return  # nothing of ours left to delete
        except OSError as error:
            raise VolumeError(f"cannot delete {path!r}: {strerror(error)}") from error
        try:
            try:
                mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                return
            if not stat.S_ISDIR(mode):
                kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a directory"
                raise VolumeError(f"refusing to delete {path!r}: it is {kind}; remove it by hand")
            shutil.rmtree(name, dir_fd=fd)  # by descriptor, never following a symlink
        except OSError as error:
            raise VolumeError(f"cannot delete {path!r}: {strerror(error)}") from error
        finally:
            os.close(fd)


def _failed_step(parent: int, part: str, error: OSError) -> str:
    """Why a step of the walk failed: a symlink says so (the kernel says ENOTDIR or ELOOP)."""
    with contextlib.suppress(OSError):
        if stat.S_ISLNK(os.stat(part, dir_fd=parent, follow_symlinks=False).st_mode):
            return "is a symbolic link"
    return f"failed: {strerror(error)}"
