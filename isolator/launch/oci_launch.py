"""Both sides of launching a rootfs container: the caller's process and the launcher's.

The caller (:func:`rootfs_options`) checks what it can without touching the rootfs, names the
container, and starts ``python -m isolator.launcher --rootfs=...``. The launcher
(:func:`launch_in_rootfs`) builds the bundle, looks the command up in the rootfs (127 and
126 as on the host), and runs the container to its end (:mod:`isolator.launch.oci`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from isolator.common.names import printable
from isolator.launch import oci_supervisor
from isolator.launch.launch_error import LaunchError
from isolator.launch.oci import (
    KILL_REQUEST,
    LAUNCHER_ANNOTATION,
    default_runtime_root,
    new_container_id,
    resolve_runtime,
    run_payload,
)
from isolator.launch.oci_bundle import bundle_config, check_rootfs_launch_info
from isolator.launch.rootfs import find_command
from isolator.protos import ContainerLaunchInfo

__all__ = [
    "RootfsProcess",
    "encoded",
    "launch_in_rootfs",
    "named",
    "payload",
    "rootfs_options",
    "start",
]


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


def start(
    launch_info: ContainerLaunchInfo,
    argv: Sequence[str],
    options: Mapping[str, str],
    *,
    env: Mapping[str, str] | None,
    stdin: Any,
    stdout: Any,
    stderr: Any,
) -> RootfsProcess:
    """Start the launcher (:mod:`isolator.launch.oci_supervisor`) for this container.

    The bundle is built here, in the caller, which has the launch info's modules loaded
    already: the launcher then needs neither protobuf nor the bundle code, only the runtime.
    What stops the launch (a refused target, a missing command) reaches the launcher as
    its status and message, so it still shows as the process's exit status and stderr.
    """
    if not argv:
        raise ValueError("No command to launch")
    described = payload(launch_info, argv, options, env)
    read_end, write_end = os.pipe()
    command = [sys.executable, "-I", "-S", "-c", _BOOT,
               *(f"{name}={options[name]}" for name in LIGHT_OPTIONS),
               f"--payload-fd={read_end}"]  # fmt: skip
    try:
        process = RootfsProcess(
            command, stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=(read_end,)
        )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    try:
        # Encoded once the launcher's PID is known: the bundle names it (a leftover
        # ``created`` container is stale only once its launcher is gone).
        view = memoryview(encoded(described, launcher_pid=process.pid))
        while view:
            view = view[os.write(write_end, view) :]
    except BrokenPipeError:
        pass  # The launcher died before reading; its status tells why.
    finally:
        os.close(write_end)
    return named(process, options)


LIGHT_OPTIONS = ("--runtime", "--runtime-root", "--container-id")

# A bare interpreter (-I: no environment, -S: no site) imports the stdlib-only launcher as
# a module, not as a script: a script is compiled on every run (about 10 ms), a module's
# bytecode is cached. Its directory goes last on the path, so no name there hides the
# standard library's.
_BOOT = (
    f"import sys; sys.path.append({os.path.dirname(oci_supervisor.__file__)!r}); "
    "import oci_supervisor; sys.exit(oci_supervisor.main())"
)


def payload(
    launch_info: ContainerLaunchInfo,
    argv: Sequence[str],
    options: Mapping[str, str],
    environment: Mapping[str, str] | None,
) -> dict[str, Any]:
    """What the light launcher is handed: ``{"config": ...}``, or ``{"refuse": ...}`` with
    the exit status (125, 126, 127) and the message that stop the launch."""
    try:
        config = bundle_config(
            launch_info,
            argv,
            rootfs=options["--rootfs"],
            sandbox=options.get("--sandbox"),
            env=environment,
            cwd=None,
        )
    except LaunchError as error:
        return {"refuse": {"status": 125, "message": str(error)}}
    process = config["process"]
    search_path = next((entry[5:] for entry in process["env"] if entry.startswith("PATH=")), None)
    problem = find_command(config["root"]["path"], argv[0], search_path=search_path,
                           cwd=process["cwd"])  # fmt: skip
    if problem is not None:
        return {"refuse": {"status": problem.status, "message": problem.message}}
    return {"config": config}


def encoded(described: Mapping[str, Any], *, launcher_pid: int) -> bytes:
    """``payload``'s answer as the launcher reads it (``oci_supervisor.run_payload``)."""
    refused = described.get("refuse")
    if refused is not None:
        return f"refuse {int(refused['status'])}\n{refused['message']}".encode()
    config = described["config"]
    annotations = {**config.get("annotations", {}), LAUNCHER_ANNOTATION: str(launcher_pid)}
    return b"run\n" + json.dumps({**config, "annotations": annotations}).encode()


def launch_in_rootfs(
    launch_info: ContainerLaunchInfo,
    argv: Sequence[str],
    options: Mapping[str, str],
    environment: Mapping[str, str] | None,
) -> int:
    """The full launcher's side (the CLI): the task's exit status, 125-127 for what stops
    it first."""
    return run_payload(
        encoded(payload(launch_info, argv, options, environment), launcher_pid=os.getpid()),
        runtime=resolve_runtime(options["--runtime"]),
        runtime_root=options["--runtime-root"],
        container_id=options["--container-id"],
    )
