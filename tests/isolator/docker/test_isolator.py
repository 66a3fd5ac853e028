"""Every branch and message of the isolator beyond Mesos's own 11 cases."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from actors import Future
from isolator import DockerVolumeIsolator, DriverClient, Flags, IsolatorError
from isolator.common.linux import CLONE_NEWNS
from isolator.drivers import factory
from isolator.messages import container_config, container_id, docker_volume, executor_config
from isolator.protos import (
    CommandInfo,
    ContainerConfig,
    ContainerInfo,
    ContainerState,
    Volume,
)
from isolator.testing import RecordingDriverClient
from tests.support.isolators import running_isolator, sandbox, volumes_file, write_checkpoint
from tests.support.waits import NEGATIVE_WAIT, WAIT

# -- what prepare reads -------------------------------------------------------------------


def test_no_container_info_needs_nothing(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    config = ContainerConfig(directory=str(tmp_path), command_info=CommandInfo(value="true"))
    with running_isolator(flags, client) as isolator:
        assert isolator.prepare(container_id("c"), config).get(WAIT) is None
    assert not os.path.exists(volumes_file(flags, "c").parent)


def test_volumes_from_executor_info_when_container_info_is_absent(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    directory = sandbox(str(tmp_path), "s")
    config = executor_config(directory, [docker_volume("d", "n", "data")])
    with running_isolator(flags, client) as isolator:
        info = isolator.prepare(container_id("c"), config).get(WAIT)
        assert info is not None
        assert [m.target for m in info.mounts] == [f"{directory}/data"]


def test_docker_container_is_refused(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    config = container_config(
        str(tmp_path), [docker_volume("d", "n", "v")], container_type=ContainerInfo.DOCKER
    )
    with running_isolator(flags, client) as isolator, pytest.raises(IsolatorError) as failure:
        isolator.prepare(container_id("c"), config).get(WAIT)
    assert str(failure.value) == "Can only prepare docker volume driver for a MESOS container"


def test_other_volume_types_are_skipped(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    no_source = Volume(container_path="a", mode=Volume.RW, host_path="/tmp")
    host_path = Volume(container_path="b", mode=Volume.RW)
    host_path.source.type = Volume.Source.HOST_PATH
    config = container_config(str(tmp_path), [no_source, host_path])
    with running_isolator(flags, client) as isolator:
        assert isolator.prepare(container_id("c"), config).get(WAIT) is None
    assert client.calls == []
    assert not os.path.exists(volumes_file(flags, "c").parent)


def test_missing_driver_is_refused(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    config = container_config(str(tmp_path), [docker_volume(None, "vol", "v")])
    parent = container_id("parent")
    with running_isolator(flags, client) as isolator, pytest.raises(IsolatorError) as failure:
        isolator.prepare(container_id("child", parent), config).get(WAIT)
    assert str(failure.value) == (
        "The volume driver is not specified for volume 'vol' with container parent.child"
    )


def test_absolute_path_without_rootfs_must_exist(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    missing = str(tmp_path / "missing")
    config = container_config(str(tmp_path), [docker_volume("d", "n", missing)])
    with running_isolator(flags, client) as isolator, pytest.raises(IsolatorError) as failure:
        isolator.prepare(container_id("c"), config).get(WAIT)
    assert str(failure.value) == f"Absolute container path '{missing}' does not exist"
    assert not os.path.exists(missing)


def test_target_that_cannot_be_created(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    directory = sandbox(str(tmp_path), "s")
    Path(directory, "blocker").write_text("a file where a directory should go")
    config = container_config(directory, [docker_volume("d", "n", "blocker/data")])
    with running_isolator(flags, client) as isolator, pytest.raises(IsolatorError) as failure:
        isolator.prepare(container_id("c"), config).get(WAIT)
    assert str(failure.value) == (
        f"Failed to create the target of the mount at '{directory}/blocker/data': Not a directory"
    )
    assert client.calls == []


def test_driver_options_last_duplicate_key_wins(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    volume = docker_volume("d", "n", "v", {"size": "1"})
    volume.source.docker_volume.driver_options.parameter.add(key="size", value="2")
    with running_isolator(flags, client) as isolator:
        isolator.prepare(container_id("c"), container_config(str(tmp_path), [volume])).get(WAIT)
    assert client.calls[0].options == {"size": "2"}


def test_same_volume_in_two_containers_is_not_a_duplicate(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    with running_isolator(flags, client) as isolator:
        for name in ("a", "b"):
            config = container_config(sandbox(str(tmp_path), name), [docker_volume("d", "n", "v")])
            assert isolator.prepare(container_id(name), config).get(WAIT) is not None


def test_same_name_with_another_driver_is_another_volume(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    config = container_config(
        str(tmp_path), [docker_volume("d1", "n", "a"), docker_volume("d2", "n", "b")]
    )
    with running_isolator(flags, client) as isolator:
        info = isolator.prepare(container_id("c"), config).get(WAIT)
    assert info is not None
    assert len(info.mounts) == 2


# -- checkpoints ----------------------------------------------------------------------------


def test_checkpoint_is_written_before_any_mount(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    seen: list[bool] = []

    class CheckingClient(RecordingDriverClient):
        def mount(self, driver: str, name: str, options: object) -> object:  # type: ignore[override]
            seen.append(volumes_file(flags, "c").exists())
            return super().mount(driver, name, options)  # type: ignore[arg-type]

    checking = CheckingClient(str(tmp_path / "v"))
    config = container_config(str(tmp_path), [docker_volume("d", "n", "v")])
    with running_isolator(flags, checking) as isolator:
        isolator.prepare(container_id("c"), config).get(WAIT)
    assert seen == [True]


def test_container_directory_that_cannot_be_created(
    tmp_path: Path, client: RecordingDriverClient
) -> None:
    root = tmp_path / "checkpoint"
    flags = Flags(docker_volume_checkpoint_dir=str(root))
    config = container_config(str(tmp_path), [docker_volume("d", "n", "v")])
    with running_isolator(flags, client) as isolator:
        (root / "c").write_text("in the way")
        with pytest.raises(IsolatorError) as failure:
            isolator.prepare(container_id("c"), config).get(WAIT)
    assert str(failure.value) == (
        f"Failed to create the container directory at '{root}/c': File exists"
    )
    assert client.calls == []


def test_checkpoint_that_cannot_be_written(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    config = container_config(str(tmp_path), [docker_volume("d", "n", "v")])
    path = volumes_file(flags, "c")
    with running_isolator(flags, client) as isolator:
        path.mkdir(parents=True)  # a directory where the file goes: the rename fails
        with pytest.raises(IsolatorError) as failure:
            isolator.prepare(container_id("c"), config).get(WAIT)
    assert str(failure.value).startswith(f"Failed to checkpoint docker volumes at '{path}': ")
    assert client.calls == []


@pytest.mark.parametrize("value", ["", ".", "..", "a/b", "a\0b", "../../etc"])
def test_container_ids_that_escape_the_root_are_refused(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient, value: str
) -> None:
    config = container_config(str(tmp_path), [docker_volume("d", "n", "v")])
    bad = container_id(value)
    nested = container_id("ok", container_id(value))
    with running_isolator(flags, client) as isolator:
        for cid in (bad, nested):
            with pytest.raises(IsolatorError, match="container ID"):
                isolator.prepare(cid, config).get(WAIT)
            with pytest.raises(IsolatorError, match="container ID"):
                isolator.cleanup(cid).get(WAIT)
        state = ContainerState(container_id=bad, pid=1, directory=str(tmp_path))
        with pytest.raises(IsolatorError, match=r"^Failed to recover docker volumes for container"):
            isolator.recover([state], []).get(WAIT)
        with pytest.raises(IsolatorError, match=r"^Failed to recover docker volumes for orphan"):
            isolator.recover([], [nested]).get(WAIT)
    assert client.calls == []
    assert os.listdir(flags.docker_volume_checkpoint_dir) == []


# -- launch info ----------------------------------------------------------------------------


def test_pre_exec_commands_launch_style(tmp_path: Path, client: RecordingDriverClient) -> None:
    flags = Flags(
        docker_volume_checkpoint_dir=str(tmp_path / "cp"),
        docker_volume_launch_style="pre_exec_commands",
    )
    client.script("mount", "d", "rw", "/mnt/rw\n")
    client.script("mount", "d", "ro", "/mnt/ro")
    directory = sandbox(str(tmp_path), "s")
    config = container_config(
        directory, [docker_volume("d", "rw", "a"), docker_volume("d", "ro", "b", read_only=True)]
    )
    with running_isolator(flags, client) as isolator:
        info = isolator.prepare(container_id("c"), config).get(WAIT)
    assert info is not None
    assert list(info.clone_namespaces) == [CLONE_NEWNS]
    assert len(info.mounts) == 0
    commands = [(c.shell, c.value, list(c.arguments)) for c in info.pre_exec_commands]
    assert commands == [
        (False, "mount", ["mount", "-n", "--rbind", "/mnt/rw", f"{directory}/a"]),
        (False, "mount", ["mount", "-n", "--rbind", "/mnt/ro", f"{directory}/b"]),
        (False, "mount", ["mount", "-n", "-o", "remount,bind,ro", f"{directory}/b"]),
    ]


def test_mount_point_is_trimmed(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    client.script("mount", "d", "n", " \t/mnt/point\r\n")
    config = container_config(str(tmp_path), [docker_volume("d", "n", "v")])
    with running_isolator(flags, client) as isolator:
        info = isolator.prepare(container_id("c"), config).get(WAIT)
    assert info is not None
    assert info.mounts[0].source == "/mnt/point"


def test_discarded_mount_fails_prepare_with_discarded(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    client.script("mount", "d", "n", Future.discarded())
    config = container_config(str(tmp_path), [docker_volume("d", "n", "v")])
    with running_isolator(flags, client) as isolator, pytest.raises(IsolatorError) as failure:
        isolator.prepare(container_id("c"), config).get(WAIT)
    assert str(failure.value) == "discarded"


def test_failed_prepare_still_unmounts_every_volume_at_cleanup(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    client.script("mount", "d", "bad", IsolatorError("no such volume"))
    config = container_config(
        str(tmp_path), [docker_volume("d", "good", "a"), docker_volume("d", "bad", "b")]
    )
    with running_isolator(flags, client) as isolator:
        with pytest.raises(IsolatorError, match=r"^no such volume$"):
            isolator.prepare(container_id("c"), config).get(WAIT)
        isolator.cleanup(container_id("c")).get(WAIT)
    unmounted = sorted(c.name for c in client.calls if c.op == "unmount")
    assert unmounted == ["bad", "good"]


def test_chown_to_unknown_user(tmp_path: Path, client: RecordingDriverClient) -> None:
    flags = Flags(docker_volume_checkpoint_dir=str(tmp_path / "cp"), docker_volume_chown=True)
    mount_point = sandbox(str(tmp_path), "m")
    client.script("mount", "d", "n", mount_point)
    config = container_config(
        str(tmp_path), [docker_volume("d", "n", "v")], user="no-such-user-xyz"
    )
    with running_isolator(flags, client) as isolator, pytest.raises(IsolatorError) as failure:
        isolator.prepare(container_id("c"), config).get(WAIT)
    assert str(failure.value) == (
        f"Failed to set 'no-such-user-xyz' as the docker volume '{mount_point}' owner: "
        "No such user 'no-such-user-xyz'"
    )


# -- cleanup --------------------------------------------------------------------------------


def test_cleanup_of_unknown_container_succeeds(flags: Flags, client: RecordingDriverClient) -> None:
    with running_isolator(flags, client) as isolator:
        assert isolator.cleanup(container_id("nobody")).get(WAIT) is None
    assert client.calls == []


def test_parent_with_live_child_cannot_be_cleaned_up(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    parent = container_id("parent")
    child = container_id("child", parent)
    with running_isolator(flags, client) as isolator:
        for cid, name in ((parent, "p"), (child, "c")):
            config = container_config(sandbox(str(tmp_path), name), [docker_volume("d", name, "v")])
            isolator.prepare(cid, config).get(WAIT)
        with pytest.raises(IsolatorError) as failure:
            isolator.cleanup(parent).get(WAIT)
        assert str(failure.value) == (
            "Failed to clean up container parent: it has child container parent.child "
            "which is not cleaned up yet"
        )
        assert [c.op for c in client.calls] == ["mount", "mount"]
        isolator.cleanup(child).get(WAIT)
        isolator.cleanup(parent).get(WAIT)
    assert sorted(c.name for c in client.calls if c.op == "unmount") == ["c", "p"]


def test_same_value_under_another_parent_is_another_container(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    # Paths use only the value, as in Mesos; identity uses the parents too.
    plain = container_id("x")
    with running_isolator(flags, client) as isolator:
        config = container_config(str(tmp_path), [docker_volume("d", "n", "v")])
        isolator.prepare(plain, config).get(WAIT)
        assert isolator.cleanup(container_id("x", container_id("p"))).get(WAIT) is None
        assert [c.op for c in client.calls] == ["mount"]


def test_checkpoint_directory_that_cannot_be_removed(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    config = container_config(str(tmp_path), [docker_volume("d", "n", "v")])
    with running_isolator(flags, client) as isolator:
        isolator.prepare(container_id("c"), config).get(WAIT)
        directory = volumes_file(flags, "c").parent
        shutil.rmtree(directory)
        with pytest.raises(IsolatorError) as failure:
            isolator.cleanup(container_id("c")).get(WAIT)
    assert str(failure.value) == (
        f"Failed to remove the checkpoint directory at '{directory}': No such file or directory"
    )


def test_unmount_failures_are_joined_by_newlines(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    client.script("unmount", "d", "a", IsolatorError("busy a"))
    client.script("unmount", "d", "b", IsolatorError("busy b"))
    config = container_config(
        str(tmp_path), [docker_volume("d", "a", "x"), docker_volume("d", "b", "y")]
    )
    with running_isolator(flags, client) as isolator:
        isolator.prepare(container_id("c"), config).get(WAIT)
        with pytest.raises(IsolatorError) as failure:
            isolator.cleanup(container_id("c")).get(WAIT)
    assert sorted(str(failure.value).split("\n")) == ["busy a", "busy b"]
    assert volumes_file(flags, "c").exists()


# -- recover --------------------------------------------------------------------------------


def test_recover_from_a_checkpoint_written_by_mesos(
    flags: Flags, client: RecordingDriverClient
) -> None:
    # Exactly the bytes a Mesos agent writes: compact JSON from JSON::protobuf.
    write_checkpoint(
        flags,
        "4b2b3c1e-8f7a-4c0b-9a8e-2d1f6e5c7b90",
        b'{"volumes":[{"driver":"rexray","name":"db"},{"driver":"local","name":"logs"}]}',
    )
    cid = container_id("4b2b3c1e-8f7a-4c0b-9a8e-2d1f6e5c7b90")
    with running_isolator(flags, client) as isolator:
        state = ContainerState(container_id=cid, pid=42, directory="/sandbox")
        isolator.recover([state], []).get(WAIT)
        assert client.calls == []
        isolator.cleanup(cid).get(WAIT)
    assert sorted((c.driver, c.name) for c in client.calls) == [("local", "logs"), ("rexray", "db")]
    assert {c.op for c in client.calls} == {"unmount"}


def test_recover_cleans_up_unknown_orphans_but_keeps_known_ones(
    flags: Flags, client: RecordingDriverClient
) -> None:
    write_checkpoint(flags, "known", b'{"volumes":[{"driver":"d","name":"shared"}]}')
    write_checkpoint(flags, "orphan", b'{"volumes":[{"driver":"d","name":"o"}]}')
    write_checkpoint(
        flags, "unknown", b'{"volumes":[{"driver":"d","name":"shared"},{"driver":"d","name":"u"}]}'
    )
    with running_isolator(flags, client) as isolator:
        state = ContainerState(container_id=container_id("known"), pid=1, directory="/s")
        isolator.recover([state], [container_id("orphan")]).get(WAIT)
        # The unknown orphan's volumes are unmounted unless a known container uses them.
        (cleanup,) = isolator.orphan_cleanups().get(WAIT)
        assert cleanup.is_ready()
        assert [(c.op, c.name) for c in client.calls] == [("unmount", "u")]
        assert not volumes_file(flags, "unknown").parent.exists()
        # Known orphans wait for the containerizer to clean them up.
        assert volumes_file(flags, "orphan").exists()
        isolator.cleanup(container_id("orphan")).get(WAIT)
        isolator.cleanup(container_id("known")).get(WAIT)
    assert sorted((c.op, c.name) for c in client.calls) == [
        ("unmount", "o"),
        ("unmount", "shared"),
        ("unmount", "u"),
    ]


def test_recover_known_container_without_checkpoint_dir(
    flags: Flags, client: RecordingDriverClient
) -> None:
    with running_isolator(flags, client) as isolator:
        state = ContainerState(container_id=container_id("gone"), pid=1, directory="/s")
        isolator.recover([state], []).get(WAIT)
        assert isolator.cleanup(container_id("gone")).get(WAIT) is None
    assert client.calls == []


def test_recover_known_container_with_missing_volumes_file(
    flags: Flags, client: RecordingDriverClient
) -> None:
    directory = Path(flags.docker_volume_checkpoint_dir) / "c"
    directory.mkdir(parents=True)
    with running_isolator(flags, client) as isolator:
        state = ContainerState(container_id=container_id("c"), pid=1, directory="/s")
        isolator.recover([state], []).get(WAIT)
        assert directory.exists()  # known: kept until the containerizer cleans it up
        isolator.cleanup(container_id("c")).get(WAIT)
    assert not directory.exists()
    assert client.calls == []


def test_recover_with_no_checkpoint_root(tmp_path: Path, client: RecordingDriverClient) -> None:
    root = tmp_path / "cp"
    with running_isolator(Flags(docker_volume_checkpoint_dir=str(root)), client) as isolator:
        root.rmdir()
        assert isolator.recover([], []).get(WAIT) is None


def test_recover_fails_on_a_root_that_cannot_be_listed(
    tmp_path: Path, client: RecordingDriverClient
) -> None:
    root = tmp_path / "cp"
    with running_isolator(Flags(docker_volume_checkpoint_dir=str(root)), client) as isolator:
        root.rmdir()
        root.write_text("not a directory")
        with pytest.raises(IsolatorError) as failure:
            isolator.recover([], []).get(WAIT)
    assert str(failure.value) == (
        f"Unable to list docker volume checkpoint directory '{root}': Not a directory"
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "JSON parse failed: "),
        (b'{"volumes":[{"driver":"d"}]}', "Protobuf parse failed: "),
        (
            b'{"volumes":[{"driver":"d","name":"n"},{"driver":"d","name":"n"}]}',
            "Duplicate docker volume with driver 'd' and name 'n'",
        ),
    ],
)
def test_recover_fails_on_corrupt_checkpoints(
    flags: Flags, client: RecordingDriverClient, content: bytes, reason: str
) -> None:
    write_checkpoint(flags, "c", content)
    state = ContainerState(container_id=container_id("c"), pid=1, directory="/s")
    with running_isolator(flags, client) as isolator:
        with pytest.raises(IsolatorError) as failure:
            isolator.recover([state], []).get(WAIT)
        assert str(failure.value).startswith(
            f"Failed to recover docker volumes for container c: {reason}"
        )
        with pytest.raises(IsolatorError) as failure:
            isolator.recover([], [container_id("c")]).get(WAIT)
        assert str(failure.value).startswith(
            f"Failed to recover docker volumes for orphan container c: {reason}"
        )
        with pytest.raises(IsolatorError) as failure:
            isolator.recover([], []).get(WAIT)
        assert str(failure.value).startswith(
            f"Failed to recover docker volumes for orphan container c: {reason}"
        )
    assert client.calls == []
    assert volumes_file(flags, "c").read_bytes() == content


def test_orphans_accept_any_iterable(flags: Flags, client: RecordingDriverClient) -> None:
    with running_isolator(flags, client) as isolator:
        orphans = (container_id(v) for v in ("a", "b"))
        assert isolator.recover(iter([]), orphans).get(WAIT) is None


# -- create ---------------------------------------------------------------------------------


def test_create_refuses_a_checkpoint_root_it_cannot_make(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    flags = Flags(docker_volume_checkpoint_dir=str(blocker / "cp"))
    with pytest.raises(IsolatorError) as failure:
        DockerVolumeIsolator.create(flags, RecordingDriverClient(str(blocker)))
    assert str(failure.value) == (
        f"Failed to create docker volume information root directory at '{blocker}/cp': "
        "Not a directory"
    )


def test_create_uses_the_canonical_root(tmp_path: Path, client: RecordingDriverClient) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    flags = Flags(docker_volume_checkpoint_dir=str(tmp_path / "link"))
    config = container_config(str(tmp_path), [docker_volume("d", "n", "v")])
    with running_isolator(flags, client) as isolator:
        isolator.prepare(container_id("c"), config).get(WAIT)
    assert (real / "c" / "volumes").exists()


def test_create_without_client_requires_root(monkeypatch: pytest.MonkeyPatch, flags: Flags) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(IsolatorError) as failure:
        DockerVolumeIsolator.create(flags)
    assert str(failure.value) == "The 'docker/volume' isolator requires root permissions"


def test_create_without_client_requires_mount_namespaces(
    monkeypatch: pytest.MonkeyPatch, flags: Flags
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(factory, "_mount_namespaces_supported", lambda: False)
    with pytest.raises(IsolatorError) as failure:
        DockerVolumeIsolator.create(flags)
    assert str(failure.value) == "The 'docker/volume' isolator requires mount namespace support"


def test_create_without_client_needs_dvdcli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(factory, "_mount_namespaces_supported", lambda: True)
    flags = Flags(
        docker_volume_checkpoint_dir=str(tmp_path / "cp"),
        docker_volume_driver_client="dvdcli",
        dvdcli_path=str(tmp_path / "no-dvdcli"),
    )
    with pytest.raises(IsolatorError) as failure:
        DockerVolumeIsolator.create(flags)
    assert str(failure.value) == "The 'docker/volume' isolator cannot get dvdcli command"


# -- beyond Mesos: concurrency and threads ----------------------------------------------------


def test_a_hung_mount_does_not_delay_other_volumes(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    client.hold("mount", "d", "hung")
    with running_isolator(flags, client) as isolator:
        hung = isolator.prepare(
            container_id("a"), container_config(str(tmp_path), [docker_volume("d", "hung", "x")])
        )
        other = container_config(str(tmp_path), [docker_volume("d", "fine", "y")])
        assert isolator.prepare(container_id("b"), other).get(WAIT) is not None
        assert isolator.cleanup(container_id("b")).get(WAIT) is None
        assert hung.is_pending()
        client.release("mount", "d", "hung", "/mnt/hung")
        assert hung.get(WAIT) is not None


def test_unmount_waits_for_the_mount_of_the_same_volume(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    client.hold("mount", "d", "n")
    config = container_config(str(tmp_path), [docker_volume("d", "n", "v")])
    with running_isolator(flags, client) as isolator:
        prepared = isolator.prepare(container_id("c"), config)
        client.wait_for_calls(1)
        cleaned = isolator.cleanup(container_id("c"))
        assert not cleaned.wait(NEGATIVE_WAIT)
        assert [c.op for c in client.calls] == ["mount"]
        client.release("mount", "d", "n", "/mnt/n")
        cleaned.get(WAIT)
        prepared.get(WAIT)
    assert [c.op for c in client.calls] == ["mount", "unmount"]


def test_idle_unused_sequences_are_stopped(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    with running_isolator(flags, client) as isolator:
        for index in range(20):
            cid = container_id(f"c{index}")
            config = container_config(str(tmp_path), [docker_volume("d", f"v{index}", "x")])
            isolator.prepare(cid, config).get(WAIT)
            isolator.cleanup(cid).get(WAIT)
        # The last item's bookkeeping reaches the actor after cleanup's reply: a call
        # queued behind it sees the result.
        isolator.cleanup(container_id("none")).get(WAIT)
        assert isolator.sequence_count().get(WAIT) == 0
        sequence_threads = [t for t in threading.enumerate() if t.name.startswith("SequenceActor")]
        assert len(sequence_threads) <= 1  # at most one still finishing its stop


def test_volume_in_use_keeps_its_record_but_no_idle_sequence(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    config = container_config(str(tmp_path), [docker_volume("d", "n", "x")])
    other = container_config(str(tmp_path), [docker_volume("d", "n", "y")])
    with running_isolator(flags, client) as isolator:
        isolator.prepare(container_id("c"), config).get(WAIT)
        isolator.cleanup(container_id("none")).get(WAIT)
        assert isolator.sequence_count().get(WAIT) == 0  # no call in flight
        isolator.prepare(container_id("c2"), other).get(WAIT)  # reuses the mount
        isolator.cleanup(container_id("c")).get(WAIT)
        isolator.cleanup(container_id("c2")).get(WAIT)
    assert [(call.op, call.name) for call in client.calls] == [("mount", "n"), ("unmount", "n")]


def test_driver_is_called_off_the_isolator_thread(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    config = container_config(str(tmp_path), [docker_volume("d", "n", "x")])
    with running_isolator(flags, client) as isolator:
        isolator.prepare(container_id("c"), config).get(WAIT)
    assert client.calls[0].thread.startswith("SequenceActor")


def test_caller_may_reuse_its_messages(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    client.hold("mount", "d", "n")
    cid = container_id("c")
    config = container_config(str(tmp_path), [docker_volume("d", "n", "x")])
    with running_isolator(flags, client) as isolator:
        prepared = isolator.prepare(cid, config)
        cid.value = "changed"
        config.container_info.volumes[0].container_path = "elsewhere"
        client.wait_for_calls(1)
        client.release("mount", "d", "n", "/mnt/n")
        info = prepared.get(WAIT)
        assert info is not None
        assert info.mounts[0].target == f"{tmp_path}/x"
        assert volumes_file(flags, "c").exists()


def test_unknown_orphans_sharing_a_volume_unmount_it_once(
    flags: Flags, client: RecordingDriverClient
) -> None:
    # Beyond Mesos, which recovers and cleans up each orphan in turn and so unmounts a
    # shared volume once per orphan: a second Unmount by the same caller is refused by
    # plugins that count callers by ID.
    for name in ("a", "b", "c"):
        write_checkpoint(flags, name, b'{"volumes":[{"driver":"d","name":"shared"}]}')
    with running_isolator(flags, client) as isolator:
        isolator.recover([], []).get(WAIT)
        cleanups = isolator.orphan_cleanups().get(WAIT)
    assert [c.is_ready() for c in cleanups] == [True, True, True]
    assert [(c.op, c.name) for c in client.calls] == [("unmount", "shared")]
    assert os.listdir(flags.docker_volume_checkpoint_dir) == []


def test_a_driver_client_needs_no_init(tmp_path: Path, flags: Flags) -> None:
    class Minimal(DriverClient):
        def __init__(self, mount_point: str) -> None:  # deliberately no super().__init__()
            self.mount_point = mount_point

        def mount(self, driver: str, name: str, options: object) -> Future[str]:
            return Future.ready(self.mount_point)

        def unmount(self, driver: str, name: str) -> Future[None]:
            return Future.ready(None)

    config = container_config(str(tmp_path), [docker_volume("d", "n", "v")])
    isolator = DockerVolumeIsolator.create(flags, Minimal("/mnt/minimal"))
    try:
        info = isolator.prepare(container_id("c"), config).get(WAIT)
        assert info is not None
        assert info.mounts[0].source == "/mnt/minimal"
        assert isolator.cleanup(container_id("c")).get(WAIT) is None
    finally:
        isolator.stop()
