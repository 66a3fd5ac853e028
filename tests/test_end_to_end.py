"""Real volumes end to end: reference plugin -> DockerPluginClient -> isolator -> launcher.

Each task runs in the private mount namespace the launcher makes, so every bind mount
lives and dies there; the suite-wide fixture checks the host's mount table afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
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
from isolator.protos import ContainerLaunchInfo

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root"),
]

WAIT = 30.0
DRIVER = "e2e"


@dataclass
class Setup:
    workdir: Path
    plugin: VolumePlugin
    client: DockerPluginClient

    def isolator(self, **flags: object) -> DockerVolumeIsolator:
        settings = Flags(
            docker_volume_checkpoint_dir=str(self.workdir / "checkpoints"),
            docker_plugin_socket_dir=str(self.workdir / "plugins"),
            docker_plugin_spec_dirs=(),
            **flags,  # type: ignore[arg-type]
        )
        return DockerVolumeIsolator.create(settings, self.client)

    def sandbox(self, name: str) -> Path:
        path = self.workdir / "sandboxes" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def holders(self, volume: str) -> dict[str, int]:
        answer = self.client.loop.submit(self.client.api.get(DRIVER, volume)).get(WAIT)
        mounts: dict[str, int] = (answer.get("Status") or {}).get("mounts", {})
        return mounts


@pytest.fixture
def setup() -> Iterator[Setup]:
    # A short path: unix socket paths are limited to about 107 bytes.
    workdir = Path(tempfile.mkdtemp(dir="/tmp", prefix="e2e-"))
    plugin = VolumePlugin(
        socket_path=workdir / "plugins" / f"{DRIVER}.sock",
        root=workdir / "data",
        allowed_mountpoints=[workdir],  # test_options_reach_the_plugin_at_create
    )
    plugin.start()
    client = DockerPluginClient(
        socket_dir=str(workdir / "plugins"), spec_dirs=[], backoff=Backoff(budget=1.0)
    )
    try:
        yield Setup(workdir, plugin, client)
    finally:
        client.close()
        plugin.stop()
        subprocess.run(["rm", "-rf", str(workdir)], check=True)


def in_container(
    launch_info: ContainerLaunchInfo | None, sandbox: Path, script: str
) -> subprocess.CompletedProcess[bytes]:
    return run(launch_info, ["sh", "-c", script], cwd=sandbox, timeout=WAIT)


def mount_line(target: Path) -> str:
    # From inside the task: the line of its own mount table for the target.
    return f"awk '$5 == \"{target}\"' /proc/self/mountinfo"


@pytest.mark.parametrize("style", ["mounts", "pre_exec_commands"])
def test_volume_is_mounted_shared_read_only_and_released(setup: Setup, style: str) -> None:
    isolator = setup.isolator(docker_volume_launch_style=style)
    writer, reader, viewer = (container_id(n) for n in ("writer", "reader", "viewer"))
    try:
        infos = {}
        for cid, read_only in ((writer, False), (reader, False), (viewer, True)):
            config = container_config(
                str(setup.sandbox(cid.value)),
                [docker_volume(DRIVER, "shared", "data", read_only=read_only)],
            )
            infos[cid.value] = isolator.prepare(cid, config).get(WAIT)
        host_target = setup.sandbox("writer") / "data"

        # Mounted at the target, from inside the task; the host's target stays empty.
        wrote = in_container(
            infos["writer"],
            setup.sandbox("writer"),
            f"{mount_line(host_target)} && echo from-writer > data/note && cat data/note",
        )
        assert wrote.returncode == 0, wrote.stderr
        lines = wrote.stdout.decode().splitlines()
        assert lines[-1] == "from-writer"
        assert str(host_target) in lines[0]
        assert list(host_target.iterdir()) == []

        # Shared: another container reads it through its own target.
        read = in_container(infos["reader"], setup.sandbox("reader"), "cat data/note")
        assert read.returncode == 0, read.stderr
        assert read.stdout == b"from-writer\n"

        # Read-only where asked: reading works, writing fails.
        viewed = in_container(
            infos["viewer"], setup.sandbox("viewer"), "cat data/note && touch data/other"
        )
        assert viewed.stdout == b"from-writer\n"
        assert viewed.returncode != 0
        assert b"Read-only file system" in viewed.stderr

        # Unmounted after the last cleanup only.
        isolator.cleanup(writer).get(WAIT)
        isolator.cleanup(viewer).get(WAIT)
        assert len(setup.holders("shared")) == 1
        isolator.cleanup(reader).get(WAIT)
        assert setup.holders("shared") == {}
        path = setup.client.loop.submit(setup.client.api.path(DRIVER, "shared"))
        assert path.get(WAIT) == ""
        assert not (setup.workdir / "checkpoints" / "reader").exists()
    finally:
        isolator.stop()


def test_recovery_unmounts_what_a_crashed_isolator_mounted(setup: Setup) -> None:
    crashed = setup.isolator()
    config = container_config(str(setup.sandbox("c")), [docker_volume(DRIVER, "v", "data")])
    crashed.prepare(container_id("c"), config).get(WAIT)
    crashed.stop()  # no cleanup: the agent died
    assert len(setup.holders("v")) == 1

    # A restarted agent has a new client; the stable mount ID lets it release the volume.
    restarted = DockerPluginClient(
        socket_dir=str(setup.workdir / "plugins"), spec_dirs=[], backoff=Backoff(budget=1.0)
    )
    isolator = DockerVolumeIsolator.create(
        Flags(docker_volume_checkpoint_dir=str(setup.workdir / "checkpoints")), restarted
    )
    try:
        isolator.recover([], []).get(WAIT)
        (cleanup,) = isolator.orphan_cleanups().get(WAIT)
        assert cleanup.is_ready(), cleanup.failure()
        assert setup.holders("v") == {}
        assert list((setup.workdir / "checkpoints").iterdir()) == []
    finally:
        isolator.stop()
        restarted.close()


def test_options_reach_the_plugin_at_create(setup: Setup) -> None:
    isolator = setup.isolator()
    elsewhere = setup.workdir / "elsewhere"
    volume = docker_volume(DRIVER, "opt", "data", {"mountpoint": str(elsewhere)})
    try:
        info = isolator.prepare(
            container_id("c"), container_config(str(setup.sandbox("c")), [volume])
        ).get(WAIT)
        assert info is not None
        assert info.mounts[0].source == str(elsewhere)
        done = in_container(info, setup.sandbox("c"), "echo hi > data/file")
        assert done.returncode == 0, done.stderr
        assert (elsewhere / "file").read_text() == "hi\n"
        isolator.cleanup(container_id("c")).get(WAIT)
    finally:
        isolator.stop()


def test_a_plugin_error_fails_prepare_with_its_message(setup: Setup) -> None:
    isolator = setup.isolator()
    volume = docker_volume(DRIVER, "bad", "data", {"colour": "blue"})
    try:
        prepared = isolator.prepare(
            container_id("c"), container_config(str(setup.sandbox("c")), [volume])
        )
        with pytest.raises(IsolatorError, match="colour") as failure:
            prepared.get(WAIT)
        assert "VolumeDriver.Create" in str(failure.value)
        # The plugin refused Create, so nothing was mounted: cleanup sends no Unmount
        # (Mesos would, and fail on "not found" forever) and the checkpoint goes.
        isolator.cleanup(container_id("c")).get(WAIT)
        assert "VolumeDriver.Unmount" not in [call.method for call in setup.plugin.calls]
        assert not (setup.workdir / "checkpoints" / "c").exists()
    finally:
        isolator.stop()


def test_flags_choose_the_plugin_client_by_default(setup: Setup) -> None:
    # No client given: create() checks the host and builds DockerPluginClient from flags.
    flags = Flags(
        docker_volume_checkpoint_dir=str(setup.workdir / "checkpoints"),
        docker_plugin_socket_dir=str(setup.workdir / "plugins"),
        docker_plugin_spec_dirs=(),
    )
    isolator = DockerVolumeIsolator.create(flags)
    try:
        config = container_config(str(setup.sandbox("c")), [docker_volume(DRIVER, "v", "data")])
        info = isolator.prepare(container_id("c"), config).get(WAIT)
        assert info is not None
        assert info.mounts[0].source == str(setup.workdir / "data" / "volumes" / "v")
        assert [c.method for c in setup.plugin.calls][-1] == "VolumeDriver.Mount"
        isolator.cleanup(container_id("c")).get(WAIT)
        assert setup.holders("v") == {}
    finally:
        isolator.stop()


def test_flags_choose_dvdcli_with_our_drop_in(setup: Setup) -> None:
    # Sites that keep docker_volume_driver_client = "dvdcli" can point it at isolator-dvdcli.
    wrapper = setup.workdir / "dvdcli"
    wrapper.write_text(
        f"#!/bin/sh\nexec {sys.executable} -m isolator.dvdcli.cli "
        f"--socket-dir {setup.workdir / 'plugins'} "
        f'--state-dir {setup.workdir / "dvdcli-state"} "$@"\n'
    )
    wrapper.chmod(0o755)
    flags = Flags(
        docker_volume_checkpoint_dir=str(setup.workdir / "checkpoints"),
        docker_volume_driver_client="dvdcli",
        dvdcli_path=str(wrapper),
    )
    isolator = DockerVolumeIsolator.create(flags)
    try:
        sandbox = setup.sandbox("c")
        config = container_config(str(sandbox), [docker_volume(DRIVER, "v", "data")])
        info = isolator.prepare(container_id("c"), config).get(WAIT)
        done = in_container(info, sandbox, "echo via-dvdcli > data/f && cat data/f")
        assert done.stdout == b"via-dvdcli\n", done.stderr
        assert (setup.workdir / "data" / "volumes" / "v" / "f").read_text() == "via-dvdcli\n"
        assert len(setup.holders("v")) == 1
        isolator.cleanup(container_id("c")).get(WAIT)
        assert setup.holders("v") == {}
    finally:
        isolator.stop()


@pytest.mark.parametrize("mountpoint", ["/etc", "/"])
def test_a_task_cannot_have_the_plugin_hand_it_a_host_directory(
    setup: Setup, mountpoint: str
) -> None:
    # With chown on, a plugin that accepted mountpoint=/etc would hand /etc to the task's
    # user and bind it read-write: the reference plugin refuses, so nothing is mounted,
    # chowned or created, and the cleanup has nothing to unmount.
    isolator = setup.isolator(docker_volume_chown=True)
    before = os.stat(mountpoint)
    sandbox = setup.sandbox("attacker")
    volume = docker_volume(DRIVER, "takeover", "data", {"mountpoint": mountpoint})
    config = container_config(str(sandbox), [volume], user="nobody")
    try:
        with pytest.raises(IsolatorError) as refused:
            isolator.prepare(container_id("attacker"), config).get(WAIT)
        message = str(refused.value)
        assert message.startswith("VolumeDriver.Create: option 'mountpoint':")
        assert repr(mountpoint) in message
        isolator.cleanup(container_id("attacker")).get(WAIT)
    finally:
        isolator.stop()
    after = os.stat(mountpoint)
    assert (after.st_uid, after.st_gid, after.st_mode) == (
        before.st_uid,
        before.st_gid,
        before.st_mode,
    )
    assert "VolumeDriver.Mount" not in [call.method for call in setup.plugin.calls]
    assert "VolumeDriver.Unmount" not in [call.method for call in setup.plugin.calls]
    assert setup.client.loop.submit(setup.client.api.list(DRIVER)).get(WAIT) == []
    assert list((sandbox / "data").iterdir()) == []
    assert not (setup.workdir / "checkpoints" / "attacker").exists()
