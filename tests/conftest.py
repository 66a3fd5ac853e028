"""Fixtures shared by the whole suite: no actor, thread, mount or process may outlive a test."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest

from isolator import Flags
from isolator.testing import RecordingDriverClient


def _mounts() -> set[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        # Mount point and source, without the IDs that change when a mount is remade.
        return {" ".join(line.split()[4:5] + line.split()[-2:-1]) for line in mountinfo}


def _children() -> list[str]:
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if fields[1] == me and fields[0] != "Z":
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry}: {command}")
    return found


@pytest.fixture(scope="session", autouse=True)
def _host_stays_clean() -> Iterator[None]:
    """After the suite the host shows no new mount and no process the suite started."""
    before = _mounts()
    yield
    leaked = sorted(_mounts() - before)
    assert not leaked, f"mounts left on the host by the tests: {leaked}"
    assert not _children(), f"processes left running by the tests: {_children()}"


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    """Stop every actor a test started, so no actor thread leaks into the next test."""
    yield
    pykka.ActorRegistry.stop_all(timeout=10)
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
