"""A raw client of the reference volume plugin: exactly what goes on its socket, for the
plugin's tests (no retries, no discovery, nothing the isolator's client would add)."""

from __future__ import annotations

import http.client
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isolator.plugin import CONTENT_TYPE, VolumePlugin
from tests.support.waits import WAIT

__all__ = ["Reply", "UnixConnection", "call", "err", "ok", "post", "tree"]


class UnixConnection(http.client.HTTPConnection):
    """``http.client`` over a unix socket: it sends Content-Length but never a Content-Type."""

    def __init__(self, path: str, timeout: float = WAIT) -> None:
        super().__init__("plugin.moby.localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


@dataclass
class Reply:
    status: int
    content_type: str | None
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def post(conn: UnixConnection, method: str, body: bytes) -> Reply:
    conn.request("POST", f"/{method}", body=body)
    response = conn.getresponse()
    return Reply(response.status, response.getheader("Content-Type"), response.read())


def call(
    plugin: VolumePlugin, method: str, body: object = None, *, raw: bytes | None = None
) -> Reply:
    """One request on a fresh connection; ``body`` is JSON-encoded with Go's trailing newline."""
    data = raw if raw is not None else b"" if body is None else (json.dumps(body) + "\n").encode()
    conn = UnixConnection(plugin.socket_path)
    try:
        return post(conn, method, data)
    finally:
        conn.close()


def ok(plugin: VolumePlugin, method: str, body: object = None) -> Any:
    reply = call(plugin, method, body)
    assert reply.status == 200, reply.body
    assert reply.content_type == CONTENT_TYPE
    return reply.json()


def err(plugin: VolumePlugin, method: str, body: object = None) -> str:
    reply = call(plugin, method, body)
    assert reply.status == 500, reply.body
    message = reply.json()["Err"]
    assert isinstance(message, str)
    assert message
    return message


def tree(top: Path) -> list[tuple[str, str]]:
    """Everything below ``top`` as (relative path, kind or link target), following no link:
    equal trees mean nothing was created, deleted or replaced there."""
    found = []
    for directory, dirs, files in os.walk(top):
        for name in dirs + files:
            path = Path(directory, name)
            kind = (
                f"-> {os.readlink(path)}"
                if path.is_symlink()
                else "dir"
                if path.is_dir()
                else "file"
            )
            found.append((str(path.relative_to(top)), kind))
    return sorted(found)
