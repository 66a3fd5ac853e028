"""A CSI plugin's node service over grpcio, as the isolator calls it.

The calls block (grpcio's synchronous stubs) and are made only from the actors layer's
blocking executor (``actors.run_blocking``), never from an actor. ``UNAVAILABLE`` and
``DEADLINE_EXCEEDED`` mean "outcome unknown": the same call is repeated (the node calls
are idempotent) with doubling waits, each attempt bounded by ``rpc_timeout`` and all of
them by ``retry_budget``. Any other code is final and raised as ``CsiCallError`` with the
plugin's message. Requests may carry secrets: no request is ever logged or put in a
message, only the method and volume ID.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import grpc
from google.protobuf.message import Message

from isolator.common.errors import IsolatorError
from isolator.protos import csi_pb2 as csi
from isolator.protos import csi_pb2_grpc

__all__ = ["RETRIED", "CsiCallError", "NodeCapabilities", "NodeClient", "Report"]

_log = logging.getLogger("isolator")

RETRIED: Final = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
FIRST_WAIT: Final = 0.1
MAX_WAIT: Final = 10.0
MAX_MESSAGE_BYTES: Final = 1 << 20
"""Bound on any answer: node responses are all but empty."""
MAX_IN_FLIGHT: Final = 8
"""Calls to one plugin at once; more wait their turn (a plugin may refuse a crowd with
RESOURCE_EXHAUSTED, as grpcio's ``maximum_concurrent_rpcs`` does)."""

R = TypeVar("R", bound=Message)

Report = Callable[[str, str, str, float], None]
"""``report(method, plugin, grpc status code name, seconds)`` after each call (metrics)."""


class CsiCallError(IsolatorError):
    """A node call failed: a final code, or retries ran out of budget."""

    def __init__(self, message: str, code: grpc.StatusCode | None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class NodeCapabilities:
    stage_unstage_volume: bool


class NodeClient:
    """One plugin's node service on a unix socket; safe to call from several threads."""

    def __init__(
        self,
        socket: str,
        *,
        plugin: str,
        rpc_timeout: float,
        retry_budget: float,
        report: Report | None = None,
    ) -> None:
        self.socket = socket
        self.plugin = plugin
        self._rpc_timeout = rpc_timeout
        self._retry_budget = retry_budget
        self._report = report
        self._channel = grpc.insecure_channel(
            f"unix://{socket}",
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.enable_retries", 0),  # retries are ours, counted in our budget
            ],
        )
        self._node = csi_pb2_grpc.NodeStub(self._channel)
        self._lock = threading.Lock()
        self._in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self._capabilities: NodeCapabilities | None = None

    def capabilities(self) -> NodeCapabilities:
        """``NodeGetCapabilities``, asked once per plugin (Mesos: at its start)."""
        with self._lock:
            if self._capabilities is None:
                response = self._call(
                    "NodeGetCapabilities",
                    self._node.NodeGetCapabilities,
                    csi.NodeGetCapabilitiesRequest(),
                    volume_id=None,
                )
                stage = any(
                    c.rpc.type == csi.NodeServiceCapability.RPC.STAGE_UNSTAGE_VOLUME
                    for c in response.capabilities
                )
                self._capabilities = NodeCapabilities(stage_unstage_volume=stage)
            return self._capabilities

    def stage(self, request: csi.NodeStageVolumeRequest) -> None:
        self._call("NodeStageVolume", self._node.NodeStageVolume, request, request.volume_id)

    def unstage(self, request: csi.NodeUnstageVolumeRequest) -> None:
        self._call("NodeUnstageVolume", self._node.NodeUnstageVolume, request, request.volume_id)

    def publish(self, request: csi.NodePublishVolumeRequest) -> None:
        self._call("NodePublishVolume", self._node.NodePublishVolume, request, request.volume_id)

    def unpublish(self, request: csi.NodeUnpublishVolumeRequest) -> None:
        self._call(
            "NodeUnpublishVolume", self._node.NodeUnpublishVolume, request, request.volume_id
        )

    def close(self) -> None:
        self._channel.close()

    def _call(
        self, method: str, stub: Callable[..., R], request: Message, volume_id: str | None
    ) -> R:
        what = f"'{method}' of CSI plugin '{self.plugin}'" + (
            "" if volume_id is None else f" for volume '{volume_id}'"
        )
        deadline = time.monotonic() + self._retry_budget
        wait = FIRST_WAIT
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            remaining = deadline - started
            timeout = self._rpc_timeout if remaining <= 0 else min(self._rpc_timeout, remaining)
            try:
                with self._in_flight:
                    response: R = stub(request, timeout=timeout)
            except grpc.RpcError as error:
                code, details = _status(error)
                self._observe(method, started, code.name)
                left = deadline - time.monotonic()
                if code not in RETRIED or left <= 0:
                    tail = "" if code not in RETRIED else f" (gave up after {attempt} attempt(s))"
                    raise CsiCallError(
                        f"{what} failed: {code.name}: {details}{tail}", code
                    ) from None
                pause = min(wait, left)
                _log.info("%s: %s, retrying in %.1f s", what, code.name, pause)
                time.sleep(pause)  # a blocking-executor thread: only this volume waits
                wait = min(wait * 2, MAX_WAIT)
                continue
            self._observe(method, started, "OK")
            return response

    def _observe(self, method: str, started: float, code: str) -> None:
        if self._report is not None:
            self._report(method, self.plugin, code, time.monotonic() - started)


def _status(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    call: Any = error
    try:
        code = call.code()
        details = call.details() or ""
    except AttributeError:  # not a grpc.Call: cannot tell, so retry as unknown outcome
        return grpc.StatusCode.UNAVAILABLE, str(error)
    return code, details[:1024]
