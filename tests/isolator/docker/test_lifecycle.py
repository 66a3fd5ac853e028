"""A container ID's life, and the promise across it: a volume is unmounted exactly when its
last user is gone. Each case here failed before the isolator kept one life per ID, knew
which mounts the driver refused, and could forget a container (issue 10)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from actors import Future
from isolator import DockerVolumeIsolator, Flags, IsolatorError
from isolator.common.errors import MountRefusedError
from isolator.docker.handle import STOPPED
from isolator.messages import container_config, container_id, docker_volume
from isolator.protos import ContainerConfig, ContainerState
from isolator.testing import RecordingDriverClient
from tests.support.isolators import running_isolator, sandbox, volumes_file, write_checkpoint
from tests.support.waits import WAIT


def ops(client: RecordingDriverClient) -> list[tuple[str, str]]:
    return [(call.op, call.name) for call in client.calls]


def config_for(tmp_path: Path, name: str, *volumes: str) -> ContainerConfig:
    return container_config(
        sandbox(tmp_path, f"sandbox-{name}"), [docker_volume("d", v, v) for v in volumes]
    )


# -- one life per container ID --------------------------------------------------------------


def test_an_id_being_cleaned_up_is_not_prepared_again_until_its_cleanup_ends(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    cid = container_id("task")
    client.hold("unmount", "d", "a")
    with running_isolator(flags, client) as isolator:
        isolator.prepare(cid, config_for(tmp_path, "1", "a")).get(WAIT)
        cleaning = isolator.cleanup(cid)
        client.wait_for_calls(2)  # the unmount is in flight
        with pytest.raises(IsolatorError) as refused:
            isolator.prepare(cid, config_for(tmp_path, "2", "b")).get(WAIT)
        assert str(refused.value) == (
            "Container task is still being cleaned up: a container ID is prepared again "
            "only once its cleanup has finished"
        )
        client.release("unmount", "d", "a", None)
        cleaning.get(WAIT)
        assert not volumes_file(flags, "task").exists()
        # Its cleanup has finished: the ID starts a new life, and its checkpoint stays.
        isolator.prepare(cid, config_for(tmp_path, "3", "b")).get(WAIT)
        assert volumes_file(flags, "task").read_bytes() == (
            b'{"volumes":[{"driver":"d","name":"b"}]}'
        )
    assert ops(client) == [("mount", "a"), ("unmount", "a"), ("mount", "b")]


def test_a_live_id_is_not_prepared_twice(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    cid = container_id("task")
    with running_isolator(flags, client) as isolator:
        isolator.prepare(cid, config_for(tmp_path, "1", "a")).get(WAIT)
        before = volumes_file(flags, "task").read_bytes()
        with pytest.raises(IsolatorError) as refused:
            isolator.prepare(cid, config_for(tmp_path, "2", "b")).get(WAIT)
        assert str(refused.value) == (
            "Container task is already prepared and not cleaned up: a container ID is "
            "prepared again only once its cleanup has finished"
        )
        assert volumes_file(flags, "task").read_bytes() == before  # not overwritten
        isolator.cleanup(cid).get(WAIT)
    assert ops(client) == [("mount", "a"), ("unmount", "a")]


def test_two_containers_with_one_value_never_share_a_checkpoint(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    first = container_id("task", container_id("executor-1"))
    second = container_id("task", container_id("executor-2"))
    with running_isolator(flags, client) as isolator:
        isolator.prepare(first, config_for(tmp_path, "1", "a")).get(WAIT)
        with pytest.raises(IsolatorError) as refused:
            isolator.prepare(second, config_for(tmp_path, "2", "b")).get(WAIT)
        assert str(refused.value) == (
            "Container executor-2.task cannot be prepared while container executor-1.task "
            "is known: both would keep their checkpoint in the same directory (checkpoints "
            "are kept by container ID value)"
        )
        assert volumes_file(flags, "task").read_bytes() == (
            b'{"volumes":[{"driver":"d","name":"a"}]}'
        )
        isolator.cleanup(first).get(WAIT)
        isolator.prepare(second, config_for(tmp_path, "3", "b")).get(WAIT)
    assert ops(client) == [("mount", "a"), ("unmount", "a"), ("mount", "b")]


def test_a_second_cleanup_joins_the_first(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    cid = container_id("task")
    client.hold("unmount", "d", "a")
    with running_isolator(flags, client) as isolator:
        isolator.prepare(cid, config_for(tmp_path, "1", "a")).get(WAIT)
        first = isolator.cleanup(cid)
        second = isolator.cleanup(cid)
        client.wait_for_calls(2)
        client.release("unmount", "d", "a", None)
        assert first.get(WAIT) is None
        assert second.get(WAIT) is None
    assert ops(client) == [("mount", "a"), ("unmount", "a")]


def test_after_a_failed_cleanup_the_next_life_inherits_the_unmount(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    cid = container_id("task")
    client.script("unmount", "d", "a", IsolatorError("plugin busy"))
    with running_isolator(flags, client) as isolator:
        isolator.prepare(cid, config_for(tmp_path, "1", "a")).get(WAIT)
        with pytest.raises(IsolatorError, match=r"^plugin busy$"):
            isolator.cleanup(cid).get(WAIT)
        isolator.prepare(cid, config_for(tmp_path, "2", "b")).get(WAIT)
        # The new checkpoint still lists 'a': a crash now would still unmount it.
        assert volumes_file(flags, "task").read_bytes() == (
            b'{"volumes":[{"driver":"d","name":"b"},{"driver":"d","name":"a"}]}'
        )
        isolator.cleanup(cid).get(WAIT)
    calls = ops(client)
    assert calls[:3] == [("mount", "a"), ("unmount", "a"), ("mount", "b")]
    assert sorted(calls[3:]) == [("unmount", "a"), ("unmount", "b")]  # two sequences
    assert not volumes_file(flags, "task").parent.exists()


def test_a_cleanup_retried_after_a_failure_unmounts_only_what_is_left(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    # Found by the model-based test: 'b' was unmounted by the failed cleanup, so the
    # retry must not look for it (it used to raise KeyError and leave the ID stuck).
    cid = container_id("c")
    client.script("unmount", "d", "a", IsolatorError("busy"))
    with running_isolator(flags, client) as isolator:
        isolator.prepare(cid, config_for(tmp_path, "c", "a", "b")).get(WAIT)
        with pytest.raises(IsolatorError, match=r"^busy$"):
            isolator.cleanup(cid).get(WAIT)
        assert isolator.cleanup(cid).get(WAIT) is None
        assert isolator.usage().get(WAIT).phases == {}
    assert sorted(ops(client)[2:]) == [("unmount", "a"), ("unmount", "a"), ("unmount", "b")]
    assert not volumes_file(flags, "c").parent.exists()


# -- calls on a stopped or recovered isolator -------------------------------------------------


def test_every_call_on_a_stopped_isolator_fails_with_a_clear_error(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    isolator = DockerVolumeIsolator.create(flags, client)
    isolator.stop()
    cid = container_id("c")
    calls: list[Future[Any]] = [
        isolator.prepare(cid, config_for(tmp_path, "c", "a")),
        isolator.cleanup(cid),
        isolator.recover([], []),
        isolator.forget(cid),
        isolator.orphan_cleanups(),
        isolator.sequence_count(),
    ]
    for future in calls:
        with pytest.raises(IsolatorError) as failure:
            future.get(WAIT)
        assert str(failure.value) == STOPPED
    assert client.calls == []


def test_an_isolator_stopped_behind_the_handle_fails_with_the_same_error(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    isolator = DockerVolumeIsolator.create(flags, client)
    other_handle = DockerVolumeIsolator(isolator._ref, owned_client=None)
    isolator.stop()
    with pytest.raises(IsolatorError) as failure:
        other_handle.prepare(container_id("c"), config_for(tmp_path, "c", "a")).get(WAIT)
    assert str(failure.value) == STOPPED


def test_a_bad_argument_fails_the_future_instead_of_raising(
    flags: Flags, client: RecordingDriverClient
) -> None:
    with running_isolator(flags, client) as isolator:
        future = isolator.cleanup("c")  # type: ignore[arg-type]
        with pytest.raises(TypeError) as failure:
            future.get(WAIT)
    assert str(failure.value) == "container_id must be a ContainerID message, not str"


def test_a_second_recovery_fails_without_calling_the_driver(
    flags: Flags, client: RecordingDriverClient
) -> None:
    write_checkpoint(flags, "orphan", b'{"volumes":[{"driver":"d","name":"a"}]}')
    client.hold("unmount", "d", "a")
    with running_isolator(flags, client) as isolator:
        isolator.recover([], []).get(WAIT)
        client.wait_for_calls(1)  # the orphan's unmount is in flight
        with pytest.raises(IsolatorError) as failure:
            isolator.recover([], []).get(WAIT)
        assert str(failure.value) == (
            "The docker/volume isolator has already recovered; recover() runs once, "
            "when the isolator starts"
        )
        client.release("unmount", "d", "a", None)
        (cleanup,) = isolator.orphan_cleanups().get(WAIT)
        assert cleanup.is_ready()
    assert ops(client) == [("unmount", "a")]


def test_a_failed_recovery_records_nothing_and_may_be_retried(
    flags: Flags, client: RecordingDriverClient
) -> None:
    write_checkpoint(flags, "good", b'{"volumes":[{"driver":"d","name":"a"}]}')
    corrupt = write_checkpoint(flags, "zbad", b"{not json")
    state = ContainerState(container_id=container_id("good"), pid=1, directory="/s")
    with running_isolator(flags, client) as isolator:
        with pytest.raises(IsolatorError, match=r"^Failed to recover docker volumes for orphan"):
            isolator.recover([state], []).get(WAIT)
        corrupt.write_bytes(b'{"volumes":[{"driver":"d","name":"b"}]}')
        isolator.recover([state], []).get(WAIT)
        isolator.orphan_cleanups().get(WAIT)
        # 'good' is held once, not twice: its cleanup unmounts 'a'.
        isolator.cleanup(container_id("good")).get(WAIT)
    assert ops(client) == [("unmount", "b"), ("unmount", "a")]


# -- unmount what was mounted ------------------------------------------------------------------


def test_a_refused_mount_is_not_unmounted_at_cleanup(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    client.script("mount", "d", "bad", MountRefusedError("VolumeDriver.Create: bad option"))
    client.script("mount", "d", "lost", IsolatorError("timed out"))
    cid = container_id("c")
    with running_isolator(flags, client) as isolator:
        with pytest.raises(IsolatorError):
            isolator.prepare(cid, config_for(tmp_path, "c", "good", "bad", "lost")).get(WAIT)
        isolator.cleanup(cid).get(WAIT)
    # 'good' mounted and 'lost' may have: both are unmounted; 'bad' was refused.
    unmounted = sorted(name for op, name in ops(client) if op == "unmount")
    assert unmounted == ["good", "lost"]
    assert not volumes_file(flags, "c").parent.exists()


def test_a_volume_refused_to_one_container_and_mounted_by_another_is_unmounted_once(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    client.script("mount", "d", "v", MountRefusedError("refused"), "/mnt/v")
    with running_isolator(flags, client) as isolator:
        with pytest.raises(IsolatorError, match=r"^refused$"):
            isolator.prepare(container_id("a"), config_for(tmp_path, "a", "v")).get(WAIT)
        # The refused Mount mounted nothing: the next container sends its own.
        isolator.prepare(container_id("b"), config_for(tmp_path, "b", "v")).get(WAIT)
        isolator.prepare(container_id("c"), config_for(tmp_path, "c", "v")).get(WAIT)
        isolator.cleanup(container_id("b")).get(WAIT)  # 'a' and 'c' still hold it
        isolator.cleanup(container_id("a")).get(WAIT)
        isolator.cleanup(container_id("c")).get(WAIT)  # the last holder: 'b' mounted it
    assert ops(client) == [("mount", "v"), ("mount", "v"), ("unmount", "v")]


def test_after_recovery_every_checkpointed_volume_is_unmounted(
    flags: Flags, client: RecordingDriverClient
) -> None:
    write_checkpoint(flags, "c", b'{"volumes":[{"driver":"d","name":"a"}]}')
    with running_isolator(flags, client) as isolator:
        isolator.recover([], [container_id("c")]).get(WAIT)
        isolator.cleanup(container_id("c")).get(WAIT)
    assert ops(client) == [("unmount", "a")]  # Mesos's rule: its outcome is unknown


# -- forget ----------------------------------------------------------------------------------


def test_forget_drops_a_stranded_checkpoint_without_unmounting(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient, caplog: pytest.LogCaptureFixture
) -> None:
    cid = container_id("c")
    client.script("unmount", "d", "gone", IsolatorError("plugin gone"))
    with running_isolator(flags, client) as isolator:
        isolator.prepare(cid, config_for(tmp_path, "c", "gone")).get(WAIT)
        with pytest.raises(IsolatorError, match=r"^plugin gone$"):
            isolator.cleanup(cid).get(WAIT)
        assert volumes_file(flags, "c").exists()
        with caplog.at_level(logging.WARNING, logger="isolator"):
            assert isolator.forget(cid).get(WAIT) is None
        assert not volumes_file(flags, "c").parent.exists()
        assert "Forgot container c without unmounting its volumes ['d/gone']" in caplog.text
        # The ID and the volume start afresh.
        isolator.prepare(cid, config_for(tmp_path, "c2", "gone")).get(WAIT)
        isolator.cleanup(cid).get(WAIT)
    assert ops(client) == [("mount", "gone"), ("unmount", "gone")] * 2


def test_forget_of_a_live_container_keeps_the_volumes_of_the_others(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    with running_isolator(flags, client) as isolator:
        isolator.prepare(container_id("a"), config_for(tmp_path, "a", "v")).get(WAIT)
        isolator.prepare(container_id("b"), config_for(tmp_path, "b", "v")).get(WAIT)
        isolator.forget(container_id("a")).get(WAIT)
        isolator.cleanup(container_id("b")).get(WAIT)  # now the last holder
    assert ops(client) == [("mount", "v"), ("unmount", "v")]  # 'b' reused the mount


def test_forget_offline_removes_a_checkpoint_the_isolator_never_read(
    flags: Flags, client: RecordingDriverClient
) -> None:
    write_checkpoint(flags, "old", b'{"volumes":[{"driver":"d","name":"a"}]}')
    with running_isolator(flags, client) as isolator:
        isolator.forget(container_id("old")).get(WAIT)
        with pytest.raises(IsolatorError) as failure:
            isolator.forget(container_id("never")).get(WAIT)
    assert str(failure.value) == (
        "Cannot forget container never: the isolator knows no such container and it has "
        "no checkpoint"
    )
    assert os.listdir(flags.docker_volume_checkpoint_dir) == []
    assert client.calls == []


def test_a_container_being_cleaned_up_cannot_be_forgotten(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    client.hold("unmount", "d", "a")
    with running_isolator(flags, client) as isolator:
        isolator.prepare(container_id("c"), config_for(tmp_path, "c", "a")).get(WAIT)
        cleaning = isolator.cleanup(container_id("c"))
        client.wait_for_calls(2)
        with pytest.raises(IsolatorError, match=r"^Container c is still being cleaned up"):
            isolator.forget(container_id("c")).get(WAIT)
        client.release("unmount", "d", "a", Future.ready(None))
        cleaning.get(WAIT)


# -- the checkpoint root holds what we wrote, and only that is deleted ------------------------


def test_recovery_skips_and_keeps_what_is_not_a_checkpoint(
    flags: Flags, client: RecordingDriverClient, caplog: pytest.LogCaptureFixture
) -> None:
    root = Path(flags.docker_volume_checkpoint_dir)
    write_checkpoint(flags, "orphan", b'{"volumes":[{"driver":"d","name":"a"}]}')
    (root / "stray-file").write_text("not ours")
    (root / "lost+found").mkdir()
    (root / "lost+found" / "#123").write_text("fsck's")
    (root / "link").symlink_to(root / "orphan")
    foreign = write_checkpoint(flags, "busy", b'{"volumes":[{"driver":"d","name":"b"}]}')
    (foreign.parent / "notes.txt").write_text("somebody else's file")
    with running_isolator(flags, client) as isolator, caplog.at_level(logging.WARNING):
        isolator.recover([], []).get(WAIT)
        cleanups = isolator.orphan_cleanups().get(WAIT)
    assert sorted(name for _, name in ops(client)) == ["a", "b"]
    failures = [str(c.failure()) for c in cleanups if c.is_failed()]
    assert failures == [
        f"Failed to remove the checkpoint directory at '{foreign.parent}': Directory not empty"
    ]
    assert sorted(os.listdir(root)) == ["busy", "link", "lost+found", "stray-file"]
    assert (foreign.parent / "notes.txt").read_text() == "somebody else's file"
    assert (root / "lost+found" / "#123").exists()
    assert f"Skipping '{root}/stray-file' in the checkpoint directory: it is not a directory" in (
        caplog.text
    )
    assert f"Skipping '{root}/link' in the checkpoint directory: it is a symlink" in caplog.text


def test_an_oversized_checkpoint_is_refused_unread(
    flags: Flags, client: RecordingDriverClient
) -> None:
    path = write_checkpoint(flags, "huge", b"")
    with open(path, "wb") as file:
        file.truncate(2 << 20)  # sparse: 2 MiB the isolator must not read
    with running_isolator(flags, client) as isolator, pytest.raises(IsolatorError) as failure:
        isolator.recover([], []).get(WAIT)
    assert str(failure.value) == (
        "Failed to recover docker volumes for orphan container huge: Failed to read docker "
        f"volumes checkpoint file '{path}': it has 2097152 bytes, more than the 1048576 bytes "
        "a checkpoint may have"
    )
    assert client.calls == []


def test_a_fifo_in_place_of_a_checkpoint_does_not_hang_recovery(
    flags: Flags, client: RecordingDriverClient
) -> None:
    path = volumes_file(flags, "fifo")
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    with (
        running_isolator(flags, client) as isolator,
        pytest.raises(IsolatorError, match=r"it is not a regular file$"),
    ):
        isolator.recover([], []).get(WAIT)
