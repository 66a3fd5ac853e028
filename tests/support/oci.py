"""Real OCI runtimes for tests: a busybox rootfs, which runtimes run here, a clean state dir."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

__all__ = [
    "APPLETS",
    "BUSYBOX",
    "RUNTIMES",
    "delete_all",
    "make_rootfs",
    "minimal_config",
    "runtime_containers",
    "runtime_problem",
]

BUSYBOX = "/bin/busybox"
APPLETS = (
    "sh", "cat", "echo", "env", "id", "ls", "mkdir", "pwd", "sleep", "stat", "test", "touch",
    "true", "kill", "grep", "readlink",
)  # fmt: skip
TASK_UID, TASK_GID, EXTRA_GID = 1234, 1235, 2345

RUNTIMES = pytest.mark.parametrize("runtime", ["runc", "crun"])


def make_rootfs(where: Path) -> Path:
    """A one-file userland: ``bin/busybox``, its applets as links, a passwd and a group."""
    rootfs = where / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "etc").mkdir()
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in APPLETS:
        (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text(
        f"root:x:0:0:root:/root:/bin/sh\ntask:x:{TASK_UID}:{TASK_GID}::/:/bin/sh\n"
    )
    (rootfs / "etc" / "group").write_text(
        f"root:x:0:\ntask:x:{TASK_GID}:\nextra:x:{EXTRA_GID}:other,task\n"
    )
    return rootfs


def minimal_config(rootfs: Path, args: list[str]) -> dict[str, object]:
    """A hand-written bundle config: the least a runtime needs to run ``args``."""
    return {
        "ociVersion": "1.0.2",
        "process": {"args": args, "cwd": "/", "user": {"uid": 0, "gid": 0},
                    "env": ["PATH=/bin"]},
        "root": {"path": str(rootfs)},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]},
    }  # fmt: skip


@functools.cache
def runtime_problem(runtime: str) -> str | None:
    """Why ``runtime`` cannot run a container on this host, or ``None``: run one to see."""
    if os.geteuid() != 0:
        return "running containers needs root"
    binary = shutil.which(runtime)
    if binary is None:
        return f"{runtime} is not installed (apt-get install -y {runtime})"
    if not os.path.exists(BUSYBOX):
        return f"{BUSYBOX} is missing (apt-get install -y busybox-static)"
    with tempfile.TemporaryDirectory(prefix="isolator-probe-") as work:
        rootfs = make_rootfs(Path(work))
        bundle = Path(work)
        config = minimal_config(rootfs, ["true"])
        (bundle / "config.json").write_text(json.dumps(config))
        state = str(bundle / "state")
        done = subprocess.run(
            [binary, "--root", state, "run", "--bundle", str(bundle), "isolator-probe"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        subprocess.run(
            [binary, "--root", state, "delete", "--force", "isolator-probe"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        cgroups = subprocess.run(
            ["stat", "-fc", "%T", "/sys/fs/cgroup"], capture_output=True, text=True, check=False
        ).stdout.strip()
        return (
            f"{runtime} cannot run a container on this host (/sys/fs/cgroup is {cgroups}): "
            f"{reason[-1] if reason else 'exit status ' + str(done.returncode)}"
        )
    return None


def runtime_containers(runtime: str, state: Path) -> list[str]:
    """The IDs ``runtime list`` shows in ``state``."""
    if not state.exists():
        return []
    done = subprocess.run(
        [runtime, "--root", str(state), "list", "--format", "json"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return sorted(entry["id"] for entry in json.loads(done.stdout or b"null") or [])


def delete_all(runtime: str, state: Path) -> list[str]:
    """Delete every container in ``state``; the IDs that were there."""
    left = runtime_containers(runtime, state)
    for container in left:
        subprocess.run(
            [runtime, "--root", str(state), "delete", "--force", container],
            capture_output=True,
            timeout=60,
            check=False,
        )
    return left
