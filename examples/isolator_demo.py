"""Drive the isolator through prepare, cleanup, a crash and recovery, and print each step.

It starts the project's reference volume plugin on a private socket and talks to it with
``DockerPluginClient``, so it needs nothing from outside and no root (it mounts nothing
itself: a launcher would apply the launch infos it prints).

Run: ``.venv/bin/python examples/isolator_demo.py``
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from isolator import DockerVolumeIsolator, Flags
from isolator.common.linux import MS_RDONLY
from isolator.drivers import Backoff, DockerPluginClient
from isolator.messages import container_config, container_id, docker_volume
from isolator.plugin import VolumePlugin
from isolator.protos import ContainerLaunchInfo

WAIT = 30.0
DRIVER = "demo"


def show(title: str, info: ContainerLaunchInfo | None) -> None:
    print(f"  {title}")
    for mount in info.mounts if info else []:
        mode = "ro" if mount.flags & MS_RDONLY else "rw"
        print(f"    bind {mount.source} -> {mount.target} ({mode})")


def plugin_mounts(plugin_client: DockerPluginClient) -> dict[str, list[str]]:
    volumes = plugin_client.loop.submit(plugin_client.api.list(DRIVER)).get(WAIT)
    return {v["Name"]: sorted((v.get("Status") or {}).get("mounts", {})) for v in volumes}


def checkpoints(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("volumes"))


def run(workdir: Path) -> None:
    sockets = workdir / "plugins"
    flags = Flags(
        docker_volume_checkpoint_dir=str(workdir / "checkpoints"),
        docker_plugin_socket_dir=str(sockets),
        docker_plugin_spec_dirs=(),
    )
    checkpoint_root = Path(flags.docker_volume_checkpoint_dir)
    shared_dir = workdir / "shared"  # where tasks may ask for mountpoint=... (--allow-mountpoint)
    shared_dir.mkdir(exist_ok=True)
    with VolumePlugin(
        socket_path=sockets / f"{DRIVER}.sock",
        root=workdir / "plugin-data",
        allowed_mountpoints=[shared_dir],
    ):
        client = DockerPluginClient(
            socket_dir=str(sockets), spec_dirs=[], backoff=Backoff(budget=2.0)
        )
        try:
            print(f"1. isolator up, checkpoints in {checkpoint_root}")
            isolator = DockerVolumeIsolator.create(flags, client)
            web, worker = container_id("web"), container_id("worker")
            shared = {"mountpoint": str(shared_dir / "data")}  # honoured at Create only
            for cid, volumes in (
                (
                    web,
                    [
                        docker_volume(DRIVER, "data", "data", shared),
                        docker_volume(DRIVER, "config", "config", read_only=True),
                    ],
                ),
                (worker, [docker_volume(DRIVER, "data", "data", shared)]),
            ):
                sandbox = workdir / "sandboxes" / cid.value
                sandbox.mkdir(parents=True)
                info = isolator.prepare(cid, container_config(str(sandbox), volumes)).get(WAIT)
                show(f"2. prepared {cid.value}:", info)
            print(f"   checkpoints: {checkpoints(checkpoint_root)}")
            print(f"   plugin mount IDs per volume: {plugin_mounts(client)}")

            isolator.cleanup(web).get(WAIT)
            print("3. cleaned up web: 'config' unmounted, 'data' kept (worker still uses it)")
            print(f"   plugin mount IDs per volume: {plugin_mounts(client)}")

            isolator.stop()
            print("4. agent crash: isolator stopped with worker still holding 'data'")
            print(f"   checkpoints left: {checkpoints(checkpoint_root)}")

            isolator = DockerVolumeIsolator.create(flags, client)
            isolator.recover([], []).get(WAIT)
            cleanups = isolator.orphan_cleanups().get(WAIT)
            outcome = ["ok" if c.is_ready() else str(c.failure()) for c in cleanups]
            print(f"5. recovered: worker was an unknown orphan, cleaned up: {outcome}")
            print(f"   plugin mount IDs per volume: {plugin_mounts(client)}")
            print(f"   checkpoints left: {checkpoints(checkpoint_root)}")
            isolator.stop()
        finally:
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", help="where to keep state (default: a temporary dir)")
    args = parser.parse_args()
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        run(Path(args.workdir))
    else:
        # Short path: unix socket paths are limited to about 107 bytes.
        with tempfile.TemporaryDirectory(dir="/tmp", prefix="isolator-demo-") as workdir:
            run(Path(workdir))


if __name__ == "__main__":
    main()
