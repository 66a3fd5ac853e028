"""The 11 cases of Mesos's ``docker_volume_isolator_tests.cpp``, at the isolator level.

Mesos runs each through an agent and a containerizer with a mock ``DriverClient``; here
the isolator is driven directly with a recording client, and the tests that need a Docker
image use a rootfs directory made by the test. What a task would have checked inside the
container (a file visible at the target) is checked on the launch info the isolator
returns; the end-to-end tests do the real mounts.
"""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest

from actors import Future
from isolator import Flags, IsolatorError
from isolator.common.linux import CLONE_NEWNS, MS_BIND, MS_RDONLY, MS_REC
from isolator.messages import container_config, container_id, docker_volume
from isolator.protos import ContainerLaunchInfo, ContainerState
from isolator.testing import DriverCall, RecordingDriverClient
from tests.support.isolators import running_isolator, sandbox, volumes_file
from tests.support.waits import WAIT

RW = MS_BIND | MS_REC
RO = MS_BIND | MS_REC | MS_RDONLY


def ops(calls: list[DriverCall]) -> list[tuple[str, str, str]]:
    return [(c.op, c.driver, c.name) for c in calls]


def mounts(info: ContainerLaunchInfo) -> list[tuple[str, str, int]]:
    return [(m.source, m.target, m.flags) for m in info.mounts]


