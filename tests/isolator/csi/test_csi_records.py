"""The CSI isolator's records on disk: what ``read_record`` refuses to read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from isolator.common.errors import CheckpointError
from isolator.csi.state import MAX_STATE_BYTES, read_record, write_record
from isolator.protos import ContainerID


def test_a_record_reads_back(tmp_path: Path) -> None:
    path = str(tmp_path / "r" / "state")
    write_record(path, ContainerID(value="c"))
    back = ContainerID()
    assert read_record(path, back)
    assert back.value == "c"


def test_a_fifo_in_place_of_a_record_is_refused_not_read_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "state"
    os.mkfifo(path)
    with pytest.raises(CheckpointError, match=r": not a regular file$"):
        read_record(str(path), ContainerID())


def test_a_record_file_over_the_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.write_bytes(b"\0" * (MAX_STATE_BYTES + 64))
    with pytest.raises(CheckpointError, match=r": larger than \d+ bytes$"):
        read_record(str(path), ContainerID())
