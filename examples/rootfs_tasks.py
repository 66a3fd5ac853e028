"""The main job's rootfs tasks: a busybox root filesystem, run by an OCI runtime (runc).

Kept apart from ``scheduler.py``: what a scheduler needs to run some tasks in their own
root filesystem and to find, after an agent restart, which of them still run (the
runtime's state says so; ``isolator.launch.oci.running_containers``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from isolator.launch.oci import list_containers, running_containers
from isolator.launch.oci_bundle import SANDBOX_ANNOTATION
from isolator.messages import container_id
from isolator.protos import ContainerState

BUSYBOX = "/bin/busybox"  # busybox-static: one file, no library needed inside the rootfs
RUNTIME = "runc"
APPLETS = ("sh", "cat", "echo", "ls", "sleep", "test", "[")


@dataclass(frozen=True)
class Rootfs:
    """Where the rootfs tasks run: the rootfs, the runtime and its state directory."""

    path: Path
    runtime: str
    runtime_root: Path


def prepare_rootfs(workdir: Path, log: Callable[[str], None]) -> Rootfs | None:
    """A busybox rootfs under ``workdir``, or ``None`` (said why) when it cannot run here."""
    if os.geteuid() != 0:
        log("rootfs tasks run as host tasks: an OCI runtime needs root")
        return None
    found = {"runc": shutil.which(RUNTIME) is not None, "busybox-static": os.path.exists(BUSYBOX)}
    missing = [name for name, ok in found.items() if not ok]
    if missing:
        log(f"rootfs tasks run as host tasks: missing {' and '.join(missing)} "
            f"(apt-get install -y {' '.join(missing)})")  # fmt: skip
        return None
    rootfs = workdir / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in APPLETS:
        (rootfs / "bin" / applet).symlink_to("busybox")
    log(f"rootfs tasks run in a busybox rootfs under {RUNTIME}")
    return Rootfs(rootfs, RUNTIME, workdir / f"{RUNTIME}-state")


def recovered_states(
    rootfs: Rootfs | None, sandboxes: Path, without_runtime: ContainerState
) -> list[ContainerState]:
    """The rootfs containers that still run, as known containers for ``recover``.

    Each is matched to its task by the sandbox the launcher wrote in its annotations.
    Without a runtime here the task ran on the host: ``without_runtime`` is its state.
    """
    if rootfs is None:
        return [without_runtime]
    states = []
    for container in running_containers(rootfs.runtime, rootfs.runtime_root):
        sandbox = Path(container.annotations.get(SANDBOX_ANNOTATION, ""))
        if sandbox.parent == sandboxes:
            states.append(
                ContainerState(
                    container_id=container_id(sandbox.name),
                    pid=container.pid,
                    directory=str(sandbox),
                )
            )
    return states


def wait_running(rootfs: Rootfs | None, count: int, timeout: float) -> None:
    """Wait until ``count`` rootfs tasks run: a launched task starts its container a little
    after its launcher (polls the runtime's state, as a scheduler would)."""
    deadline = time.monotonic() + timeout
    while rootfs is not None:
        if len(running_containers(rootfs.runtime, rootfs.runtime_root)) >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} rootfs tasks running after {timeout}s")
        time.sleep(0.02)


def leftover_containers(rootfs: Rootfs | None) -> list[str]:
    """Problems: any container still in the runtime's state after the job."""
    if rootfs is None:
        return []
    return [
        f"container {c.id} ({c.status}) left in the {rootfs.runtime} state"
        for c in list_containers(rootfs.runtime, rootfs.runtime_root)
    ]
