"""The one libc loader and the one pidfd wrapper."""

from __future__ import annotations

import ctypes
import errno
import os
import select
import subprocess
import sys

import pytest

from isolator.common import linux
from tests.support.waits import WAIT


def test_libc_is_loaded_once_with_errno_kept() -> None:
    assert linux.libc() is linux.libc()
    assert linux.libc().unshare(-1) == -1  # no such flag set: EINVAL, nothing unshared
    assert ctypes.get_errno() == errno.EINVAL


def test_a_pidfd_becomes_readable_when_its_process_exits() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        pidfd = linux.open_pidfd(child.pid)
        assert pidfd is not None
        try:
            assert select.select([pidfd], [], [], 0)[0] == []
            assert child.stdin is not None
            child.stdin.close()  # it exits
            assert select.select([pidfd], [], [], WAIT)[0] == [pidfd]
        finally:
            os.close(pidfd)
    finally:
        child.kill()
        child.wait(WAIT)
    assert linux.open_pidfd(child.pid) is None  # reaped: no such process


def test_no_pidfd_open_is_an_error_not_a_missing_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "pidfd_open")
    with pytest.raises(OSError, match=r"no os\.pidfd_open") as info:
        linux.open_pidfd(os.getpid())
    assert info.value.errno == errno.ENOSYS
