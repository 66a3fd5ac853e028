"""``read_small_file``: the one reader of the small files the isolator, its plugins and its
tools keep (checkpoints, CSI records, plugin state, the dvdcli ledger, plugin specs)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from isolator.common.fs import FileTooLargeError, NotRegularFileError, read_small_file


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_small_file(path, 10) == b"x" * 10


def test_a_file_over_the_limit_is_refused_with_its_size(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 11)
    with pytest.raises(FileTooLargeError, match=r"^larger than 10 bytes$") as raised:
        read_small_file(path, 10)
    assert (raised.value.size, raised.value.limit) == (11, 10)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    with pytest.raises(NotRegularFileError, match=r"^not a regular file$") as raised:
        read_small_file(path, 10)  # would block forever if it opened or read the FIFO
    assert stat.S_ISFIFO(raised.value.mode)


def test_a_directory_is_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(NotRegularFileError) as raised:
        read_small_file(tmp_path, 10)
    assert stat.S_ISDIR(raised.value.mode)


def test_a_link_is_never_followed_unless_asked(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"secret")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OSError, match="Too many levels of symbolic links") as raised:
        read_small_file(link, 10)
    assert raised.value.errno == errno.ELOOP
    assert read_small_file(link, 10, follow=True) == b"secret"


def test_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_small_file(tmp_path / "none", 10)
