"""Serve the reference plugin's services on a unix socket with grpcio, bounded: small
messages, few threads, few calls at once (a CO's node calls are few and small)."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from concurrent import futures

import grpc

from isolator.protos import csi_pb2_grpc

from .node import DirectoryNode

__all__ = ["MAX_CONCURRENT_CALLS", "MAX_MESSAGE_BYTES", "CsiPluginServer", "socket_path"]

MAX_MESSAGE_BYTES = 64 * 1024
"""A node request is a few paths and maps (the spec caps mount_flags at 4 KiB)."""
MAX_CONCURRENT_CALLS = 16
WORKERS = 4


def socket_path(endpoint: str) -> str:
    """The socket of ``unix:///PATH`` (or a plain absolute path); ``ValueError`` otherwise."""
    path = endpoint.removeprefix("unix://")
    if not path.startswith("/"):
        raise ValueError(f"Endpoint '{endpoint}' is not unix:///ABSOLUTE/PATH nor an absolute path")
    return path


def _remove_stale_socket(path: str) -> None:
    """Remove a socket left by a previous run (nobody accepts on it); refuse anything else."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ValueError(f"'{path}' exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # stale
    else:
        raise ValueError(f"Another process serves on '{path}'")
    finally:
        probe.close()


class CsiPluginServer:
    """A started grpc server serving ``node`` at ``endpoint``; ``stop()`` ends it."""

    def __init__(self, node: DirectoryNode, endpoint: str) -> None:
        path = socket_path(endpoint)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _remove_stale_socket(path)
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="csi-plugin"),
            options=options,
            maximum_concurrent_rpcs=MAX_CONCURRENT_CALLS,
        )
        csi_pb2_grpc.add_IdentityServicer_to_server(node, self._server)
        csi_pb2_grpc.add_NodeServicer_to_server(node, self._server)
        self.path = path
        self._server.add_insecure_port(f"unix://{path}")
        self._server.start()

    def wait(self) -> None:
        self._server.wait_for_termination()

    def stop(self, grace: float = 5.0) -> None:
        self._server.stop(grace).wait(grace + 1.0)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
