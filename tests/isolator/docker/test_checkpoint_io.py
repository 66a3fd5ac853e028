"""Checkpoint I/O off the isolator actor's thread (issue 20): the order Mesos keeps holds
(durable checkpoint before any mount, removal only after the unmounts), operations on a
checkpoint whose I/O is in flight wait for it, and independent containers' I/O overlaps."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors import Future
from isolator import DockerVolumeIsolator, Flags, IsolatorError
from isolator.common.filesystems import memory_backed
from isolator.docker import actor, checkpoint_io
from isolator.docker.checkpoint_io import read_all_checkpoints
from isolator.docker.state import checkpoint_container, remove_checkpoint
from isolator.launch import launch_info
from isolator.messages import container_config, container_id, docker_volume
from isolator.protos import ContainerConfig
from isolator.testing import RecordingDriverClient
from tests.support.isolators import running_isolator, sandbox, volumes_file, write_checkpoint
from tests.support.waits import NEGATIVE_WAIT, WAIT


@pytest.fixture(params=["disk", "memory"])
def flags(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flags]:
    """Checkpoints on a disk (I/O on the executor's lanes) and on a tmpfs (after the turn,
    on the thread that ran it): the order and the waiting hold on both."""
    if request.param == "disk":
        assert not memory_backed(str(tmp_path)), "the test's directory is on a tmpfs"
        yield Flags(docker_volume_checkpoint_dir=str(tmp_path / "checkpoint"))
        return
    if not memory_backed("/dev/shm"):
        pytest.skip("/dev/shm is not a tmpfs here")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as memory:
        yield Flags(docker_volume_checkpoint_dir=f"{memory}/checkpoint")


@pytest.fixture
def disk_flags(tmp_path: Path) -> Flags:
    return Flags(docker_volume_checkpoint_dir=str(tmp_path / "checkpoint"))


def ops(client: RecordingDriverClient) -> list[tuple[str, str]]:
    return [(call.op, call.name) for call in client.calls]


def config_for(tmp_path: Path, name: str, *volumes: str) -> ContainerConfig:
    return container_config(
        sandbox(tmp_path, f"sandbox-{name}"), [docker_volume("d", v, v) for v in volumes]
    )


def completes_soon(future: Future[Any]) -> bool:
    done = threading.Event()
    future.on_any(lambda _: done.set())
    return done.wait(NEGATIVE_WAIT)


class Held:
    """Wraps one of the actor's blocking steps: each call waits for ``release``."""

    def __init__(self, step: Callable[..., Any]) -> None:
        self._step = step
        self.entered = threading.Semaphore(0)
        self._go = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.release()
        if not self._go.wait(WAIT):
            raise TimeoutError("the test never released the step")
        return self._step(*args, **kwargs)

    def wait_entered(self) -> None:
        assert self.entered.acquire(timeout=WAIT), "the step never started"

    def release(self) -> None:
        self._go.set()


@pytest.fixture
def held_write(monkeypatch: pytest.MonkeyPatch) -> Iterator[Held]:
    held = Held(checkpoint_container)
    monkeypatch.setattr(checkpoint_io, "checkpoint_container", held)
    yield held
    held.release()


@pytest.fixture
def held_removal(monkeypatch: pytest.MonkeyPatch) -> Iterator[Held]:
    held = Held(remove_checkpoint)
    monkeypatch.setattr(actor, "remove_checkpoint", held)
    yield held
    held.release()


def test_no_mount_is_sent_before_the_checkpoint_is_written_and_the_actor_stays_free(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient, held_write: Held
) -> None:
    cid = container_id("c")
    with running_isolator(flags, client) as isolator:
        isolator.recover([], []).get(WAIT)
        preparing = isolator.prepare(cid, config_for(tmp_path, "c", "a"))
        held_write.wait_entered()
        # The actor answers while the write is blocked: it is not waiting on it.
        other = isolator.prepare(container_id("other"), config_for(tmp_path, "o"))
        assert other.get(WAIT) is None
        assert not client.calls
        assert not preparing.is_ready()
        held_write.release()
        preparing.get(WAIT)
        assert ops(client) == [("mount", "a")]
        assert volumes_file(flags, "c").exists()


