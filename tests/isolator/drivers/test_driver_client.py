"""``DriverClient.path``: the default for clients that predate it, and the recording double."""

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


def test_a_client_without_path_fails_it_rather_than_guessing() -> None:
    with pytest.raises(DriverError, match=r"^_Old cannot ask a volume's path$"):
        _Old().path("d", "v").get(WAIT)


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
    ops = [(call.op, call.options) for call in client.calls]
    assert ops == [("path", None), ("mount", {}), ("path", None), ("path", None), ("path", None)]
    assert all(isinstance(call, DriverCall) for call in client.calls)
