"""The checkpoint: Mesos's format byte for byte, atomic and durable writes, Mesos's read rules."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from google.protobuf import json_format

from isolator.common.errors import CheckpointError
from isolator.docker.state import (
    VolumeKey,
    checkpoint_container,
    encode_volumes,
    read_volumes,
    write_volumes,
)
from isolator.messages import container_id
from isolator.protos import DockerVolume, DockerVolumes

MESOS_BYTES = b'{"volumes":[{"driver":"rexray","name":"vol1"},{"driver":"convoy","name":"vol2"}]}'
"""What a Mesos agent writes for two volumes (compact rapidjson, keys in std::map order)."""


def _entries(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


# -- VolumeKey ------------------------------------------------------------------------------


def test_volume_key_identity_is_driver_and_name() -> None:
    assert VolumeKey("d", "n") == VolumeKey(driver="d", name="n")
    assert VolumeKey("d", "n") != VolumeKey("d2", "n")
    assert VolumeKey("d", "n") != VolumeKey("d", "n2")
    assert len({VolumeKey("d", "n"), VolumeKey("d", "n"), VolumeKey("n", "d")}) == 2


# -- format ---------------------------------------------------------------------------------


def test_encoding_is_mesos_compact_json_in_order() -> None:
    volumes = [VolumeKey("rexray", "vol1"), VolumeKey("convoy", "vol2")]
    assert encode_volumes(volumes) == MESOS_BYTES


def test_no_volumes_encode_as_an_empty_object_like_mesos() -> None:
    # Mesos's JSON::protobuf leaves out a repeated field with no entries.
    assert encode_volumes([]) == b"{}"


def test_encoding_uses_the_field_names_of_docker_volumes() -> None:
    volumes = [VolumeKey("d1", "n1"), VolumeKey("d2", "n2")]
    message = DockerVolumes(volumes=[DockerVolume(driver=v.driver, name=v.name) for v in volumes])
    as_dict = json_format.MessageToDict(message, preserving_proto_field_name=True)
    expected = json.dumps(as_dict, separators=(",", ":"), ensure_ascii=False).encode()
    assert encode_volumes(volumes) == expected


def test_escaping_matches_rapidjson() -> None:
    volumes = [VolumeKey('a"b\\c/d', "x\ny\t\x01\x1fé✓")]
    expected = '{"volumes":[{"driver":"a\\"b\\\\c/d","name":"x\\ny\\t\\u0001\\u001Fé✓"}]}'
    data = encode_volumes(volumes)
    assert data == expected.encode()
    assert json.loads(data) == {"volumes": [{"driver": volumes[0].driver, "name": volumes[0].name}]}


def test_encoding_rejects_a_duplicate_volume() -> None:
    with pytest.raises(CheckpointError) as info:
        encode_volumes([VolumeKey("d", "n"), VolumeKey("e", "n"), VolumeKey("d", "n")])
    assert str(info.value) == "Duplicate docker volume with driver 'd' and name 'n'"


def test_encoding_rejects_text_that_is_not_unicode() -> None:
    with pytest.raises(CheckpointError, match=r"^Failed to encode docker volumes: "):
        encode_volumes([VolumeKey("d", "\udcff")])


# Checkpoint files as they exist on hosts today, byte for byte: each must read, and write
# back as the very same bytes (no file changes when this port takes over a directory).
WRITTEN_BY_MESOS = [
    MESOS_BYTES,
    b'{"volumes":[{"driver":"rexray","name":"db"},{"driver":"local","name":"logs"}]}',
    # rapidjson's escapes: short forms, upper-case hex, raw UTF-8, "/" left alone.
    '{"volumes":[{"driver":"a\\"b\\\\c/d","name":"x\\ny\\t\\u0001\\u001F\u00e9\u2713"}]}'.encode(),
]
WRITTEN_BY_THIS_PORT = [  # by the hand-written encoder this one replaced (issue 17)
    b"{}",
    b'{"volumes":[{"driver":"d","name":"n"}]}',
    b'{"volumes":[{"driver":"ctl","name":"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005'
    b"\\u0006\\u0007\\b\\t\\n\\u000B\\f\\r\\u000E\\u000F\\u0010\\u0011\\u0012\\u0013"
    b"\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001A\\u001B\\u001C\\u001D\\u001E"
    b'\\u001F"}]}',
    b'{"volumes":[{"driver":"back\\\\u001fslash","name":"\\\\\\u001F\\\\\\\\\\u000B"}]}',
    b'{"volumes":[{"driver":"","name":""},{"driver":"uni","name":"\xe6\x97\xa5\xe6\x9c\xac'
    b'\xe8\xaa\x9e \xe2\x80\xa8\xe2\x80\xa9 \x7f \xf0\x9f\x98\x80"}]}',
    b'{"volumes":[{"driver":"driver-with-a-long-name","name":"volume-0"},'
    b'{"driver":"driver-with-a-long-name","name":"volume-1"}]}',
]


@pytest.mark.parametrize("content", WRITTEN_BY_MESOS + WRITTEN_BY_THIS_PORT)
def test_todays_files_read_and_write_back_as_the_same_bytes(tmp_path: Path, content: bytes) -> None:
    original, rewritten = tmp_path / "original", tmp_path / "rewritten"
    original.write_bytes(content)
    volumes = read_volumes(original)
    assert volumes is not None
    as_json = [{"driver": v.driver, "name": v.name} for v in volumes]
    assert as_json == json.loads(content).get("volumes", [])
    write_volumes(rewritten, volumes)
    assert rewritten.read_bytes() == content


def test_a_backslash_before_a_literal_u_is_not_taken_for_an_escape() -> None:
    # The text \u001f (backslash, "u001f") is no control character: it stays lower case.
    assert encode_volumes([VolumeKey("d", "\\u001f\\\\u000b")]) == (
        b'{"volumes":[{"driver":"d","name":"\\\\u001f\\\\\\\\u000b"}]}'
    )


# -- write ----------------------------------------------------------------------------------


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "cid" / "volumes"
    volumes = [VolumeKey("d1", "n1"), VolumeKey("d2", "n2"), VolumeKey("d1", "n2")]
    write_volumes(path, volumes)
    assert path.read_bytes() == encode_volumes(volumes)
    assert read_volumes(path) == volumes


def test_write_accepts_any_iterable(tmp_path: Path) -> None:
    path = tmp_path / "volumes"
    write_volumes(str(path), (v for v in [VolumeKey("d", "n")]))
    assert path.read_bytes() == b'{"volumes":[{"driver":"d","name":"n"}]}'


def test_write_replaces_the_old_content(tmp_path: Path) -> None:
    path = tmp_path / "volumes"
    write_volumes(path, [VolumeKey("d", "old")])
    write_volumes(path, [VolumeKey("d", "new")])
    assert read_volumes(path) == [VolumeKey("d", "new")]
    assert _entries(tmp_path) == {"volumes"}


def test_write_creates_missing_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "volumes"
    write_volumes(path, [VolumeKey("d", "n")])
    assert read_volumes(path) == [VolumeKey("d", "n")]
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o755 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_write_with_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_volumes("volumes", [VolumeKey("d", "n")])
    assert read_volumes("volumes") == [VolumeKey("d", "n")]
    assert _entries(tmp_path) == {"volumes"}


def test_write_fsyncs_file_before_rename_and_directory_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, int]] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        events.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def rename(src: str, dst: str) -> None:
        events.append(("rename", os.stat(src).st_ino))
        real_rename(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    path = tmp_path / "volumes"
    write_volumes(path, [VolumeKey("d", "n")])

    file_inode = path.stat().st_ino
    directory_inode = tmp_path.stat().st_ino
    assert events == [("fsync", file_inode), ("rename", file_inode), ("fsync", directory_inode)]


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The inode of every file or directory fsynced from now on, in order."""
    inodes: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        inodes.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return inodes


