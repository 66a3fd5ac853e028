"""An embedding program that uses only the public API: ``tests/test_packaging.py`` checks it
with ``mypy --strict`` against an installed (not editable) package and the ``typing`` extra.
It is type-checked, never run."""

from __future__ import annotations

import logging
import sys

import isolator
from isolator import DockerVolumeIsolator, Flags, IsolatorError
from isolator.docker.containers import Usage
from isolator.drivers import Backoff, DockerPluginClient
from isolator.launcher import run
from isolator.messages import container_config, container_id, docker_volume
from isolator.protos import ContainerLaunchInfo, ContainerState

log = logging.getLogger("embedder")


def report(usage: Usage) -> None:
    for container, volumes in usage.containers.items():
        names = ", ".join(f"{volume.driver}/{volume.name}" for volume in volumes)
        log.info("%s (%s): %s", container, usage.phases[container], names)


def main(argv: list[str]) -> int:
    flags = Flags.from_args(argv, unknowns=True, base=Flags.from_env())
    client = DockerPluginClient(
        socket_dir=flags.docker_plugin_socket_dir,
        spec_dirs=flags.docker_plugin_spec_dirs,
        backoff=Backoff(budget=flags.docker_plugin_retry_budget),
        mount_id=flags.docker_plugin_mount_id,
    )
    handle = DockerVolumeIsolator.create(flags, client)
    task = container_id("task-1")
    try:
        survivors: list[ContainerState] = []
        handle.recover(states=survivors, orphans=[]).get(timeout=60)
        config = container_config("/tmp/sandbox", [docker_volume("local", "data", "data")])
        launch_info: ContainerLaunchInfo | None = handle.prepare(task, config).get(timeout=300)
        done = run(launch_info, ["true"], timeout=60)
        report(handle.usage().get(timeout=10))
        handle.cleanup(task).get(timeout=900)
    except IsolatorError as error:
        log.error("%s", error)
        return 1
    finally:
        handle.stop()
        client.close()
    version: str = isolator.__version__
    log.info("isolator %s; the task exited %d", version, done.returncode)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
