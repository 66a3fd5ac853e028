"""The OCI bundle for a container with its own rootfs: ``config.json`` from a launch info.

What the isolator describes (bind mounts at host paths under the rootfs) becomes what an OCI
runtime takes (mounts at paths inside the container), plus what a container is run with
elsewhere (Docker, containerd): its own mount, PID, IPC and UTS namespaces, no new
privileges, Docker's default capabilities, the usual masked and read-only ``/proc`` paths.

- The sandbox is bound first, at ``Flags.sandbox_directory``, as Mesos mounts it before the
  volumes: a relative ``container_path`` names a place under it.
- A read-only volume is ``rro``, recursively read-only (``mount_setattr``), so a submount
  under it is read-only too; a plain ``ro`` on an ``rbind`` leaves submounts writable.
- ``rootfsPropagation`` is ``rslave``, as Mesos marks ``/``: host mounts made later still
  reach the container, nothing it mounts leaks back.
- A target must lie inside the rootfs (or the sandbox bound into it) with no link along it:
  ``prepare`` resolved it, so a link found now was planted since, and ``..`` is refused.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from typing import Any

from isolator.common.linux import (
    CLONE_NEWNS,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
)
from isolator.common.names import printable
from isolator.config.defaults import SANDBOX_DIRECTORY
from isolator.launch.confine import ConfinementError, components, resolve_in_root
from isolator.launch.launch_error import LaunchError
from isolator.launch.mounting import validate_launch_info
from isolator.launch.rootfs import DEFAULT_PATH, resolve_user
from isolator.protos import ContainerLaunchInfo, ContainerMountInfo

__all__ = [
    "CLONE_NAMESPACES",
    "DEFAULT_CAPABILITIES",
    "MASKED_PATHS",
    "READONLY_PATHS",
    "SANDBOX_ANNOTATION",
    "bundle_config",
    "container_destination",
]

OCI_VERSION = "1.0.2"

SANDBOX_ANNOTATION = "org.apache.mesos.isolator.sandbox"
"""The annotation naming the host sandbox: how recovery matches a running container."""

DEFAULT_CAPABILITIES = tuple(
    f"CAP_{name}"
    for name in (
        "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
        "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
    )
)  # fmt: skip
"""Docker's default set (moby ``oci/caps/defaults.go``)."""

MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)  # fmt: skip
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# Namespaces a launch info may ask for, by clone flag: the container gets the first four
# anyway; a network namespace (loopback only) only when asked.
CLONE_NAMESPACES = {
    CLONE_NEWNS: "mount",
    0x20000000: "pid",  # CLONE_NEWPID
    0x08000000: "ipc",  # CLONE_NEWIPC
    0x04000000: "uts",  # CLONE_NEWUTS
    0x40000000: "network",  # CLONE_NEWNET
}

_BIND_FLAGS = MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC

_SYSTEM_MOUNTS: list[dict[str, Any]] = [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {
        "destination": "/dev",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
        "destination": "/dev/pts",
        "type": "devpts",
        "source": "devpts",
        "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {
        "destination": "/dev/shm",
        "type": "tmpfs",
        "source": "shm",
        "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    },
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
]  # fmt: skip


def bundle_config(
    launch_info: ContainerLaunchInfo,
    argv: Sequence[str],
    *,
    rootfs: str,
    sandbox: str | None,
    env: Mapping[str, str] | None,
    cwd: str | None,
    sandbox_directory: str = SANDBOX_DIRECTORY,
) -> dict[str, Any]:
    """The ``config.json`` that runs ``argv`` in ``rootfs`` with ``launch_info`` applied.

    ``env`` replaces the environment (``PATH`` is added when it names none, so the runtime
    can find the command); ``cwd`` is a path inside the container (default: the sandbox when
    there is one, else ``/``). Raises :class:`LaunchError` naming what is refused.
    """
    if not argv:
        raise LaunchError("No command to launch")
    check_rootfs_launch_info(launch_info)
    root = _real_directory(rootfs, "rootfs")
    mounts = list(_SYSTEM_MOUNTS)
    if sandbox is not None:
        source = _real_directory(sandbox, "sandbox")
        mounts.append(_bind(sandbox_directory, source, read_only=False, recursive=True, extra=[]))
    for mount in launch_info.mounts:
        mounts.append(_volume_mount(mount, root, source if sandbox else None, sandbox_directory))
    environment = dict(env) if env is not None else {}
    environment.setdefault("PATH", DEFAULT_PATH)
    for key, value in environment.items():
        if "\0" in key or "\0" in value or "=" in key or not key:
            raise LaunchError(f"Invalid environment variable '{printable(key)}'")
    directory = cwd if cwd is not None else (
        launch_info.working_directory if launch_info.HasField("working_directory")
        else sandbox_directory if sandbox is not None else "/"
    )  # fmt: skip
    if not directory.startswith("/") or "\0" in directory:
        raise LaunchError(
            f"Invalid working directory '{printable(directory)}': it must be an absolute "
            "path inside the container"
        )
    user = _user(root, launch_info)
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": user,
            "args": list(argv),
            "env": [f"{key}={value}" for key, value in environment.items()],
            "cwd": directory,
            "capabilities": _capabilities(user["uid"]),
            "noNewPrivileges": True,
        },
        "root": {"path": root, "readonly": False},
        "mounts": mounts,
        "annotations": {SANDBOX_ANNOTATION: source} if sandbox is not None else {},
        "linux": {
            "namespaces": [{"type": kind} for kind in _namespaces(launch_info)],
            "rootfsPropagation": "rslave",
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        },
    }


