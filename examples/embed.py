"""Embedding the isolator: two containers on one shared volume, from prepare to recovery."""

import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from isolator import DockerPluginClient, DockerVolumeIsolator, Flags
from isolator.launcher import run
from isolator.messages import container_config, container_id, docker_volume
from isolator.protos import ContainerState

logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("isolator").setLevel(logging.INFO)  # the isolator and its drivers
WAIT = 60.0  # seconds; driver calls have their own deadlines (the mount and unmount timeouts)


def main(work: Path) -> None:
    flags = Flags(
        docker_volume_checkpoint_dir=str(work / "checkpoints"),
        docker_plugin_socket_dir=str(work / "plugins"),  # where plugins' sockets are found
        docker_plugin_spec_dirs=(),
    )
    plugin = subprocess.Popen(  # the reference plugin, as a node's plugin runs: on its own
        [
            Path(sys.executable).with_name("isolator-volume-plugin"),
            "--root",
            work / "volumes",
            "--socket",
            f"{flags.docker_plugin_socket_dir}/local.sock",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    if not (plugin.stdout and plugin.stdout.readline().startswith("serving on")):
        raise SystemExit("the volume plugin did not start")
    root = os.geteuid() == 0  # mounts need root; without it the client is given explicitly
    client = None if root else DockerPluginClient(socket_dir=flags.docker_plugin_socket_dir)
    try:
        isolator = DockerVolumeIsolator.create(flags, client)
        isolator.recover([], []).get(WAIT)  # once, at start: nothing to recover yet
        shared = docker_volume("local", "shared", "data")  # driver, name, path in the sandbox
        for name in ("writer", "reader"):
            (work / name).mkdir()
            config = container_config(str(work / name), [shared])
            launch_info = isolator.prepare(container_id(name), config).get(WAIT)
            if root:  # the task runs in its own mount namespace with the volume at data/
                task = run(
                    launch_info,
                    ["sh", "-c", f"echo {name} >> data/log; cat data/log"],
                    cwd=work / name,
                    timeout=WAIT,
                )
                print(f"{name}: {task.stdout.decode().split()}")
            else:
                print(f"{name}: prepared; not root, so not launched")
        isolator.cleanup(container_id("writer")).get(WAIT)  # 'reader' still holds the volume
        isolator.stop()  # the agent restarts: the checkpoints stay, and so does the mount
        isolator = DockerVolumeIsolator.create(flags, client)
        survivor = ContainerState(
            container_id=container_id("reader"), pid=os.getpid(), directory=str(work / "reader")
        )
        isolator.recover([survivor], []).get(WAIT)  # 'reader' is known; nothing is unmounted
        isolator.cleanup(container_id("reader")).get(WAIT)  # the last user: now unmounted
        print("checkpoints left:", os.listdir(flags.docker_volume_checkpoint_dir))
        isolator.stop()
    finally:
        plugin.terminate()
        plugin.wait(WAIT)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="embed-", dir="/tmp") as work:  # short socket path
        main(Path(work))
