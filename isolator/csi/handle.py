"""The public handle on a running CSI isolator, like ``DockerVolumeIsolator``: each call
copies its arguments, sends one message to the ``CsiVolumeIsolatorActor`` and returns a
``Future``; no call raises."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import pykka

from actors import Future, State, call
from isolator.common.errors import IsolatorError, strerror
from isolator.common.observe import (
    Observer,
    Operation,
    observes_operations,
    report_when_done,
)
from isolator.config.flags import Flags
from isolator.csi.actor import CsiVolumeIsolatorActor
from isolator.csi.machine import SecretResolver
from isolator.csi.metrics import reporter
from isolator.csi.plugins import load_plugins
from isolator.docker.containers import Usage
from isolator.messages import copy
from isolator.protos import ContainerConfig, ContainerID, ContainerLaunchInfo, ContainerState

__all__ = ["BOOT_ID_PATH", "STOPPED", "CsiVolumeIsolator", "boot_id"]

STOPPED = "The volume/csi isolator is stopped; start a new one with create() and recover()"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


def boot_id() -> str:
    """This boot's ID (Mesos's ``os::bootId``)."""
    with open(BOOT_ID_PATH, encoding="ascii") as stream:
        return stream.read().strip()


class CsiVolumeIsolator:
    """The public handle: each call is a message to the isolator actor and returns a Future."""

    def __init__(
        self, actor_ref: pykka.ActorRef[CsiVolumeIsolatorActor], observer: Observer | None = None
    ) -> None:
        self._ref = actor_ref
        self._observer = observer or Observer()
        self._timed = observes_operations(self._observer)
        self._stopped = False

    @classmethod
    def create(
        cls,
        flags: Flags,
        *,
        secret_resolver: SecretResolver | None = None,
        observer: Observer | None = None,
        node_boot_id: str | None = None,
    ) -> CsiVolumeIsolator:
        """Start an isolator: read the plugin configs of ``flags.csi_plugin_config_dir`` and
        make ``flags.csi_root_dir``. ``secret_resolver`` resolves ``REFERENCE`` secrets;
        ``node_boot_id`` replaces this boot's ID (tests simulate a reboot with it)."""
        try:
            os.makedirs(flags.csi_root_dir, mode=0o755, exist_ok=True)
        except OSError as error:
            raise IsolatorError(
                "Failed to create CSI volume information root directory at "
                f"'{flags.csi_root_dir}': {strerror(error)}"
            ) from error
        root = os.path.realpath(flags.csi_root_dir)
        plugins = load_plugins(flags.csi_plugin_config_dir)
        ref = CsiVolumeIsolatorActor.start(
            flags,
            root,
            plugins,
            boot_id=node_boot_id if node_boot_id is not None else boot_id(),
            resolver=secret_resolver,
            report=reporter(observer),
        )
        return cls(ref, observer)

    def recover(
        self, states: Iterable[ContainerState], orphans: Iterable[ContainerID]
    ) -> Future[None]:
        """Read the checkpoints and volume states; release what only unknown orphans used."""
        return self._send(
            "recover",
            lambda: (
                [copy(s, expected=ContainerState, name="states[]") for s in states],
                [copy(o, expected=ContainerID, name="orphans[]") for o in orphans],
            ),
        )

    def prepare(
        self, container_id: ContainerID, container_config: ContainerConfig
    ) -> Future[ContainerLaunchInfo | None]:
        """Checkpoint and publish the container's CSI volumes; the launch info, or None."""
        return self._send(
            "prepare",
            lambda: (
                copy(container_id, expected=ContainerID, name="container_id"),
                copy(container_config, expected=ContainerConfig, name="container_config"),
            ),
        )

    def cleanup(self, container_id: ContainerID) -> Future[None]:
        """Unpublish the volumes no other container uses; remove the checkpoint."""
        return self._send(
            "cleanup", lambda: (copy(container_id, expected=ContainerID, name="container_id"),)
        )

    def background(self) -> Future[list[Future[None]]]:
        """Completes once what ``recover`` started (unpublishes, orphan cleanups) has ended."""
        return self._send("background")

    def orphan_cleanups(self) -> Future[list[Future[None]]]:
        """The same as ``background``, under ``DockerVolumeIsolator``'s name."""
        return self._send("background")

    def usage(self) -> Future[Usage]:
        return self._send("usage")

    def volume_states(self) -> Future[dict[str, str]]:
        """``plugin/volume ID`` -> Mesos ``VolumeState`` name, for each volume with a state."""
        return self._send("volume_states")

    def sequence_count(self) -> Future[int]:
        return self._send("sequence_count")

    def stop(self, *, timeout: float | None = 10.0) -> None:
        """Stop the actor and its sequences; checkpoints and states stay (as after a crash)."""
        self._stopped = True
        self._ref.stop(timeout=timeout)

    def _send(self, method: str, arguments: Callable[[], tuple[Any, ...]] = tuple) -> Future[Any]:
        started = time.monotonic() if self._timed else 0.0
        if self._stopped:
            result: Future[Any] = Future.failed(IsolatorError(STOPPED))
        else:
            try:
                result = call(self._ref, method, *arguments(), reply=_Answer())
            except Exception as error:  # a bad argument: fail, never raise
                result = Future.failed(error)
        if self._timed and method in _OPERATIONS:
            report_when_done(self._observer, result, _OPERATIONS[method], started)
        return result


_OPERATIONS: dict[str, Operation] = {
    "prepare": "prepare",
    "cleanup": "cleanup",
    "recover": "recover",
}
"""The calls reported to the observer's ``on_operation``, as ``DockerVolumeIsolator`` does."""


class _Answer(Future[Any]):
    def _complete(
        self, state: State, *, value: Any = None, exception: BaseException | None = None
    ) -> bool:
        if isinstance(exception, pykka.ActorDeadError):
            exception = IsolatorError(STOPPED)
        return super()._complete(state, value=value, exception=exception)