def test_write_fsyncs_the_parent_of_each_new_directory(tmp_path: Path, synced: list[int]) -> None:
    path = tmp_path / "a" / "b" / "volumes"
    write_volumes(path, [VolumeKey("d", "n")])

    inode = {
        name: p.stat().st_ino
        for name, p in [
            ("tmp", tmp_path),
            ("a", tmp_path / "a"),
            ("b", tmp_path / "a" / "b"),
            ("file", path),
        ]
    }
    assert synced == [inode["tmp"], inode["a"], inode["file"], inode["b"]]


def test_a_checkpoint_fsyncs_the_root_once_it_made_the_container_directory(
    tmp_path: Path, synced: list[int]
) -> None:
    """Else a power loss can take the new directory, and the checkpoint in it, along."""
    checkpoint_container(str(tmp_path), container_id("c"), [VolumeKey("d", "n")])

    directory = tmp_path / "c"
    inodes = [p.stat().st_ino for p in (tmp_path, directory / "volumes", directory)]
    assert synced == inodes


def test_write_survives_short_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write

    def one_byte_at_a_time(fd: int, data: bytes | memoryview) -> int:
        return real_write(fd, bytes(data[:1]))

    monkeypatch.setattr(os, "write", one_byte_at_a_time)
    path = tmp_path / "volumes"
    write_volumes(path, [VolumeKey("rexray", "vol1"), VolumeKey("convoy", "vol2")])
    assert path.read_bytes() == MESOS_BYTES


