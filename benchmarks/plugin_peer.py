"""The reference plugin as a real process on a unix socket, and the bare client P5 times
the isolator against: the same HTTP calls with sync httpx, in a plain loop.

A bare round trip is what the isolator's prepare+cleanup does on the wire and on disk, in
the same order, with nothing else: the checkpoint written as ``workload.bare_prepare``
writes it, ``VolumeDriver.Get`` (``Create`` only if Get says the volume is missing),
``VolumeDriver.Mount`` with the mount ID, the mount point's existence checked; then
``VolumeDriver.Unmount`` and the checkpoint removed. ``Plugin.Activate`` is sent once per
client, as the isolator's client does.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from benchmarks.harness import WAIT
from isolator.common.fs import remove_owned_directory, write_atomically
from isolator.docker.state import VolumeKey, encode_volumes
from isolator.drivers.transport import ACCEPT, UNIX_HOST

__all__ = ["BareClient", "plugin_serving"]

MOUNT_ID = "bench-agent"


@contextmanager
def plugin_serving(directory: str, driver: str) -> Iterator[str]:
    """``isolator-volume-plugin`` serving ``<directory>/<driver>.sock`` (its root beside it);
    the socket directory, for ``DockerPluginClient(socket_dir=...)``. Stopped at the end."""
    sockets = os.path.join(directory, "sockets")
    os.makedirs(sockets, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "isolator.plugin",
        "--socket",
        os.path.join(sockets, f"{driver}.sock"),
        "--root",
        os.path.join(directory, "plugin"),
        "--log-level",
        "WARNING",
    ]
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_serving(proc, os.path.join(sockets, f"{driver}.sock"))
        yield sockets
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def _wait_serving(proc: subprocess.Popen[bytes], socket_path: str) -> None:
    deadline = time.monotonic() + WAIT
    while not os.path.exists(socket_path):
        if proc.poll() is not None or time.monotonic() > deadline:
            assert proc.stderr is not None
            raise RuntimeError(f"the plugin did not start: {proc.stderr.read()!r}")
        select.select([], [], [], 0.01)
    # The socket file appears at bind; connect until it accepts.
    with httpx.Client(transport=httpx.HTTPTransport(uds=socket_path)) as probe:
        while True:
            try:
                probe.post(f"http://{UNIX_HOST}/Plugin.Activate", content=b"")
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                select.select([], [], [], 0.01)


class BareClient:
    """One keep-alive connection to the plugin, sync httpx, no retries, no checks."""

    def __init__(self, socket_dir: str, driver: str) -> None:
        self._http = httpx.Client(
            transport=httpx.HTTPTransport(uds=os.path.join(socket_dir, f"{driver}.sock")),
            base_url=f"http://{UNIX_HOST}",
            headers={"Accept": ACCEPT, "User-Agent": "bench"},
            trust_env=False,
        )
        self._post("Plugin.Activate", None)

    def close(self) -> None:
        self._http.close()

    def _post(self, method: str, body: dict[str, Any] | None) -> dict[str, Any]:
        content = b"" if body is None else (json.dumps(body, separators=(",", ":")) + "\n").encode()
        answer: dict[str, Any] = self._http.post("/" + method, content=content).json()
        if answer.get("Err"):
            raise RuntimeError(f"{method}: {answer['Err']}")
        return answer

    def get(self, name: str) -> None:
        """One Get on an existing volume (the transport figure's unit)."""
        self._post("VolumeDriver.Get", {"Name": name})

    def mount(self, name: str) -> str:
        try:
            self._post("VolumeDriver.Get", {"Name": name})
        except RuntimeError:
            self._post("VolumeDriver.Create", {"Name": name, "Opts": {}})
        answer = self._post("VolumeDriver.Mount", {"Name": name, "ID": MOUNT_ID})
        mountpoint: str = answer["Mountpoint"]
        if not os.path.exists(mountpoint):
            raise RuntimeError(f"no mount point {mountpoint}")
        return mountpoint

    def unmount(self, name: str) -> None:
        self._post("VolumeDriver.Unmount", {"Name": name, "ID": MOUNT_ID})

    def round_trip(self, root: str, value: str, volume: VolumeKey) -> None:
        """A bare prepare+cleanup: checkpoint, mount; unmount, checkpoint removed."""
        write_atomically(f"{root}/{value}/volumes", encode_volumes([volume]))
        self.mount(volume.name)
        self.unmount(volume.name)
        remove_owned_directory(f"{root}/{value}", files=("volumes",))