def test_a_cleanup_during_the_checkpoint_write_waits_and_unmounts_after_the_mount(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient, held_write: Held
) -> None:
    cid = container_id("c")
    with running_isolator(flags, client) as isolator:
        preparing = isolator.prepare(cid, config_for(tmp_path, "c", "a"))
        held_write.wait_entered()
        cleaning = isolator.cleanup(cid)
        assert not completes_soon(cleaning)
        assert not client.calls
        held_write.release()
        preparing.get(WAIT)
        cleaning.get(WAIT)
        assert ops(client) == [("mount", "a"), ("unmount", "a")]
        assert not volumes_file(flags, "c").parent.exists()


def test_a_failed_write_fails_prepare_and_a_waiting_cleanup_finds_nothing(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient, held_write: Held
) -> None:
    cid = container_id("c")
    # A file where the container's directory goes: the write fails.
    Path(flags.docker_volume_checkpoint_dir).mkdir(parents=True, exist_ok=True)
    (Path(flags.docker_volume_checkpoint_dir) / "c").write_bytes(b"")
    with running_isolator(flags, client) as isolator:
        preparing = isolator.prepare(cid, config_for(tmp_path, "c", "a"))
        held_write.wait_entered()
        cleaning = isolator.cleanup(cid)
        held_write.release()
        with pytest.raises(IsolatorError, match="Failed to create the container directory"):
            preparing.get(WAIT)
        assert cleaning.get(WAIT) is None
        assert isolator.usage().get(WAIT).containers == {}
    assert not client.calls


def test_a_second_prepare_during_the_write_is_refused_as_busy(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient, held_write: Held
) -> None:
    cid = container_id("c")
    with running_isolator(flags, client) as isolator:
        first = isolator.prepare(cid, config_for(tmp_path, "c", "a"))
        held_write.wait_entered()
        second = isolator.prepare(cid, config_for(tmp_path, "c2", "b"))
        held_write.release()
        first.get(WAIT)
        with pytest.raises(IsolatorError, match="is already prepared and not cleaned up"):
            second.get(WAIT)
    assert ops(client) == [("mount", "a")]


def test_the_checkpoint_is_removed_only_after_the_unmount_and_the_id_stays_busy(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient, held_removal: Held
) -> None:
    cid = container_id("c")
    client.hold("unmount", "d", "a")
    with running_isolator(flags, client) as isolator:
        isolator.prepare(cid, config_for(tmp_path, "c", "a")).get(WAIT)
        cleaning = isolator.cleanup(cid)
        client.wait_for_calls(2)
        assert not held_removal.entered.acquire(timeout=NEGATIVE_WAIT)  # unmount first
        assert volumes_file(flags, "c").exists()
        client.release("unmount", "d", "a", None)
        held_removal.wait_entered()
        # Prepare of an ID whose removal is in flight: still being cleaned up.
        with pytest.raises(IsolatorError, match="is still being cleaned up"):
            isolator.prepare(cid, config_for(tmp_path, "c2", "a")).get(WAIT)
        held_removal.release()
        cleaning.get(WAIT)
        assert not volumes_file(flags, "c").parent.exists()
        isolator.prepare(cid, config_for(tmp_path, "c3", "a")).get(WAIT)
    assert ops(client) == [("mount", "a"), ("unmount", "a"), ("mount", "a")]


