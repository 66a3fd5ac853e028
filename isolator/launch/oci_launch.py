"""Both sides of launching a rootfs container: the caller's process and the launcher's.

The caller (:func:`rootfs_options`) checks what it can without touching the rootfs, names the
container, and starts ``python -m isolator.launcher --rootfs=...``. The launcher
(:func:`launch_in_rootfs`) builds the bundle, looks the command up in the rootfs (127 and
126 as on the host), and runs the container to its end (:mod:`isolator.launch.oci`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence

from isolator.common.names import printable
from isolator.launch.mounting import LaunchError
from isolator.launch.oci import (
    KILL_REQUEST,
    default_runtime_root,
    new_container_id,
    resolve_runtime,
    run_container,
)
from isolator.launch.oci_bundle import bundle_config, check_rootfs_launch_info
from isolator.launch.rootfs import find_command
from isolator.protos import ContainerLaunchInfo

__all__ = ["RootfsProcess", "launch_in_rootfs", "named", "rootfs_options"]


class RootfsProcess(subprocess.Popen[bytes]):
    """The launcher of a rootfs container; ``kill()`` kills the task, not only the launcher.

    A ``SIGKILL`` to the launcher could not be forwarded and would leave the task running, so
    :meth:`kill` (and ``send_signal(SIGKILL)``) sends the launcher :data:`KILL_REQUEST`: it has
    the runtime ``SIGKILL`` the task (or not start it), cleans up, and dies of ``SIGKILL``.
    """

    container_id: str
    runtime: str
    runtime_root: str

    def send_signal(self, sig: int) -> None:
        super().send_signal(KILL_REQUEST if sig == signal.SIGKILL else sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def rootfs_options(
    launch_info: ContainerLaunchInfo | None,
    *,
    rootfs: str | os.PathLike[str] | None,
    sandbox: str | os.PathLike[str] | None,
    runtime: str | None,
    runtime_root: str | os.PathLike[str] | None,
) -> dict[str, str] | None:
    """The launcher's ``--rootfs`` options for this launch, or ``None`` for a host launch."""
    if rootfs is None:
        given = [n for n, v in (("sandbox", sandbox), ("runtime", runtime),
                                ("runtime_root", runtime_root)) if v is not None]  # fmt: skip
        if given:
            raise LaunchError(f"{', '.join(given)} apply only to a container with a rootfs")
        return None
    check_rootfs_launch_info(launch_info or ContainerLaunchInfo())
    if (
        launch_info is not None
        and launch_info.HasField("rootfs")
        and os.path.realpath(launch_info.rootfs) != os.path.realpath(os.fspath(rootfs))
    ):
        raise LaunchError(
            f"The launch info's rootfs '{printable(launch_info.rootfs)}' is not the "
            f"rootfs '{printable(os.fspath(rootfs))}' to launch in"
        )
    binary = resolve_runtime(runtime)
    options = {
        "--rootfs": os.fspath(rootfs),
        "--runtime": binary,
        "--runtime-root": os.fspath(runtime_root or default_runtime_root(binary)),
        "--container-id": new_container_id(),
    }
    if sandbox is not None:
        options["--sandbox"] = os.fspath(sandbox)
    for name, value in options.items():
        if "\0" in value:
            raise LaunchError(f"Invalid {name[2:]} '{printable(value)}': it has a NUL character")
    return options


def named(process: subprocess.Popen[bytes], options: Mapping[str, str]) -> RootfsProcess:
    """``process`` told which container it runs, so :meth:`RootfsProcess.kill` can reach it."""
    assert isinstance(process, RootfsProcess)
    process.container_id = options["--container-id"]
    process.runtime = options["--runtime"]
    process.runtime_root = options["--runtime-root"]
    return process


def launch_in_rootfs(
    launch_info: ContainerLaunchInfo,
    argv: Sequence[str],
    options: Mapping[str, str],
    environment: Mapping[str, str] | None,
) -> int:
    """The launcher's side: the task's exit status, 125-127 for what stops it first."""
    rootfs = options["--rootfs"]
    config = bundle_config(
        launch_info,
        argv,
        rootfs=rootfs,
        sandbox=options.get("--sandbox"),
        env=environment,
        cwd=None,
    )
    process = config["process"]
    search_path = next((entry[5:] for entry in process["env"] if entry.startswith("PATH=")), None)
    problem = find_command(config["root"]["path"], argv[0], search_path=search_path,
                           cwd=process["cwd"])  # fmt: skip
    if problem is not None:
        print(problem.message, file=sys.stderr, flush=True)
        return problem.status
    return run_container(
        config,
        runtime=resolve_runtime(options["--runtime"]),
        runtime_root=options["--runtime-root"],
        container_id=options["--container-id"],
    )