def test_a_failed_write_keeps_the_old_content_and_removes_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "volumes"
    write_volumes(path, [VolumeKey("d", "old")])
    real_write = os.write

    def write_half_then_fail(fd: int, data: bytes | memoryview) -> int:
        if len(data) > 1:
            return real_write(fd, bytes(data[:1]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write_half_then_fail)
    with pytest.raises(CheckpointError) as info:
        write_volumes(path, [VolumeKey("d", "new")])

    message = str(info.value)
    temp = message.split("'")[1]
    assert message == f"Failed to write temporary file '{temp}': No space left on device"
    assert os.path.dirname(temp) == str(tmp_path)
    assert not os.path.exists(temp)
    assert read_volumes(path) == [VolumeKey("d", "old")]
    assert _entries(tmp_path) == {"volumes"}


def test_a_failed_fsync_is_a_write_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "volumes"
    write_volumes(path, [VolumeKey("d", "old")])

    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", fsync)
    eio = re.escape(os.strerror(errno.EIO))
    with pytest.raises(CheckpointError, match=rf"^Failed to write temporary file '.*': {eio}$"):
        write_volumes(path, [VolumeKey("d", "new")])
    assert read_volumes(path) == [VolumeKey("d", "old")]
    assert _entries(tmp_path) == {"volumes"}


def test_a_failed_rename_keeps_the_old_content_and_removes_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "volumes"
    write_volumes(path, [VolumeKey("d", "old")])

    def rename(src: str, dst: str) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(CheckpointError) as info:
        write_volumes(path, [VolumeKey("d", "new")])

    message = str(info.value)
    temp = message.split("'")[1]
    assert message == f"Failed to rename '{temp}' to '{path}': Invalid cross-device link"
    assert os.path.dirname(temp) == str(tmp_path)
    assert read_volumes(path) == [VolumeKey("d", "old")]
    assert _entries(tmp_path) == {"volumes"}


def test_a_failed_directory_fsync_after_the_rename_is_a_rename_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "volumes"
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    eio = re.escape(os.strerror(errno.EIO))
    with pytest.raises(CheckpointError, match=rf"^Failed to rename '.*' to '.*/volumes': {eio}$"):
        write_volumes(path, [VolumeKey("d", "new")])
    # The rename itself happened; only its durability is in doubt.
    assert read_volumes(path) == [VolumeKey("d", "new")]
    assert _entries(tmp_path) == {"volumes"}


def test_an_unexpected_exception_also_removes_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Interrupted(BaseException):
        pass

    def write(fd: int, data: bytes | memoryview) -> int:
        raise Interrupted

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(Interrupted):
        write_volumes(tmp_path / "volumes", [VolumeKey("d", "n")])
    assert _entries(tmp_path) == set()


def test_failure_to_create_the_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    base = tmp_path / "file" / "sub"
    with pytest.raises(CheckpointError) as info:
        write_volumes(base / "volumes", [VolumeKey("d", "n")])
    assert str(info.value) == f"Failed to create directory '{base}': Not a directory"


def test_failure_to_create_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def mkstemp(**_: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    with pytest.raises(CheckpointError) as info:
        write_volumes(tmp_path / "volumes", [VolumeKey("d", "n")])
    assert str(info.value) == "Failed to create temporary file: Permission denied"
    assert _entries(tmp_path) == set()


def test_failure_to_create_the_temporary_file_when_the_directory_is_a_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(CheckpointError) as info:
        write_volumes(tmp_path / "file" / "volumes", [VolumeKey("d", "n")])
    assert str(info.value) == "Failed to create temporary file: Not a directory"


def test_a_duplicate_is_rejected_before_touching_the_disk(tmp_path: Path) -> None:
    path = tmp_path / "c" / "volumes"
    with pytest.raises(CheckpointError, match=r"^Duplicate docker volume with driver 'd'"):
        write_volumes(path, [VolumeKey("d", "n"), VolumeKey("d", "n")])
    assert _entries(tmp_path) == set()


# -- read -----------------------------------------------------------------------------------


def test_reads_a_file_written_by_a_mesos_agent(tmp_path: Path) -> None:
    path = tmp_path / "volumes"
    path.write_bytes(MESOS_BYTES)
    assert read_volumes(path) == [VolumeKey("rexray", "vol1"), VolumeKey("convoy", "vol2")]


def test_reads_mesos_escapes_and_raw_utf8(tmp_path: Path) -> None:
    path = tmp_path / "volumes"
    path.write_bytes('{"volumes":[{"driver":"a\\"b","name":"x\\u001Fé"}]}'.encode())
    assert read_volumes(path) == [VolumeKey('a"b', "x\x1fé")]


def test_reads_pretty_printed_json_and_any_key_order(tmp_path: Path) -> None:
    path = tmp_path / "volumes"
    path.write_text('{\n  "volumes": [ {"name": "n", "driver": "d"} ]\n}\n')
    assert read_volumes(path) == [VolumeKey("d", "n")]


def test_missing_file_reads_as_none(tmp_path: Path) -> None:
    assert read_volumes(tmp_path / "volumes") is None
    assert read_volumes(tmp_path / "no-such-container" / "volumes") is None


def test_empty_file_reads_as_no_volumes(tmp_path: Path) -> None:
    path = tmp_path / "volumes"
    path.write_bytes(b"")
    assert read_volumes(path) == []


@pytest.mark.parametrize("content", [b"{}", b'{"volumes":[]}', b'{"volumes":null}'])
def test_no_volumes_read_as_an_empty_list(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "volumes"
    path.write_bytes(content)
    assert read_volumes(path) == []


def test_read_error(tmp_path: Path) -> None:
    path = tmp_path / "volumes"
    path.mkdir()
    with pytest.raises(CheckpointError) as info:
        read_volumes(path)
    assert str(info.value) == (
        f"Failed to read docker volumes checkpoint file '{path}': Is a directory"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"{",
            "JSON parse failed: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)",
        ),
        (b"\n", "JSON parse failed: Expecting value: line 2 column 1 (char 1)"),
        (b'{"volumes":[]} x', "JSON parse failed: Extra data: line 1 column 16 (char 15)"),
        (b"[]", "JSON parse failed: Expecting a JSON object, found an array"),
        (b'"volumes"', "JSON parse failed: Expecting a JSON object, found a string"),
        (b"null", "JSON parse failed: Expecting a JSON object, found null"),
        (b"1", "JSON parse failed: Expecting a JSON object, found a number"),
        (b'{"volumes":NaN}', "JSON parse failed: 'NaN' is not valid JSON"),
        (b'{"volumes":[],"volumes":[]}', "JSON parse failed: duplicate key 'volumes'"),
        (b"\xff{}", None),
    ],
)
def test_invalid_json(tmp_path: Path, content: bytes, message: str | None) -> None:
    path = tmp_path / "volumes"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        read_volumes(path)
    if message is None:
        assert str(info.value).startswith("JSON parse failed: ")
    else:
        assert str(info.value) == message


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"volumes": [{"name": "n"}]},
            "Protobuf parse failed: Missing required fields: volumes[0].driver",
        ),
        (
            {"volumes": [{"driver": "d", "name": "n"}, {}]},
            "Protobuf parse failed: Missing required fields: volumes[1].driver, volumes[1].name",
        ),
        (
            {"volumes": [{"driver": None, "name": "n"}]},
            "Protobuf parse failed: Missing required fields: volumes[0].driver",
        ),
        (
            {"volumes": {"driver": "d", "name": "n"}},
            "Protobuf parse failed: Expecting a JSON array for 'DockerVolumes.volumes', "
            "found an object",
        ),
        (
            {"volumes": [["d", "n"]]},
            "Protobuf parse failed: Expecting a JSON object for 'DockerVolumes.volumes[0]', "
            "found an array",
        ),
        (
            {"volumes": ["d"]},
            "Protobuf parse failed: Expecting a JSON object for 'DockerVolumes.volumes[0]', "
            "found a string",
        ),
        ({"volumes": [None]}, None),
        ({"volumes": [{"driver": 1, "name": "n"}]}, None),
        ({"volumes": [{"driver": "d", "name": True}]}, None),
    ],
)
def test_invalid_docker_volumes(tmp_path: Path, document: object, message: str | None) -> None:
    path = tmp_path / "volumes"
    path.write_text(json.dumps(document))
    with pytest.raises(CheckpointError) as info:
        read_volumes(path)
    if message is None:
        assert str(info.value).startswith("Protobuf parse failed: ")
    else:
        assert str(info.value) == message