def check_rootfs_launch_info(launch_info: ContainerLaunchInfo) -> None:
    """Refuse what a bundle cannot carry, rather than run the command without it."""
    unsupported = []
    if launch_info.pre_exec_commands:
        unsupported.append("pre_exec_commands (use the 'mounts' launch style)")
    if launch_info.HasField("command"):
        unsupported.append("command")
    if launch_info.enter_namespaces:
        unsupported.append("enter_namespaces")
    unsupported += [
        f"clone_namespaces ({namespace:#x})"
        for namespace in launch_info.clone_namespaces
        if namespace not in CLONE_NAMESPACES
    ]
    if unsupported:
        raise LaunchError(
            f"Unsupported launch info for a rootfs container: {', '.join(unsupported)}"
        )
    # The NUL checks of the host launcher; what it refuses only for the host is fine here.
    host_only = ContainerLaunchInfo()
    host_only.CopyFrom(launch_info)
    host_only.ClearField("rootfs")
    host_only.ClearField("user")
    del host_only.clone_namespaces[:]
    validate_launch_info(host_only)
    for what, value in (("rootfs", launch_info.rootfs), ("user", launch_info.user)):
        if "\0" in value:
            raise LaunchError(
                f"Invalid launch info: the {what} '{printable(value)}' contains a NUL character"
            )


def container_destination(
    target: str, root: str, sandbox: str | None, sandbox_directory: str = SANDBOX_DIRECTORY
) -> str:
    """The path inside the container of the host ``target`` under ``root`` (real paths).

    Under the sandbox's place in the rootfs, the target is checked in the host ``sandbox``
    (bound there). Raises :class:`LaunchError` for a target outside, with ``..``, or with a
    link along it.
    """
    failure = f"Invalid mount target '{printable(target)}'"
    parts = components(target)
    if not target.startswith("/") or ".." in parts:
        raise LaunchError(f"{failure}: it must be an absolute path without '..'")
    root_parts = components(root)
    if parts[: len(root_parts)] != root_parts or len(parts) == len(root_parts):
        raise LaunchError(f"{failure}: it is outside the rootfs '{printable(root)}'")
    inside = parts[len(root_parts) :]
    place = components(sandbox_directory)
    checked_root, checked = root, inside
    if sandbox is not None and inside[: len(place)] == place:
        checked_root, checked = sandbox, inside[len(place) :]
        if not checked:
            raise LaunchError(f"{failure}: it would cover the sandbox")
    try:
        resolved = resolve_in_root(checked_root, "/".join(checked), beneath=True)
    except (OSError, ConfinementError) as error:
        raise LaunchError(f"{failure}: {error}") from None
    if components(resolved.relative) != checked:
        raise LaunchError(f"{failure}: it has a symbolic link along it; refusing to follow it")
    return "/" + "/".join(inside)


def _volume_mount(
    mount: ContainerMountInfo, root: str, sandbox: str | None, sandbox_directory: str
) -> dict[str, Any]:
    shown = f"'{printable(mount.source)}' at '{printable(mount.target)}'"
    if not mount.flags & MS_BIND or not mount.HasField("source") or mount.flags & ~_BIND_FLAGS:
        raise LaunchError(
            f"Unsupported mount {shown} for a rootfs container: only bind mounts "
            "(MS_BIND with MS_REC, MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC) are passed on"
        )
    source = mount.source
    try:
        mode = os.lstat(source).st_mode
    except OSError as error:
        raise LaunchError(f"Failed to mount {shown}: {os.strerror(error.errno or 0)}") from None
    if stat.S_ISLNK(mode) or not source.startswith("/"):
        raise LaunchError(f"Failed to mount {shown}: the source is a symbolic link or relative")
    destination = container_destination(mount.target, root, sandbox, sandbox_directory)
    extra = [
        name
        for flag, name in ((MS_NOSUID, "nosuid"), (MS_NODEV, "nodev"), (MS_NOEXEC, "noexec"))
        if mount.flags & flag
    ]
    return _bind(
        destination,
        source,
        read_only=bool(mount.flags & MS_RDONLY),
        recursive=bool(mount.flags & MS_REC),
        extra=extra,
    )


def _bind(
    destination: str, source: str, *, read_only: bool, recursive: bool, extra: list[str]
) -> dict[str, Any]:
    access = ("rro" if recursive else "ro") if read_only else "rw"
    return {
        "destination": destination,
        "type": "bind",
        "source": source,
        "options": ["rbind" if recursive else "bind", access, *extra],
    }


def _real_directory(path: str, what: str) -> str:
    real = os.path.realpath(path)
    if "\0" in path or not os.path.isdir(real):
        raise LaunchError(f"The {what} '{printable(path)}' is not a directory")
    return real


def _user(root: str, launch_info: ContainerLaunchInfo) -> dict[str, Any]:
    if not launch_info.HasField("user"):
        return {"uid": 0, "gid": 0}
    try:
        user = resolve_user(root, launch_info.user)
    except ConfinementError as error:
        raise LaunchError(str(error)) from None
    config: dict[str, Any] = {"uid": user.uid, "gid": user.gid}
    if user.additional_gids:
        config["additionalGids"] = list(user.additional_gids)
    return config


def _capabilities(uid: int) -> dict[str, list[str]]:
    """Docker's set; a non-root user has it only as a bound, as ``execve`` would leave it."""
    caps = list(DEFAULT_CAPABILITIES)
    if uid != 0:
        return {"bounding": caps, "effective": [], "permitted": [], "inheritable": []}
    return {"bounding": caps, "effective": caps, "permitted": caps, "inheritable": []}


def _namespaces(launch_info: ContainerLaunchInfo) -> list[str]:
    kinds = ["mount", "pid", "ipc", "uts"]
    if 0x40000000 in launch_info.clone_namespaces:
        kinds.append("network")
    return kinds
