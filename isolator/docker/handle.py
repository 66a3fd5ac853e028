"""The public handle on a running isolator: what embedders call.

Each call copies its arguments (so callers may reuse their messages), sends one message
to the ``DockerVolumeIsolatorActor`` and returns a ``Future``. No call raises: a bad
argument or a stopped isolator fails the returned future, with an ``IsolatorError`` that
says so rather than pykka's "actor not found".
"""

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
from isolator.docker.actor import DockerVolumeIsolatorActor
from isolator.docker.containers import Usage
from isolator.drivers import create_client
from isolator.drivers.base import DriverClient
from isolator.messages import copy
from isolator.protos import ContainerConfig, ContainerID, ContainerLaunchInfo, ContainerState

__all__ = ["STOPPED", "DockerVolumeIsolator"]

STOPPED = "The docker/volume isolator is stopped; start a new one with create() and recover()"


class DockerVolumeIsolator:
    """The public handle: each call is a message to the isolator actor and returns a Future.

    Arguments are copied before they are sent, so callers may reuse their messages. No
    call raises: a stopped isolator or a bad argument fails the returned future.
    """

    def __init__(
        self,
        actor_ref: pykka.ActorRef[DockerVolumeIsolatorActor],
        *,
        owned_client: DriverClient | None,
        observer: Observer | None = None,
    ) -> None:
        self._ref = actor_ref
        self._owned_client = owned_client
        self._observer = observer or Observer()
        self._timed = observes_operations(self._observer)
        self._stopped = False

    @classmethod
    def create(
        cls,
        flags: Flags,
        client: DriverClient | None = None,
        *,
        observer: Observer | None = None,
    ) -> DockerVolumeIsolator:
        """Start an isolator; with no ``client``, check the host and build one from ``flags``.

        Passing a client skips the host checks (Mesos's ``_create``): that is how tests
        and embedders inject a driver. ``observer`` receives the isolator's reports
        (operation durations and errors, gauges): see ``isolator.common.observe``.
        """
        owned: DriverClient | None = None
        if client is None:
            client = owned = create_client(flags)
        try:
            os.makedirs(flags.docker_volume_checkpoint_dir, mode=0o755, exist_ok=True)
        except OSError as error:
            raise IsolatorError(
                "Failed to create docker volume information root directory at "
                f"'{flags.docker_volume_checkpoint_dir}': {strerror(error)}"
            ) from error
        root = os.path.realpath(flags.docker_volume_checkpoint_dir)
        ref = DockerVolumeIsolatorActor.start(flags, root, client, observer)
        return cls(ref, owned_client=owned, observer=observer)

    def recover(
        self, states: Iterable[ContainerState], orphans: Iterable[ContainerID]
    ) -> Future[None]:
        """Read the checkpoints; clean up the unknown orphans. Once, before anything else."""
        return self._send(
            "recover",
            "recover",
            lambda: (
                [copy(s, expected=ContainerState, name="states[]") for s in states],
                [_copy_id(o, "orphans[]") for o in orphans],
            ),
        )

    def prepare(
        self, container_id: ContainerID, container_config: ContainerConfig
    ) -> Future[ContainerLaunchInfo | None]:
        """Checkpoint and mount the container's Docker volumes; the launch info, or None."""
        return self._send(
            "prepare",
            "prepare",
            lambda: (
                _copy_id(container_id),
                copy(container_config, expected=ContainerConfig, name="container_config"),
            ),
        )

    def cleanup(self, container_id: ContainerID) -> Future[None]:
        """Unmount the volumes no other container uses; remove the checkpoint."""
        return self._send("cleanup", "cleanup", lambda: (_copy_id(container_id),))

    def forget(self, container_id: ContainerID) -> Future[None]:
        """Drop a container's record and checkpoint WITHOUT unmounting (logged at WARNING).

        The way out for a volume whose plugin is gone for good, so its checkpoint stops
        failing every cleanup and recovery. Not in Mesos.
        """
        return self._send(None, "forget", lambda: (_copy_id(container_id),))

    def orphan_cleanups(self) -> Future[list[Future[None]]]:
        """Completes once every unknown-orphan cleanup started by ``recover`` has ended.

        Mesos fires those cleanups and forgets them; this lets an embedder wait for them
        and see how each ended.
        """
        return self._send(None, "orphan_cleanups")

    def sequence_count(self) -> Future[int]:
        """How many per-volume sequences are alive (idle, unused ones are stopped)."""
        return self._send(None, "sequence_count")

    def usage(self) -> Future[Usage]:
        """A snapshot: each container with its volumes and phase, each volume's holders."""
        return self._send(None, "usage")

    def stop(self, *, timeout: float | None = 10.0) -> None:
        """Stop the actor and its sequences; checkpoints stay (as after an agent crash)."""
        self._stopped = True
        self._ref.stop(timeout=timeout)
        if self._owned_client is not None:
            self._owned_client.close()

    def _send(
        self,
        operation: Operation | None,
        method: str,
        arguments: Callable[[], tuple[Any, ...]] = tuple,
    ) -> Future[Any]:
        """The actor's ``method(*arguments())``, its failures worded; ``operation`` is
        reported (timed only if the observer looks at operations)."""
        started = time.monotonic() if self._timed else 0.0
        if self._stopped:
            result: Future[Any] = Future.failed(IsolatorError(STOPPED))
        else:
            try:
                result = call(self._ref, method, *arguments(), reply=_Answer())
            except Exception as error:  # a bad argument, e.g. not a message: fail, never raise
                result = Future.failed(error)
        if operation is not None and self._timed:
            report_when_done(self._observer, result, operation, started)
        return result


def _copy_id(container_id: ContainerID, name: str = "container_id") -> ContainerID:
    return copy(container_id, expected=ContainerID, name=name)


class _Answer(Future[Any]):
    """An answer from the actor, with pykka's "actor not found" (a stopped isolator, also
    one that stops before it answers) worded as the isolator's own error."""

    def _complete(
        self,
        state: State,
        *,
        value: Any = None,
        exception: BaseException | None = None,
    ) -> bool:
        if isinstance(exception, pykka.ActorDeadError):
            exception = IsolatorError(STOPPED)
        return super()._complete(state, value=value, exception=exception)