def test_command_task_no_rootfs_with_volumes(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    """Mesos: ROOT_CommandTaskNoRootfsWithVolumes."""
    directory = sandbox(str(tmp_path), "sandbox")
    absolute = sandbox(str(tmp_path), "foo2")
    client.script("mount", "driver1", "name1", str(tmp_path / "volume1"))
    client.script("mount", "driver2", "name2", str(tmp_path / "volume2") + "\n")
    config = container_config(
        directory,
        [
            docker_volume("driver1", "name1", "tmp/foo1", {"iops": "150"}),
            docker_volume("driver2", "name2", absolute),
        ],
    )
    cid = container_id("c1")
    with running_isolator(flags, client) as isolator:
        info = isolator.prepare(cid, config).get(WAIT)
        assert info is not None
        assert list(info.clone_namespaces) == [CLONE_NEWNS]
        assert mounts(info) == [
            (str(tmp_path / "volume1"), f"{directory}/tmp/foo1", RW),
            (str(tmp_path / "volume2"), absolute, RW),
        ]
        assert os.path.isdir(f"{directory}/tmp/foo1")
        calls = client.calls
        assert ops(calls) == [("mount", "driver1", "name1"), ("mount", "driver2", "name2")]
        assert calls[0].options == {"iops": "150"}
        assert calls[1].options == {}
        assert json.loads(volumes_file(flags, "c1").read_text()) == {
            "volumes": [
                {"driver": "driver1", "name": "name1"},
                {"driver": "driver2", "name": "name2"},
            ]
        }

        assert isolator.cleanup(cid).get(WAIT) is None
        assert sorted(ops(client.calls)[2:]) == [
            ("unmount", "driver1", "name1"),
            ("unmount", "driver2", "name2"),
        ]
        assert not volumes_file(flags, "c1").parent.exists()


def test_command_task_no_rootfs_failed_with_same_volumes(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    """Mesos: ROOT_CommandTaskNoRootfsFailedWithSameVolumes."""
    directory = sandbox(str(tmp_path), "sandbox")
    absolute = sandbox(str(tmp_path), "foo2")
    config = container_config(
        directory,
        [
            docker_volume("driver1", "name1", "tmp/foo1", {"iops": "150"}),
            docker_volume("driver1", "name1", absolute),
        ],
    )
    with running_isolator(flags, client) as isolator:
        with pytest.raises(IsolatorError) as failure:
            isolator.prepare(container_id("c1"), config).get(WAIT)
        assert str(failure.value) == (
            "Found duplicate docker volume with driver 'driver1' and name 'name1'"
        )
        assert client.calls == []
        assert not volumes_file(flags, "c1").parent.exists()


def test_command_task_no_rootfs_slave_recovery(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    """Mesos: ROOT_CommandTaskNoRootfsSlaveRecovery: no remount, unmount after restart."""
    directory = sandbox(str(tmp_path), "sandbox")
    absolute = sandbox(str(tmp_path), "foo2")
    config = container_config(
        directory,
        [
            docker_volume("driver1", "name1", "tmp/foo1", {"iops": "150"}),
            docker_volume("driver2", "name2", absolute),
        ],
    )
    cid = container_id("c1")
    with running_isolator(flags, client) as isolator:
        isolator.prepare(cid, config).get(WAIT)
    # The agent died without cleaning up; a new one recovers with a new driver.
    restarted = RecordingDriverClient(str(tmp_path / "volumes"))
    with running_isolator(flags, restarted) as isolator:
        state = ContainerState(container_id=cid, pid=1, directory=directory)
        assert isolator.recover([state], []).get(WAIT) is None
        assert restarted.calls == []
        isolator.cleanup(cid).get(WAIT)
        assert sorted(ops(restarted.calls)) == [
            ("unmount", "driver1", "name1"),
            ("unmount", "driver2", "name2"),
        ]
        assert not volumes_file(flags, "c1").parent.exists()


def test_empty_checkpoint_file_slave_recovery(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    """Mesos: ROOT_EmptyCheckpointFileSlaveRecovery (MESOS-9507)."""
    directory = sandbox(str(tmp_path), "sandbox")
    config = container_config(directory, [docker_volume("driver1", "name1", "tmp/foo1")])
    with running_isolator(flags, client) as isolator:
        isolator.prepare(container_id("c1"), config).get(WAIT)
    volumes_file(flags, "c1").write_text("")
    restarted = RecordingDriverClient(str(tmp_path / "volumes"))
    with running_isolator(flags, restarted) as isolator:
        # Not checkpointed by the framework: the container is an unknown orphan.
        assert isolator.recover([], []).get(WAIT) is None
        # Its cleanup has an empty Info, so nothing is unmounted; the directory goes.
        isolator.cleanup(container_id("c1")).get(WAIT)
        assert restarted.calls == []
        assert not volumes_file(flags, "c1").parent.exists()


def test_command_task_no_rootfs_single_volume_multiple_containers(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    """Mesos: ROOT_CommandTaskNoRootfsSingleVolumeMultipleContainers.

    Deviation: Mesos mounts once per container; here the second container reuses the
    first one's mount, so a plugin that counts calls sees one Mount and one Unmount.
    """
    first, second = container_id("c1"), container_id("c2")
    with running_isolator(flags, client) as isolator:
        launch_infos = []
        for cid in (first, second):
            directory = sandbox(str(tmp_path), f"sandbox-{cid.value}")
            config = container_config(directory, [docker_volume("driver1", "name1", "tmp/foo")])
            launch_infos.append(isolator.prepare(cid, config).get(WAIT))
        assert ops(client.calls) == [("mount", "driver1", "name1")]
        sources = [info.mounts[0].source for info in launch_infos if info is not None]
        assert sources[0] == sources[1] == str(tmp_path / "volumes" / "driver1" / "name1")
        isolator.cleanup(first).get(WAIT)
        assert [c.op for c in client.calls] == ["mount"]
        isolator.cleanup(second).get(WAIT)
        assert ops(client.calls)[1:] == [("unmount", "driver1", "name1")]
    assert client.counts == {}


def test_command_task_rootfs_with_absolute_path_volume(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    """Mesos: ROOT_INTERNET_CURL_CommandTaskRootfsWithAbsolutePathVolume."""
    rootfs = sandbox(str(tmp_path), "rootfs")
    container_path = str(tmp_path / "foo")  # not created on the host
    config = container_config(
        sandbox(str(tmp_path), "sandbox"),
        [docker_volume("driver1", "name1", container_path)],
        rootfs=rootfs,
    )
    with running_isolator(flags, client) as isolator:
        info = isolator.prepare(container_id("c1"), config).get(WAIT)
        assert info is not None
        target = rootfs + container_path
        assert [m.target for m in info.mounts] == [target]
        assert os.path.isdir(target)
        assert not os.path.exists(container_path)
        isolator.cleanup(container_id("c1")).get(WAIT)
        assert ops(client.calls) == [("mount", "driver1", "name1"), ("unmount", "driver1", "name1")]


def test_command_task_rootfs_with_relative_volume(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    """Mesos: ROOT_INTERNET_CURL_CommandTaskRootfsWithRelativeVolume."""
    rootfs = sandbox(str(tmp_path), "rootfs")
    directory = sandbox(str(tmp_path), "sandbox")
    config = container_config(
        directory, [docker_volume("driver1", "name1", "tmp/foo", {"iops": "150"})], rootfs=rootfs
    )
    with running_isolator(flags, client) as isolator:
        info = isolator.prepare(container_id("c1"), config).get(WAIT)
        assert info is not None
        assert [m.target for m in info.mounts] == [f"{rootfs}/mnt/mesos/sandbox/tmp/foo"]
        # Made in the host sandbox, which is bind mounted into the rootfs later.
        assert os.path.isdir(f"{directory}/tmp/foo")
        assert not os.path.exists(f"{rootfs}/mnt/mesos/sandbox/tmp/foo")
        assert client.calls[0].options == {"iops": "150"}
        isolator.cleanup(container_id("c1")).get(WAIT)
        assert [c.op for c in client.calls] == ["mount", "unmount"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_command_task_rootfs_unprivileged_user(tmp_path: Path) -> None:
    """Mesos: ROOT_INTERNET_CURL_UNPRIVILEGED_USER_CommandTaskRootfs (docker_volume_chown)."""
    user = pwd.getpwnam("nobody")
    mount_point = sandbox(str(tmp_path), "mount-point")
    os.chown(mount_point, 0, 0)
    client = RecordingDriverClient(str(tmp_path / "volumes"))
    client.script("mount", "driver1", "name1", mount_point)
    flags = Flags(
        docker_volume_checkpoint_dir=str(tmp_path / "checkpoint"), docker_volume_chown=True
    )
    config = container_config(
        sandbox(str(tmp_path), "sandbox"),
        [docker_volume("driver1", "name1", str(tmp_path / "foo"))],
        rootfs=sandbox(str(tmp_path), "rootfs"),
        user="nobody",
    )
    with running_isolator(flags, client) as isolator:
        isolator.prepare(container_id("c1"), config).get(WAIT)
        owner = os.stat(mount_point)
        assert (owner.st_uid, owner.st_gid) == (user.pw_uid, user.pw_gid)
        isolator.cleanup(container_id("c1")).get(WAIT)
        assert [c.op for c in client.calls] == ["mount", "unmount"]


@pytest.mark.parametrize("chown", [False, True])
def test_chown_skipped_for_root_or_when_off(tmp_path: Path, chown: bool) -> None:
    mount_point = sandbox(str(tmp_path), "mount-point")
    before = os.stat(mount_point)
    client = RecordingDriverClient(str(tmp_path / "volumes"))
    client.script("mount", "d", "n", mount_point)
    flags = Flags(docker_volume_checkpoint_dir=str(tmp_path / "cp"), docker_volume_chown=chown)
    user = "root" if chown else "nobody"
    config = container_config(
        sandbox(str(tmp_path), "s"), [docker_volume("d", "n", "v")], user=user
    )
    with running_isolator(flags, client) as isolator:
        isolator.prepare(container_id("c1"), config).get(WAIT)
    after = os.stat(mount_point)
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)


def test_command_task_no_rootfs_with_read_only_volume(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    """Mesos: ROOT_CommandTaskNoRootfsWithReadOnlyVolume: the bind is read-only."""
    directory = sandbox(str(tmp_path), "sandbox")
    config = container_config(
        directory, [docker_volume("driver1", "name1", "tmp/foo", {"iops": "150"}, read_only=True)]
    )
    with running_isolator(flags, client) as isolator:
        info = isolator.prepare(container_id("c1"), config).get(WAIT)
        assert info is not None
        assert [(m.target, m.flags) for m in info.mounts] == [(f"{directory}/tmp/foo", RO)]
        assert client.calls[0].options == {"iops": "150"}
        isolator.cleanup(container_id("c1")).get(WAIT)
        assert [c.op for c in client.calls] == ["mount", "unmount"]


def test_command_task_rootfs_with_read_only_volume(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    """Mesos: ROOT_INTERNET_CURL_CommandTaskRootfsWithReadOnlyVolume."""
    rootfs = sandbox(str(tmp_path), "rootfs")
    config = container_config(
        sandbox(str(tmp_path), "sandbox"),
        [docker_volume("driver1", "name1", "tmp/foo", read_only=True)],
        rootfs=rootfs,
    )
    with running_isolator(flags, client) as isolator:
        info = isolator.prepare(container_id("c1"), config).get(WAIT)
        assert info is not None
        assert [(m.target, m.flags) for m in info.mounts] == [
            (f"{rootfs}/mnt/mesos/sandbox/tmp/foo", RO)
        ]
        isolator.cleanup(container_id("c1")).get(WAIT)
        assert [c.op for c in client.calls] == ["mount", "unmount"]


def test_command_task_no_rootfs_with_unmount_volume_failure(
    tmp_path: Path, client: RecordingDriverClient
) -> None:
    """Mesos: ROOT_CommandTaskNoRootfsWithUnmountVolumeFailure (MESOS-10126)."""
    flags = Flags(docker_volume_checkpoint_dir=str(tmp_path / "checkpoint"))
    client.script("unmount", "driver", "name", IsolatorError("Mock failure"))
    with running_isolator(flags, client) as isolator:
        first = container_id("task1")
        config = container_config(
            sandbox(str(tmp_path), "s1"), [docker_volume("driver", "name", "tmp/foo")]
        )
        isolator.prepare(first, config).get(WAIT)
        with pytest.raises(IsolatorError, match=r"^Mock failure$"):
            isolator.cleanup(first).get(WAIT)
        # The checkpoint stays so a restarted agent retries the unmount.
        assert volumes_file(flags, "task1").exists()

        second = container_id("task2")
        config = container_config(
            sandbox(str(tmp_path), "s2"), [docker_volume("driver", "name", "tmp/foo")]
        )
        isolator.prepare(second, config).get(WAIT)
        # The failed unmount left no stale reference: this cleanup unmounts. Deviation:
        # Mesos mounts again; here the volume may still be mounted after the failed
        # Unmount, so the driver is asked where (Path), and that mount is reused.
        isolator.cleanup(second).get(WAIT)
        assert ops(client.calls) == [
            ("mount", "driver", "name"),
            ("unmount", "driver", "name"),
            ("path", "driver", "name"),
            ("unmount", "driver", "name"),
        ]
        assert not volumes_file(flags, "task2").parent.exists()


def test_prepare_waits_for_every_mount(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    """Await, not collect: prepare never completes while a mount is pending."""
    client.hold("mount", "slow", "v")
    client.script("mount", "fast", "v", IsolatorError("fast failed"))
    config = container_config(
        sandbox(str(tmp_path), "s"),
        [docker_volume("fast", "v", "a"), docker_volume("slow", "v", "b")],
    )
    with running_isolator(flags, client) as isolator:
        prepared: Future[ContainerLaunchInfo | None] = isolator.prepare(container_id("c"), config)
        client.wait_for_calls(2)
        assert not prepared.wait(0.1)  # NEGATIVE_WAIT: still pending on the slow mount
        client.release("mount", "slow", "v", IsolatorError("slow failed"))
        with pytest.raises(IsolatorError) as failure:
            prepared.get(WAIT)
        assert str(failure.value) == "fast failed\nslow failed"
