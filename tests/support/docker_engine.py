"""Docker's engine as a volume plugin sees it, for tests that put another agent beside it.

dockerd sends, per container and volume, one Mount when the container starts, with an ID of
its own (64 random hex digits), and one Unmount with that same ID when it stops; before the
first start it asks Get and, if the plugin lacks the volume, Create (``docker-volume-plugin-
protocol.md`` section 4). ``DockerEngine`` plays exactly that over a plugin's unix socket, and
keeps the tally a balance check needs: per (volume, ID), successful Mounts and Unmounts.
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tests.support.waits import WAIT

__all__ = ["Container", "DockerEngine", "PluginRefused"]

ACCEPT = "application/vnd.docker.plugins.v1.2+json"


class PluginRefused(Exception):
    """The plugin answered an error; ``str`` is its ``Err``, as dockerd shows it."""


@dataclass(frozen=True)
class Container:
    """A started container's use of one volume: its ID toward the plugin, its mount point."""

    id: str
    volume: str
    mountpoint: str


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("plugin.moby.localhost", timeout=WAIT)  # Docker's Host for unix
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


class DockerEngine:
    """One dockerd toward the plugin serving on ``socket_path`` (each call a new connection).

    ``start(volume)`` is a container start, ``stop(container)`` its stop. ``mounts`` and
    ``unmounts`` count the successful calls per (volume, ID); ``balanced()`` says whether
    they match for every ID, which holds once every started container is stopped.
    """

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.mounts: Counter[tuple[str, str]] = Counter()
        self.unmounts: Counter[tuple[str, str]] = Counter()
        self.running: list[Container] = []

    def call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """One call as Go's client sends it (no Content-Type, a trailing newline)."""
        connection = _Unix(self.socket_path)
        try:
            data = (json.dumps(body) + "\n").encode()
            connection.request("POST", f"/{method}", body=data, headers={"Accept": ACCEPT})
            response = connection.getresponse()
            answer = json.loads(response.read() or b"{}")
        finally:
            connection.close()
        if response.status != 200 or answer.get("Err"):
            raise PluginRefused(f"{method}: {answer.get('Err') or response.status}")
        assert isinstance(answer, dict)
        return answer

    def start(self, volume: str) -> Container:
        """Get (Create if absent), then Mount with a new container's own ID."""
        try:
            self.call("VolumeDriver.Get", {"Name": volume})
        except PluginRefused:
            self.call("VolumeDriver.Create", {"Name": volume, "Opts": None})
        container_id = secrets.token_hex(32)
        answer = self.call("VolumeDriver.Mount", {"Name": volume, "ID": container_id})
        self.mounts[volume, container_id] += 1
        container = Container(container_id, volume, answer["Mountpoint"])
        self.running.append(container)
        return container

    def stop(self, container: Container) -> None:
        """Unmount with the container's ID; it is stopped even if the plugin errs, as
        dockerd's ``MountPoint.Cleanup`` forgets it either way."""
        self.running.remove(container)
        self.call("VolumeDriver.Unmount", {"Name": container.volume, "ID": container.id})
        self.unmounts[container.volume, container.id] += 1

    def stop_all(self) -> None:
        for container in list(self.running):
            self.stop(container)

    def balanced(self) -> bool:
        """Whether every (volume, ID) had as many Unmounts as successful Mounts."""
        return all(self.unmounts[key] == count for key, count in self.mounts.items())
