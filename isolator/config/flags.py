"""The isolator's configuration (the docker/volume part of Mesos's agent flags).

``Flags`` is immutable and checks itself on construction, so a bad value fails at start-up
with a message naming the flag, instead of failing later in the middle of a ``prepare``.
Build one with keyword arguments, or from the agent's own command line and environment
(``Flags.from_args``, ``Flags.from_env``: Mesos's rules, see ``isolator.config.parsing``).
Each field carries its meaning in its own metadata (``field(metadata={HELP: ...})``), so the
flags reference (``python -m isolator.config.reference``) reads it at run time without
parsing any source.
"""

from __future__ import annotations

import math
import os
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

from isolator.config.defaults import (
    CHECKPOINT_DIR,
    CSI_RETRY_BUDGET,
    CSI_ROOT_DIR,
    CSI_RPC_TIMEOUT,
    MOUNT_TIMEOUT,
    PLUGIN_RETRY_BUDGET,
    PLUGIN_SOCKET_DIR,
    PLUGIN_SPEC_DIRS,
    SANDBOX_DIRECTORY,
    UNMOUNT_TIMEOUT,
)
from isolator.config.parsing import (
    ENV_PREFIX,
    flag_kinds,
    invalid_flag,
    parse_command_line,
    parse_environment,
)

__all__ = [
    "DRIVER_CLIENTS",
    "HELP",
    "LAUNCH_STYLES",
    "DriverClientName",
    "Flags",
    "LaunchStyle",
]

LaunchStyle = Literal["mounts", "pre_exec_commands"]
"""How ``prepare`` hands the mounts to the launcher (``Flags.docker_volume_launch_style``)."""

DriverClientName = Literal["plugin", "dvdcli"]
"""Which client talks to the volume drivers (``Flags.docker_volume_driver_client``)."""

LAUNCH_STYLES: tuple[LaunchStyle, ...] = typing.get_args(LaunchStyle)
DRIVER_CLIENTS: tuple[DriverClientName, ...] = typing.get_args(DriverClientName)

HELP: Final = "help"
"""The key of a ``Flags`` field's meaning (one paragraph) in its ``metadata``."""


def _help(text: str) -> dict[str, str]:
    return {HELP: text}