def test_duplicate_volume_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "volumes"
    path.write_bytes(
        b'{"volumes":[{"driver":"d","name":"n"},{"driver":"d","name":"m"},'
        b'{"driver":"d","name":"n"}]}'
    )
    with pytest.raises(CheckpointError) as info:
        read_volumes(path)
    assert str(info.value) == "Duplicate docker volume with driver 'd' and name 'n'"


def test_same_name_with_different_drivers_is_not_a_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "volumes"
    path.write_bytes(b'{"volumes":[{"driver":"a","name":"n"},{"driver":"b","name":"n"}]}')
    assert read_volumes(path) == [VolumeKey("a", "n"), VolumeKey("b", "n")]


def test_unknown_fields_are_ignored_as_mesos_does(tmp_path: Path) -> None:
    path = tmp_path / "volumes"
    path.write_bytes(b'{"volumes":[{"driver":"d","name":"n","added_later":1}],"boot_id":"x"}')
    assert read_volumes(path) == [VolumeKey("d", "n")]


def test_a_writer_killed_at_any_moment_leaves_old_or_new_content(tmp_path: Path) -> None:
    # A real crash: a child rewrites the checkpoint in a loop and is SIGKILLed mid-way.
    path = tmp_path / "c" / "volumes"
    small = [VolumeKey("d", "n")]
    large = [VolumeKey("driver-with-a-long-name", f"volume-{i}") for i in range(200)]
    write_volumes(path, small)
    script = (
        "import sys\n"
        "from isolator.docker.state import VolumeKey, write_volumes\n"
        f"small = [VolumeKey('d', 'n')]\n"
        f"large = [VolumeKey('driver-with-a-long-name', f'volume-{{i}}') for i in range(200)]\n"
        "for n in range(100000):\n"
        f"    write_volumes({str(path)!r}, large if n % 2 else small)\n"
        "    if n == 10:\n"
        "        print('writing', flush=True)\n"
    )
    # A plain truncate-and-write is caught torn in about one kill in five; 20 kills.
    for _ in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        assert child.stdout is not None
        assert child.stdout.readline() == b"writing\n"  # it is in the middle of its loop
        child.kill()
        child.wait(timeout=10)
        child.stdout.close()
        assert read_volumes(path) in (small, large)
