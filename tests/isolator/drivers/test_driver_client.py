"""``DriverClient.path``: the default for clients that predate it, and the recording double
(the real clients' ``path`` is tested with them)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from actors import Future
from isolator.common.errors import DriverError
from isolator.drivers.base import DriverClient
from isolator.testing import DriverCall, RecordingDriverClient
from tests.support.waits import WAIT


class _Old(DriverClient):
    """A client written before ``path`` existed."""

    def mount(self, driver: str, name: str, options: Mapping[str, str]) -> Future[str]:
        return Future.ready("/x")

    def unmount(self, driver: str, name: str) -> Future[None]:
        return Future.ready(None)


def test_a_client_without_path_says_so_rather_than_guessing() -> None:
    with pytest.raises(NotImplementedError, match=r"^_Old does not implement path\(\)$"):
        _Old().path("d", "v")


def test_the_recording_client_answers_path_from_its_mounts_and_records_it(
    tmp_path: Path,
) -> None:
    client = RecordingDriverClient(tmp_path)
    assert client.path("d", "v").get(WAIT) == ""  # never mounted
    mountpoint = client.mount("d", "v", {}).get(WAIT).strip()
    assert client.path("d", "v").get(WAIT) == mountpoint == str(tmp_path / "d" / "v")
    client.script("path", "d", "v", "/elsewhere", DriverError("plugin gone"))
    assert client.path("d", "v").get(WAIT) == "/elsewhere"
    with pytest.raises(DriverError, match="plugin gone"):
        client.path("d", "v").get(WAIT)
    client.unmount("d", "v").get(WAIT)
    assert client.path("d", "v").get(WAIT) == ""  # counted back to 0
    ops = [call.op for call in client.calls]
    assert ops == ["path", "mount", "path", "path", "path", "unmount", "path"]
    assert all(isinstance(call, DriverCall) for call in client.calls)