def test_independent_containers_write_their_checkpoints_at_the_same_time_on_a_disk(
    tmp_path: Path,
    disk_flags: Flags,
    client: RecordingDriverClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flags = disk_flags
    both_in = threading.Barrier(2, timeout=WAIT)
    write = checkpoint_container

    def meeting(*args: Any) -> None:
        both_in.wait()  # breaks (and fails the prepare) unless the other write is in too
        write(*args)

    monkeypatch.setattr(checkpoint_io, "checkpoint_container", meeting)
    with running_isolator(flags, client) as isolator:
        a = isolator.prepare(container_id("a"), config_for(tmp_path, "a", "va"))
        b = isolator.prepare(container_id("b"), config_for(tmp_path, "b", "vb"))
        a.get(WAIT)
        b.get(WAIT)
    assert sorted(ops(client)) == [("mount", "va"), ("mount", "vb")]


def test_operations_during_recovery_wait_for_it(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_checkpoint(flags, "orphan", b'{"volumes":[{"driver":"d","name":"a"}]}')
    held = Held(read_all_checkpoints)
    monkeypatch.setattr(actor, "read_all_checkpoints", held)
    try:
        with running_isolator(flags, client) as isolator:
            recovering = isolator.recover([], [])
            held.wait_entered()
            # A new container on the orphan's volume: it must count after the orphan's
            # cleanup, as if recovery had finished first.
            preparing = isolator.prepare(container_id("new"), config_for(tmp_path, "n", "a"))
            usage = isolator.usage()
            second = isolator.recover([], [])
            assert not completes_soon(preparing)
            assert not usage.is_ready()
            assert not client.calls
            held.release()
            recovering.get(WAIT)
            preparing.get(WAIT)
            # In arrival order once recovery is recorded: the orphan's cleanup has started,
            # the new container's checkpoint is being written.
            assert usage.get(WAIT).phases == {"orphan": "cleaning"}
            with pytest.raises(IsolatorError, match="has already recovered"):
                second.get(WAIT)
            for cleanup in isolator.orphan_cleanups().get(WAIT):
                cleanup.get(WAIT)
    finally:
        held.release()
    assert ops(client) == [("unmount", "a"), ("mount", "a")]


def test_forget_waits_for_a_write_in_flight(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient, held_write: Held
) -> None:
    cid = container_id("c")
    with running_isolator(flags, client) as isolator:
        preparing = isolator.prepare(cid, config_for(tmp_path, "c", "a"))
        held_write.wait_entered()
        forgetting = isolator.forget(cid)
        held_write.release()
        preparing.get(WAIT)
        forgetting.get(WAIT)
        assert isolator.usage().get(WAIT).containers == {}
        assert not volumes_file(flags, "c").parent.exists()
    assert ops(client) == [("mount", "a")]


def test_stopping_with_a_write_in_flight_leaves_the_checkpoint(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient, held_write: Held
) -> None:
    isolator = DockerVolumeIsolator.create(flags, client)
    preparing = isolator.prepare(container_id("c"), config_for(tmp_path, "c", "a"))
    held_write.wait_entered()
    isolator.stop()
    held_write.release()
    with pytest.raises(IsolatorError):
        preparing.get(WAIT)
    assert not client.calls


def test_on_a_tmpfs_every_write_runs_after_the_turn_on_the_thread_that_ran_it(
    tmp_path: Path, client: RecordingDriverClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not memory_backed("/dev/shm"):
        pytest.skip("/dev/shm is not a tmpfs here")
    seen: list[str] = []
    write = checkpoint_container

    def recorded(*args: Any) -> None:
        seen.append(threading.current_thread().name)
        write(*args)

    monkeypatch.setattr(checkpoint_io, "checkpoint_container", recorded)
    with tempfile.TemporaryDirectory(dir="/dev/shm") as memory:
        flags = Flags(docker_volume_checkpoint_dir=f"{memory}/checkpoint")
        with running_isolator(flags, client) as isolator:
            # Started in one turn: on a disk the second would go to the executor's lanes.
            prepares = [
                isolator.prepare(container_id(name), config_for(tmp_path, name, f"v{name}"))
                for name in ("a", "b", "c")
            ]
            for prepare in prepares:
                prepare.get(WAIT)
    assert len(seen) == 3
    assert not [name for name in seen if name.startswith("actors-blocking-")], seen


def test_the_chown_of_a_volume_root_runs_off_the_isolator_thread(
    tmp_path: Path, client: RecordingDriverClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The user's lookup (NSS, maybe LDAP) and a chown on a remote volume's root may block.
    threads: list[str] = []
    monkeypatch.setattr(
        launch_info, "chown", lambda user, source: threads.append(threading.current_thread().name)
    )
    flags = Flags(
        docker_volume_checkpoint_dir=str(tmp_path / "checkpoint"), docker_volume_chown=True
    )
    config = container_config(
        sandbox(tmp_path, "s"), [docker_volume("d", "v", "data")], user="nobody"
    )
    with running_isolator(flags, client) as isolator:
        info = isolator.prepare(container_id("c"), config).get(WAIT)
    assert info is not None
    assert len(info.mounts) == 1
    assert len(threads) == 1
    assert threads[0].startswith("actors-blocking-"), threads
