"""The ``ID`` the agent sends with every Mount and Unmount: one caller, stable across restarts."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Sequence
from typing import Final

from isolator.config.defaults import PLUGIN_SOCKET_DIR, PLUGIN_SPEC_DIRS

__all__ = ["MACHINE_ID_PATHS", "default_mount_id", "machine_identity"]

MACHINE_ID_PATHS: Final = ("/etc/machine-id", "/var/lib/dbus/machine-id")

_MOUNT_ID_TAG: Final = b"mesos-docker-volume-isolator"


def machine_identity(paths: Sequence[str] = MACHINE_ID_PATHS) -> str:
    """This machine's ID: the first non-empty ID file, else the host name."""
    for path in paths:
        try:
            with open(path, encoding="utf-8") as file:
                value = file.read().strip()
        except (OSError, UnicodeDecodeError):
            continue
        if value:
            return value
    return socket.gethostname()


def default_mount_id(
    *,
    socket_dir: str = PLUGIN_SOCKET_DIR,
    spec_dirs: Sequence[str] = PLUGIN_SPEC_DIRS,
    machine_id: str | None = None,
) -> str:
    """The ``ID`` sent with Mount and Unmount: 64 hex digits, stable per machine and setup.

    Plugins count their callers by ID and release a volume at the last Unmount of the IDs
    that mounted it. Mesos keeps its own count across containers and sends one Unmount
    when the last user goes, so the agent must be one caller, with one ID, and it must
    be the same after an agent restart, or the Unmount of a volume mounted before the
    restart would not match. A hash of the machine ID (never sent as is: systemd asks
    applications not to expose it) and the discovery directories gives exactly that.
    """
    identity = machine_identity() if machine_id is None else machine_id
    digest = hashlib.sha256()
    for part in (_MOUNT_ID_TAG, identity.encode(), socket_dir.encode()):
        digest.update(part + b"\0")
    for directory in spec_dirs:
        digest.update(directory.encode() + b"\0")
    return digest.hexdigest()
