"""``python -m benchmarks.plugin_state``: the reference plugin's time per Mount+Unmount pair
with many volumes (issue 20 item 5: a state write must cost what the change costs, not what
the whole state costs).

It creates ``--volumes`` volumes, then times ``--pairs`` Mount+Unmount pairs of one of them
over the socket, each a durable state write. Run it with another checkout first on
``PYTHONPATH`` to measure that one's plugin (``VolumePlugin`` with ``root``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path

from isolator.plugin import VolumePlugin


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("plugin.moby.localhost", timeout=60)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.unix_path)
        self.sock = sock


def _call(connection: _Unix, method: str, body: object) -> None:
    connection.request("POST", f"/{method}", body=json.dumps(body).encode())
    response = connection.getresponse()
    response.read()
    assert response.status == 200, (method, response.status)


def measure(volumes: int, pairs: int, directory: str) -> list[float]:
    """Seconds per Mount+Unmount pair, one per pair."""
    workdir = Path(tempfile.mkdtemp(dir=directory, prefix="bps-"))
    try:
        plugin = VolumePlugin(socket_path=workdir / "p.sock", root=workdir / "root").start()
        try:
            connection = _Unix(plugin.socket_path)
            for index in range(volumes):
                _call(connection, "VolumeDriver.Create", {"Name": f"v{index}"})
            times = []
            for _ in range(pairs):
                started = time.perf_counter()
                _call(connection, "VolumeDriver.Mount", {"Name": "v0", "ID": "a" * 64})
                _call(connection, "VolumeDriver.Unmount", {"Name": "v0", "ID": "a" * 64})
                times.append(time.perf_counter() - started)
            connection.close()
            return times
        finally:
            plugin.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plugin_state")
    parser.add_argument("--volumes", type=int, action="append", help="repeatable")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--dir", default="/var/tmp", help="where the plugin keeps its state")
    args = parser.parse_args()
    for volumes in args.volumes or [1, 1000, 5000]:
        times = measure(volumes, args.pairs, args.dir)
        print(
            f"{volumes:>6} volumes: {statistics.median(times) * 1e3:8.2f} ms per Mount+Unmount "
            f"(median of {len(times)}; min {min(times) * 1e3:.2f}, max {max(times) * 1e3:.2f})"
        )


if __name__ == "__main__":
    main()
