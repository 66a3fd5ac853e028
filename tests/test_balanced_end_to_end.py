"""Balanced plugin calls end to end, with real bind mounts (issue 16): the reference plugin
counts calls as Docker's ``local`` driver does and refuses a second Mount of one ID, and
after every story each volume's count is back at 0, nothing is mounted and no Mount was
refused. Each story failed before the isolator reused mounts (a Mount per container left
the count above 0, and the refusing plugin failed the second container).

Tasks run under the launcher in private mount namespaces; the suite-wide fixture checks the
host's mount table afterwards.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from isolator import DockerVolumeIsolator, Flags, IsolatorError
from isolator.drivers import Backoff, DockerPluginClient
from isolator.launcher import run
from isolator.messages import container_config, container_id, docker_volume
from isolator.plugin import VolumePlugin
from isolator.protos import ContainerConfig, ContainerLaunchInfo, ContainerState
from tests.support.docker_engine import DockerEngine

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root"),
]

WAIT = 30.0
DRIVER = "bal"


@dataclass
class Node:
    workdir: Path
    plugin: VolumePlugin
    client: DockerPluginClient

    def flags(self) -> Flags:
        return Flags(
            docker_volume_checkpoint_dir=str(self.workdir / "checkpoints"),
            docker_plugin_socket_dir=str(self.workdir / "plugins"),
            docker_plugin_spec_dirs=(),
        )

    def isolator(self) -> DockerVolumeIsolator:
        return DockerVolumeIsolator.create(self.flags(), self.client)

    def config(self, name: str, volume: str = "shared") -> ContainerConfig:
        sandbox = self.workdir / "sandboxes" / name
        sandbox.mkdir(parents=True, exist_ok=True)
        return container_config(str(sandbox), [docker_volume(DRIVER, volume, "data")])

    def count(self, volume: str = "shared") -> int:
        answer = self.client.loop.submit(self.client.api.get(DRIVER, volume)).get(WAIT)
        count: int = (answer.get("Status") or {})["count"]
        return count

    def mounted_at(self, volume: str = "shared") -> str:
        where: str = self.client.loop.submit(self.client.api.path(DRIVER, volume)).get(WAIT)
        return where


@pytest.fixture
def node() -> Iterator[Node]:
    workdir = Path(tempfile.mkdtemp(dir="/tmp", prefix="bal-"))  # a short socket path
    plugin = VolumePlugin(
        socket_path=workdir / "plugins" / f"{DRIVER}.sock",
        root=workdir / "data",
        count="calls",
        refuse_duplicate_id=True,
    )
    plugin.start()
    client = DockerPluginClient(
        socket_dir=str(workdir / "plugins"), spec_dirs=[], backoff=Backoff(budget=1.0)
    )
    try:
        yield Node(workdir, plugin, client)
    finally:
        client.close()
        plugin.stop()
        subprocess.run(["rm", "-rf", str(workdir)], check=True)


def task(node: Node, name: str, info: ContainerLaunchInfo | None, script: str) -> str:
    done = run(info, ["sh", "-c", script], cwd=node.workdir / "sandboxes" / name, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def released(node: Node) -> None:
    """Count 0 and nothing mounted (a refused duplicate would have failed its prepare)."""
    assert node.count() == 0
    assert node.mounted_at() == ""


@pytest.mark.parametrize("order", list(itertools.permutations("abc")))
def test_containers_sharing_a_volume_in_any_cleanup_order(
    node: Node, order: tuple[str, ...]
) -> None:
    isolator = node.isolator()
    try:
        infos = {n: isolator.prepare(container_id(n), node.config(n)).get(WAIT) for n in "abc"}
        for name in "abc":
            task(node, name, infos[name], f"echo {name} >> data/log")
        assert task(node, "a", infos["a"], "cat data/log").split() == ["a", "b", "c"]
        assert node.count() == 1
        for name in order:
            isolator.cleanup(container_id(name)).get(WAIT)
    finally:
        isolator.stop()
    released(node)


def test_a_restart_between_cleanups_and_a_new_container_after_it(node: Node) -> None:
    isolator = node.isolator()
    for name in "ab":
        isolator.prepare(container_id(name), node.config(name)).get(WAIT)
    isolator.cleanup(container_id("a")).get(WAIT)
    isolator.stop()  # the agent restarts; 'b' still runs
    isolator = node.isolator()
    try:
        state = ContainerState(container_id=container_id("b"), pid=1, directory="/s")
        isolator.recover([state], []).get(WAIT)
        info = isolator.prepare(container_id("c"), node.config("c")).get(WAIT)
        assert task(node, "c", info, "echo c > data/c && cat data/c") == "c\n"
        assert node.count() == 1  # no second Mount after the restart
        isolator.cleanup(container_id("b")).get(WAIT)
        assert node.count() == 1  # 'c' still holds it
        isolator.cleanup(container_id("c")).get(WAIT)
    finally:
        isolator.stop()
    released(node)


def test_unknown_orphans_sharing_a_volume(node: Node) -> None:
    isolator = node.isolator()
    for name in "ab":
        isolator.prepare(container_id(name), node.config(name)).get(WAIT)
    isolator.stop()  # the agent dies; neither container survives it
    isolator = node.isolator()
    try:
        isolator.recover([], []).get(WAIT)
        for cleanup in isolator.orphan_cleanups().get(WAIT):
            cleanup.get(WAIT)
    finally:
        isolator.stop()
    released(node)
    assert not (node.workdir / "checkpoints" / "a").exists()


def test_a_failed_mount_then_a_successful_one(node: Node) -> None:
    isolator = node.isolator()
    node.plugin.stop()  # the plugin is down: the first Mount is refused (never sent)
    try:
        with pytest.raises(IsolatorError):
            isolator.prepare(container_id("a"), node.config("a")).get(WAIT)
        node.plugin.start()
        info = isolator.prepare(container_id("b"), node.config("b")).get(WAIT)
        assert task(node, "b", info, "echo ok > data/x && cat data/x") == "ok\n"
        for name in "ab":
            isolator.cleanup(container_id(name)).get(WAIT)
    finally:
        isolator.stop()
    released(node)


def test_docker_and_the_isolator_share_a_volume_through_one_plugin(node: Node) -> None:
    docker = DockerEngine(node.plugin.socket_path)
    isolator = node.isolator()
    try:
        first = docker.start("shared")
        infos = [isolator.prepare(container_id(n), node.config(n)).get(WAIT) for n in "ab"]
        assert infos[0] is not None
        assert infos[0].mounts[0].source == first.mountpoint  # one volume, one directory
        second = docker.start("shared")
        assert node.count() == 3  # Docker's two containers, and the isolator once
        docker.stop(first)
        for name in "ab":
            isolator.cleanup(container_id(name)).get(WAIT)
        assert node.count() == 1  # Docker's second container still runs
        assert node.mounted_at() != ""
        docker.stop(second)
    finally:
        isolator.stop()
    assert docker.balanced()
    released(node)
