"""``doctor``: whether this host can run the isolator with these flags, one check a line.

The checks follow what ``DockerVolumeIsolator.create`` and the first ``prepare`` need:
root and mount namespaces (Mesos's own checks, with its words), a launcher that can make a
mount namespace, a checkpoint directory that can be written (and survives a reboot), the
plugin directories and each plugin's activation, or dvdcli when it is the driver client.
A FAIL is something the isolator cannot work without; a WARN, something to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from isolator.common.errors import strerror
from isolator.common.filesystems import existing_ancestor, filesystem_of
from isolator.common.linux import CLONE_NEWNS
from isolator.config.flags import Flags
from isolator.ctl.checkpoints import read_checkpoints
from isolator.ctl.plugins import directories_text, probe_plugins
from isolator.ctl.tables import EXIT_FAILED, EXIT_OK, Outcome
from isolator.launcher import launcher_command
from isolator.protos import ContainerLaunchInfo

__all__ = ["Check", "doctor"]

Status = Literal["ok", "warn", "fail"]

CAP_SYS_ADMIN: Final = 21
MOUNT_NAMESPACE: Final = "/proc/self/ns/mnt"
LAUNCH_TIMEOUT: Final = 30.0
"""Seconds the launcher may take to run ``true`` in a new mount namespace."""
REBOOT_WARNING: Final = (
    "checkpoints there do not survive a reboot (as under Mesos's default, /var/run): "
    "after one, the volumes plugins still hold for the agent are never unmounted"
)


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    status: Status
    detail: str

    @property
    def line(self) -> str:
        return f"{self.status.upper():<5} {self.name}: {self.detail}"


def _root() -> Check:
    euid = os.geteuid()
    if euid == 0:
        return Check("root", "ok", "running as root")
    return Check(
        "root",
        "fail",
        f"The 'docker/volume' isolator requires root permissions (running as uid {euid})",
    )


def _has_cap_sys_admin() -> bool:
    try:
        with open("/proc/self/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_SYS_ADMIN & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def _mount_namespaces() -> Check:
    name = "mount namespaces"
    if not os.path.exists(MOUNT_NAMESPACE):
        detail = "The 'docker/volume' isolator requires mount namespace support"
        return Check(name, "fail", f"{detail} ({MOUNT_NAMESPACE} does not exist)")
    # The launcher itself, as a task would be started: unshare, mark / rslave, exec.
    command = launcher_command(ContainerLaunchInfo(clone_namespaces=[CLONE_NEWNS]), ["true"])
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return Check(name, "fail", f"the launcher could not be run: {strerror(error)}")
    if done.returncode == 0:
        return Check(name, "ok", "the launcher ran a command in a new mount namespace")
    capability = "held" if _has_cap_sys_admin() else "not held"
    reason = done.stderr.strip() or f"exit status {done.returncode}"
    detail = f"the launcher cannot make a mount namespace: {reason}"
    return Check(name, "fail", f"{detail} (CAP_SYS_ADMIN {capability})")


def _checkpoint_directory(path: str) -> Check:
    name = "checkpoint directory"
    if os.path.isdir(path):
        try:  # an unnamed file where supported (O_TMPFILE): nothing is left behind
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as error:
            return Check(name, "fail", f"'{path}' is not writable: {strerror(error)}")
        return Check(name, "ok", f"'{path}' exists and is writable")
    if os.path.lexists(path):
        return Check(name, "fail", f"'{path}' is not a directory")
    ancestor = existing_ancestor(path)
    if os.path.isdir(ancestor) and os.access(ancestor, os.W_OK | os.X_OK):
        return Check(
            name, "warn", f"'{path}' does not exist; the isolator creates it when it starts"
        )
    return Check(name, "fail", f"'{path}' does not exist and cannot be created under '{ancestor}'")


def _checkpoint_filesystem(path: str) -> Check:
    name = "checkpoint filesystem"
    try:
        fstype, point = filesystem_of(path)
    except (OSError, ValueError, IndexError) as error:
        return Check(name, "warn", f"cannot tell which filesystem '{path}' is on: {error}")
    where = f"'{path}' is on {fstype}" + (f" (mounted at {point})" if point else "")
    if fstype == "tmpfs":
        return Check(name, "warn", f"{where}: {REBOOT_WARNING}")
    return Check(name, "ok", where)


def _checkpoints(path: str) -> Check:
    name = "checkpoints"
    try:
        checkpoints = read_checkpoints(path)
    except OSError as error:
        return Check(name, "fail", f"cannot list '{path}': {strerror(error)}")
    if not checkpoints:
        return Check(name, "ok", "none")
    bad = [c for c in checkpoints if c.state == "unreadable"]
    if bad:
        listed = "; ".join(f"{c.container}: {c.error}" for c in bad)
        return Check(name, "fail", f"recovery would fail on {len(bad)} unreadable: {listed}")
    return Check(name, "ok", f"{len(checkpoints)} container(s), all readable")


def _directory(name: str, path: str, missing: str) -> Check:
    if os.path.isdir(path):
        return Check(name, "ok", f"'{path}' exists")
    if os.path.lexists(path):
        return Check(name, "fail", f"'{path}' is not a directory")
    return Check(name, "warn", f"'{path}' does not exist: {missing}")


def _plugin_checks(flags: Flags, timeout: float) -> list[Check]:
    checks = [
        _directory(
            "plugin socket directory",
            flags.docker_plugin_socket_dir,
            "no plugin can be found by its socket",
        )
    ]
    checks += [
        _directory("plugin spec directory", path, "no plugin can be found by a spec file there")
        for path in flags.docker_plugin_spec_dirs
    ]
    probes = probe_plugins(flags, timeout)
    if not probes:
        checks.append(Check("plugins", "warn", f"none found in {directories_text(flags)}"))
    for probe in probes:
        name = f"plugin {probe.name}"
        if not probe.activated:
            checks.append(Check(name, "fail", f"does not activate: {probe.error}"))
        elif not probe.volume_driver:
            implements = ", ".join(probe.implements) or "nothing"
            checks.append(Check(name, "warn", f"not a volume driver (implements {implements})"))
        else:
            checks.append(Check(name, "ok", f"activated at {probe.address}"))
    return checks


def _dvdcli(flags: Flags) -> Check:
    found = shutil.which(flags.dvdcli_path)
    if found is None:
        return Check(
            "dvdcli",
            "fail",
            "The 'docker/volume' isolator cannot get dvdcli command "
            f"('{flags.dvdcli_path}' is not found on PATH or is not executable)",
        )
    return Check("dvdcli", "ok", f"'{found}'")


def run_checks(flags: Flags, timeout: float) -> list[Check]:
    """Every check, in the order the isolator meets them."""
    steps: list[Callable[[], Check | list[Check]]] = [
        _root,
        _mount_namespaces,
        lambda: _checkpoint_directory(flags.docker_volume_checkpoint_dir),
        lambda: _checkpoint_filesystem(flags.docker_volume_checkpoint_dir),
        lambda: _checkpoints(flags.docker_volume_checkpoint_dir),
    ]
    if flags.docker_volume_driver_client == "dvdcli":
        steps.append(lambda: _dvdcli(flags))
    else:
        steps.append(lambda: _plugin_checks(flags, timeout))
    checks: list[Check] = []
    for step in steps:
        result = step()
        checks += result if isinstance(result, list) else [result]
    return checks


def doctor(flags: Flags, timeout: float) -> Outcome:
    """The ``doctor`` command: exit 1 when any check fails."""
    checks = run_checks(flags, timeout)
    failures = sum(check.status == "fail" for check in checks)
    warnings = sum(check.status == "warn" for check in checks)
    text = "".join(check.line + "\n" for check in checks)
    text += f"{failures} failure(s), {warnings} warning(s)\n"
    data = {
        "checks": [{"check": c.name, "status": c.status, "detail": c.detail} for c in checks],
        "failures": failures,
        "warnings": warnings,
    }
    return Outcome(EXIT_FAILED if failures else EXIT_OK, data, text)