@dataclass(frozen=True, kw_only=True)
class Flags:
    """Settings of the ``docker/volume`` isolator and its driver clients, and of the
    ``volume/csi`` isolator (the ``csi_*`` flags).

    Keyword-only; ``docker_plugin_spec_dirs`` also accepts a list (stored as a tuple) and the
    durations accept ints (stored as float seconds), so a ``Flags`` is hashable and
    comparable. Raises ``ValueError`` (``parsing.FlagError``) naming the bad flag.
    Each field says what it means in its metadata (``metadata=_help(...)``): the flags
    reference and ``--help`` are written from it.
    """

    docker_volume_checkpoint_dir: str = field(
        default=CHECKPOINT_DIR,
        metadata=_help(
            "Where each container's checkpoint (the volumes it uses) is kept: a Mesos flag. Under "
            "``/var/run`` (a tmpfs) checkpoints do not survive a reboot."
        ),
    )

    docker_volume_chown: bool = field(
        default=False,
        metadata=_help(
            "Give a mounted volume's root directory to the container's user: a Mesos flag."
        ),
    )

    sandbox_directory: str = field(
        default=SANDBOX_DIRECTORY,
        metadata=_help(
            "The sandbox's path inside a container with its own root filesystem: a Mesos flag."
        ),
    )

    docker_volume_launch_style: LaunchStyle = field(
        default="mounts",
        metadata=_help(
            "How mounts reach the launcher: ``mounts`` (Mesos today) or ``pre_exec_commands`` "
            "(``mount`` commands, as Mesos before 1.5). Not in Mesos."
        ),
    )

    docker_volume_mount_timeout: float = field(
        default=MOUNT_TIMEOUT,
        metadata=_help(
            "How long a mount may take, from finding the plugin to its mount point (Mesos: "
            "``MOUNT_TIMEOUT`` in driver.cpp, not a flag)."
        ),
    )

    docker_volume_unmount_timeout: float = field(
        default=UNMOUNT_TIMEOUT,
        metadata=_help(
            "How long an unmount may take; a detach can take ~20 min (Mesos: ``UNMOUNT_TIMEOUT``, "
            "MESOS-7439, not a flag)."
        ),
    )

    dvdcli_path: str = field(
        default="dvdcli",
        metadata=_help(
            "The dvdcli binary for the ``dvdcli`` driver client: a name looked up on ``PATH``, or "
            'a path (Mesos: ``os::which("dvdcli")``).'
        ),
    )

    docker_volume_driver_client: DriverClientName = field(
        default="plugin",
        metadata=_help(
            "``plugin``: speak Docker's volume plugin protocol; ``dvdcli``: run dvdcli per call, "
            "as Mesos does. Not in Mesos."
        ),
    )

    docker_plugin_socket_dir: str = field(
        default=PLUGIN_SOCKET_DIR,
        metadata=_help(
            "Where plugins' ``NAME.sock`` sockets are found, as dockerd finds them. Not in Mesos."
        ),
    )

    docker_plugin_spec_dirs: tuple[str, ...] = field(
        default=PLUGIN_SPEC_DIRS,
        metadata=_help(
            "Where plugins' ``NAME.spec``/``NAME.json`` files are found, in search order, "
            "comma-separated. Not in Mesos."
        ),
    )

    docker_volume_explicit_create: bool = field(
        default=False,
        metadata=_help(
            "Refuse to mount a volume the plugin does not have, instead of creating it (dvdcli's "
            "``--explicitcreate``; Mesos never sets it). Not in Mesos."
        ),
    )

    docker_plugin_retry_budget: float = field(
        default=PLUGIN_RETRY_BUDGET,
        metadata=_help(
            "How long to keep retrying a plugin that is not found or refuses connections, with "
            "doubling waits from 1 s: 10 s gives up after ~7 s (Docker's 30 s: ~15 s, paid by "
            "every prepare and cleanup while a plugin is missing); 0: one attempt. Plugin client "
            "only."
        ),
    )

    docker_plugin_mount_id: str | None = field(
        default=None,
        metadata=_help(
            "The caller ID sent with every Mount and Unmount; unset: a stable per-machine ID (a "
            "hash of ``/etc/machine-id`` and the plugin directories). Keep it the same across "
            "agent restarts. Plugin client only."
        ),
    )

    csi_plugin_config_dir: str | None = field(
        default=None,
        metadata=_help(
            "A directory of JSON ``CSIPluginInfo`` files, one per CSI plugin (Mesos's field "
            "names; a volume's ``plugin_name`` is a file's ``type``): a Mesos flag. Unset: no CSI "
            "plugin is known and every CSI volume fails ``prepare``."
        ),
    )

    csi_root_dir: str = field(
        default=CSI_ROOT_DIR,
        metadata=_help(
            "Where the CSI isolator keeps each volume's state, its staging and target paths and "
            "each container's CSI checkpoint (Mesos: ``<work_dir>/csi``, not a flag)."
        ),
    )

    csi_rpc_timeout: float = field(
        default=CSI_RPC_TIMEOUT,
        metadata=_help(
            "How long one CSI call may take; a call past it is retried as ``DEADLINE_EXCEEDED`` "
            "(Mesos: ``DEFAULT_RPC_TIMEOUT``, not a flag). Not in Mesos."
        ),
    )

    csi_retry_budget: float = field(
        default=CSI_RETRY_BUDGET,
        metadata=_help(
            "How long a CSI operation keeps retrying ``UNAVAILABLE`` and ``DEADLINE_EXCEEDED``, "
            "with doubling waits from 0.1 s up to 10 s; 0: one attempt. Not in Mesos."
        ),
    )

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
        self._check_seconds("docker_plugin_retry_budget", zero=True)
        self._check_optional_string("docker_plugin_mount_id")
        self._check_optional_absolute_path("csi_plugin_config_dir")
        self._check_absolute_path("csi_root_dir")
        self._check_seconds("csi_rpc_timeout")
        self._check_seconds("csi_retry_budget", zero=True)

    @classmethod
    def from_args(
        cls, argv: Sequence[str], *, unknowns: bool = False, base: Flags | None = None
    ) -> Flags:
        """Flags from Mesos-style command-line flags (``--docker_volume_chown``,
        ``--docker_volume_mount_timeout=2mins``...), on top of ``base`` (the defaults).

        An unknown flag raises unless ``unknowns`` (then it is skipped, to read an agent's
        whole command line). Raises ``ValueError`` naming the flag. Rules:
        ``isolator.config.parsing``.
        """
        values = parse_command_line(argv, flag_kinds(cls), unknowns=unknowns)
        return cls(**values) if base is None else replace(base, **values)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, base: Flags | None = None
    ) -> Flags:
        """Flags from ``MESOS_<FLAG>`` environment variables, as the agent reads them
        (``environ`` defaults to ``os.environ``); other variables are ignored. Combine
        as the agent does, the command line winning:
        ``Flags.from_args(argv, base=Flags.from_env())``.
        """
        environment = os.environ if environ is None else environ
        values = parse_environment(environment, flag_kinds(cls), prefix=ENV_PREFIX)
        return cls(**values) if base is None else replace(base, **values)

    def _set(self, name: str, value: object) -> None:
        # The dataclass is frozen; normalising a value during construction is still fine.
        object.__setattr__(self, name, value)

    def _check_optional_string(self, name: str) -> None:
        value: Any = getattr(self, name)
        if value is not None and not isinstance(value, str):
            raise invalid_flag(name, value, "is not a string", "a string or None")

    def _check_optional_absolute_path(self, name: str) -> None:
        if getattr(self, name) is not None:
            self._check_absolute_path(name)

    def _check_nonempty_string(self, name: str) -> None:
        value: Any = getattr(self, name)
        if not isinstance(value, str):
            raise invalid_flag(name, value, "is not a string", "a non-empty string")
        if not value:
            raise invalid_flag(name, value, "is empty", "a non-empty string")

    def _check_absolute_path(self, name: str) -> None:
        value: Any = getattr(self, name)
        if not isinstance(value, str):
            raise invalid_flag(name, value, "is not a string", "an absolute path")
        if not value.startswith("/"):
            raise invalid_flag(name, value, "is not an absolute path", "a path starting with '/'")

    def _check_bool(self, name: str) -> None:
        value: Any = getattr(self, name)
        if not isinstance(value, bool):
            raise invalid_flag(name, value, "is not a bool", "True or False")

    def _check_choice(self, name: str, choices: tuple[str, ...]) -> None:
        value: Any = getattr(self, name)
        if not isinstance(value, str) or value not in choices:
            allowed = ", ".join(repr(choice) for choice in choices)
            raise invalid_flag(name, value, "is not supported", f"one of {allowed}")

    def _check_seconds(self, name: str, *, zero: bool = False) -> None:
        value: Any = getattr(self, name)
        expected = "a finite number of seconds, " + ("0 or more" if zero else "greater than 0")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid_flag(name, value, "is not a number", expected)
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond float's range
            seconds = math.inf
        if not math.isfinite(seconds):
            raise invalid_flag(name, value, "is not finite", expected)
        if seconds < 0 and zero:
            raise invalid_flag(name, value, "is negative", expected)
        if seconds <= 0 and not zero:
            raise invalid_flag(name, value, "is not greater than 0", expected)
        self._set(name, seconds)

    def _check_spec_dirs(self) -> None:
        name = "docker_plugin_spec_dirs"
        value: Any = getattr(self, name)
        if not isinstance(value, list | tuple):
            raise invalid_flag(
                name, value, "is not a list or tuple", "a sequence of absolute paths"
            )
        for item in value:
            if not isinstance(item, str) or not item.startswith("/"):
                raise invalid_flag(
                    name,
                    value,
                    f"contains {item!r}, which is not an absolute path",
                    "a sequence of absolute paths",
                )
        self._set(name, tuple(value))
