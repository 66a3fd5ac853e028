"""The isolator's configuration (the docker/volume part of Mesos's agent flags).

``Flags`` is immutable and checks itself on construction, so a bad value fails at start-up
with a message naming the flag, instead of failing later in the middle of a ``prepare``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from isolator.defaults import (
    CHECKPOINT_DIR,
    MOUNT_TIMEOUT,
    PLUGIN_SOCKET_DIR,
    PLUGIN_SPEC_DIRS,
    SANDBOX_DIRECTORY,
    UNMOUNT_TIMEOUT,
)

__all__ = ["DRIVER_CLIENTS", "LAUNCH_STYLES", "Flags"]

LAUNCH_STYLES: tuple[str, ...] = ("mounts", "pre_exec_commands")
"""How ``prepare`` hands the mounts to the launcher (``Flags.docker_volume_launch_style``)."""

DRIVER_CLIENTS: tuple[str, ...] = ("plugin", "dvdcli")
"""Which client talks to the volume drivers (``Flags.docker_volume_driver_client``)."""


def _invalid(name: str, value: object, problem: str, expected: str) -> ValueError:
    return ValueError(f"Invalid flag '{name}': {value!r} {problem}; expected {expected}")


@dataclass(frozen=True, kw_only=True)
class Flags:
    """Settings of the ``docker/volume`` isolator and its driver clients.

    Keyword-only; ``docker_plugin_spec_dirs`` also accepts a list (stored as a tuple) and the
    timeouts accept ints (stored as floats), so a ``Flags`` is hashable and comparable.
    """

    docker_volume_checkpoint_dir: str = CHECKPOINT_DIR
    """Root of the per-container checkpoints (Mesos: ``--docker_volume_checkpoint_dir``)."""

    docker_volume_chown: bool = False
    """Give a mounted volume's root to the container's user (Mesos: ``--docker_volume_chown``)."""

    sandbox_directory: str = SANDBOX_DIRECTORY
    """Sandbox path inside a container with its own rootfs (Mesos: ``--sandbox_directory``)."""

    docker_volume_launch_style: str = "mounts"
    """Hand mounts over as ``mounts`` (Mesos) or ``pre_exec_commands`` (old Mesos); no flag."""

    docker_volume_mount_timeout: float = MOUNT_TIMEOUT
    """Seconds before a mount is abandoned (Mesos: ``MOUNT_TIMEOUT`` in driver.cpp)."""

    docker_volume_unmount_timeout: float = UNMOUNT_TIMEOUT
    """Seconds before an unmount is abandoned (Mesos: ``UNMOUNT_TIMEOUT``, MESOS-7439)."""

    dvdcli_path: str = "dvdcli"
    """The dvdcli binary, a name to look up on PATH or a path (Mesos: ``os::which("dvdcli")``)."""

    docker_volume_driver_client: str = "plugin"
    """``plugin``: Docker's volume plugin API; ``dvdcli``: Mesos's ``DriverClient``; no flag."""

    docker_plugin_socket_dir: str = PLUGIN_SOCKET_DIR
    """Where plugins' ``<name>.sock`` sockets live (Docker's discovery; no Mesos flag)."""

    docker_plugin_spec_dirs: tuple[str, ...] = PLUGIN_SPEC_DIRS
    """Where plugins' ``.spec``/``.json`` files live, in search order (Docker's; no Mesos flag)."""

    docker_volume_explicit_create: bool = False
    """Don't create a missing volume on mount (dvdcli's ``--explicitcreate``; Mesos never does)."""

    def __post_init__(self) -> None:
        self._check_nonempty_string("docker_volume_checkpoint_dir")
        self._check_bool("docker_volume_chown")
        self._check_absolute_path("sandbox_directory")
        self._check_choice("docker_volume_launch_style", LAUNCH_STYLES)
        self._check_seconds("docker_volume_mount_timeout")
        self._check_seconds("docker_volume_unmount_timeout")
        self._check_nonempty_string("dvdcli_path")
        self._check_choice("docker_volume_driver_client", DRIVER_CLIENTS)
        self._check_absolute_path("docker_plugin_socket_dir")
        self._check_spec_dirs()
        self._check_bool("docker_volume_explicit_create")

    def _set(self, name: str, value: object) -> None:
        # The dataclass is frozen; normalising a value during construction is still fine.
        object.__setattr__(self, name, value)

    def _check_nonempty_string(self, name: str) -> None:
        value: Any = getattr(self, name)
        if not isinstance(value, str):
            raise _invalid(name, value, "is not a string", "a non-empty string")
        if not value:
            raise _invalid(name, value, "is empty", "a non-empty string")

    def _check_absolute_path(self, name: str) -> None:
        value: Any = getattr(self, name)
        if not isinstance(value, str):
            raise _invalid(name, value, "is not a string", "an absolute path")
        if not value.startswith("/"):
            raise _invalid(name, value, "is not an absolute path", "a path starting with '/'")

    def _check_bool(self, name: str) -> None:
        value: Any = getattr(self, name)
        if not isinstance(value, bool):
            raise _invalid(name, value, "is not a bool", "True or False")

    def _check_choice(self, name: str, choices: tuple[str, ...]) -> None:
        value: Any = getattr(self, name)
        if not isinstance(value, str) or value not in choices:
            allowed = ", ".join(repr(choice) for choice in choices)
            raise _invalid(name, value, "is not supported", f"one of {allowed}")

    def _check_seconds(self, name: str) -> None:
        value: Any = getattr(self, name)
        expected = "a finite number of seconds greater than 0"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(name, value, "is not a number", expected)
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond float's range
            seconds = math.inf
        if not math.isfinite(seconds):
            raise _invalid(name, value, "is not finite", expected)
        if seconds <= 0:
            raise _invalid(name, value, "is not greater than 0", expected)
        self._set(name, seconds)

    def _check_spec_dirs(self) -> None:
        name = "docker_plugin_spec_dirs"
        value: Any = getattr(self, name)
        if not isinstance(value, list | tuple):
            raise _invalid(name, value, "is not a list or tuple", "a sequence of absolute paths")
        for item in value:
            if not isinstance(item, str) or not item.startswith("/"):
                raise _invalid(
                    name,
                    value,
                    f"contains {item!r}, which is not an absolute path",
                    "a sequence of absolute paths",
                )
        self._set(name, tuple(value))
