"""The fixtures the whole suite shares; no actor, thread, mount or process may outlive a test.

Waits and helpers live in ``tests.support``, imported by name where they are used."""

from __future__ import annotations

import glob
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest

import actors
from isolator import Flags
from isolator.testing import RecordingDriverClient
from tests.support.hygiene import child_processes, mount_table
from tests.support.waits import WAIT


@pytest.fixture(scope="session", autouse=True)
def _host_stays_clean() -> Iterator[None]:
    """After the suite the host shows no new mount and no process the suite started."""
    before = mount_table()
    yield
    leaked = sorted(set(mount_table()) ^ set(before))
    assert not leaked, f"mounts the tests added or removed on the host: {leaked}"
    left = child_processes(zombies=False)
    assert not left, f"processes left running by the tests: {left}"


@pytest.fixture
def host_unchanged() -> Iterator[None]:
    """The test leaves the host's mount table as it found it, no process behind, and no
    launcher's bundle in the temporary directory."""
    before, bundles = mount_table(), _launcher_bundles()
    yield
    assert mount_table() == before, "the host's mount table changed"
    assert not child_processes(), f"processes left by the test: {child_processes()}"
    assert _launcher_bundles() <= bundles, f"bundles left: {_launcher_bundles() - bundles}"


def _launcher_bundles() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "isolator-bundle-*")))


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    """Stop every actor a test started; none may be left, nor a thread of its own.

    ``actors.Actor``s hold no thread (the runtime's workers are daemons, shared by all),
    so a leaked one shows up in the runtime's count of actors not yet torn down; a plain
    pykka actor still shows up as a thread.
    """
    yield
    gone = actors.shutdown(timeout=WAIT)
    assert gone, f"actors never torn down after the test: {actors.statistics()}"
    assert pykka.ActorRegistry.get_all() == []
    leftover = [
        t.name
        for t in threading.enumerate()
        if not t.daemon and t.is_alive() and t is not threading.main_thread()
    ]
    assert not leftover, f"threads still running after the test: {leftover}"


@pytest.fixture
def flags(tmp_path: Path) -> Flags:
    """Isolator flags whose checkpoints live in the test's own directory."""
    return Flags(docker_volume_checkpoint_dir=str(tmp_path / "checkpoint"))


@pytest.fixture
def client(tmp_path: Path) -> RecordingDriverClient:
    """A recording driver whose mount points are made in the test's own directory."""
    return RecordingDriverClient(str(tmp_path / "volumes"))
