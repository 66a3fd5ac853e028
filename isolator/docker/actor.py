"""The ``docker/volume`` isolator: Mesos's ``DockerVolumeIsolatorProcess`` as an actor.

Every call is a message to one actor, so the isolator's state (which container uses which
volume) is only ever touched by one thread. Driver calls go through one sequence per
volume (``volume_sequences``), which keeps mounts and unmounts of a volume in order while
different volumes proceed side by side; the actor itself never waits on a driver.

``prepare``: validate -> targets (``launch_info.mount_target``) -> checkpoint (``state``)
-> mounts on the volumes' sequences -> ``launch_info.build_launch_info``. ``cleanup`` runs
the same path backwards; ``recover`` reads the checkpoints and cleans up unknown orphans.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any

from actors import Actor, Future, await_, defer
from isolator.common import failpoints
from isolator.common.container_ids import format_container_id, validate_container_id
from isolator.common.errors import IsolatorError, strerror
from isolator.common.observe import Gauges, Observer, notify_gauges, observes_gauges
from isolator.config.flags import Flags
from isolator.docker.container_volumes import requested_mounts
from isolator.docker.containers import (
    ContainerTable,
    Phase,
    Usage,
    busy_error,
    container_key,
    same_value_error,
)
from isolator.docker.paths import checkpointed_containers, container_dir
from isolator.docker.state import (
    VolumeKey,
    checkpoint_container,
    read_checkpoint,
    remove_checkpoint,
)
from isolator.docker.volume_sequences import VolumeSequences
from isolator.drivers.base import DriverClient
from isolator.launch.launch_info import VolumeMount, build_launch_info
from isolator.protos import (
    ContainerConfig,
    ContainerID,
    ContainerLaunchInfo,
    ContainerState,
)

__all__ = ["DockerVolumeIsolatorActor"]

logger = logging.getLogger("isolator")

def _failure_text(future: Future[Any]) -> str:
    return str(future.failure()) if future.is_failed() else "discarded"


class DockerVolumeIsolatorActor(Actor):
    """The actor; reach it through ``DockerVolumeIsolator``, which copies arguments safely."""

    def __init__(
        self, flags: Flags, root_dir: str, client: DriverClient, observer: Observer | None = None
    ) -> None:
        super().__init__()
        self._flags = flags
        self._root = root_dir
        self._client = client
        # A client without ``path`` cannot say where a maybe-mounted volume is: Mount again.
        self._can_find = type(client).path is not DriverClient.path
        self._observer = observer or Observer()
        self._counted = observes_gauges(self._observer)
        self._volumes = VolumeSequences(
            serialize=self._serialize, observer=self._observer, on_change=self._report
        )
        self._containers = ContainerTable(self._volumes)
        self._orphan_cleanups: list[Future[None]] = []
        self._recovered = False

    def on_start(self) -> None:
        self._run_here = defer(self.actor_ref, _run)

    def _serialize(self, fn: Callable[[], None]) -> None:
        self._run_here(fn)

    def _report(self) -> None:
        if not self._counted:
            return  # nobody looks at the gauges: skip counting them
        gauges = Gauges(
            containers=len(self._containers),
            volume_sequences=self._volumes.sequence_count(),
            volumes_in_use=self._volumes.in_use(),
        )
        notify_gauges(self._observer, gauges)

    # -- recover -----------------------------------------------------------------------

    def recover(self, states: list[ContainerState], orphans: list[ContainerID]) -> None:
        if self._recovered:
            # A second recovery would clean up the same unknown orphans again.
            raise IsolatorError(
                "The docker/volume isolator has already recovered; recover() runs once, "
                "when the isolator starts"
            )
        if not os.path.exists(self._root):
            logger.debug("Skipping recovery: '%s' does not exist", self._root)
            self._recovered = True
            return
        given = [(s.container_id, "container") for s in states]
        given += [(orphan, "orphan container") for orphan in orphans]
        try:
            unknown = self._read_checkpoints(given)
        except IsolatorError:
            self._containers.forget_all()  # a failed recovery records nothing: retry it
            raise
        self._recovered = True
        self._report()
        failpoints.hit("during-recovery")
        for orphan in unknown:
            logger.info("Cleanup volumes for unknown orphaned container %s", orphan.value)
            # Fire and forget, as Mesos: the unmounts are queued before recover returns.
            try:
                cleanup = self.cleanup(orphan)
            except IsolatorError as error:
                _log_orphan_failure(orphan.value, error)
                continue
            cleanup.on_failed(functools.partial(_log_orphan_failure, orphan.value))
            self._orphan_cleanups.append(cleanup)

    def _read_checkpoints(self, given: list[tuple[ContainerID, str]]) -> list[ContainerID]:
        """Record the given containers and every other checkpointed one; the latter."""
        for container_id, kind in given:
            self._recover_or_raise(container_id, kind)
        try:
            entries = checkpointed_containers(self._root)
        except OSError as error:
            raise IsolatorError(
                f"Unable to list docker volume checkpoint directory '{self._root}': "
                f"{strerror(error)}"
            ) from error
        known = {container.container_id.value for container in self._containers}
        unknown = [ContainerID(value=entry) for entry in entries if entry not in known]
        # All unknown orphans are recovered before any is cleaned up, so that orphans
        # sharing a volume count each other and only the last one unmounts it. (Mesos
        # interleaves the two and unmounts such a volume once per orphan.)
        for orphan in unknown:
            self._recover_or_raise(orphan, "orphan container")
        return unknown

    def _recover_or_raise(self, container_id: ContainerID, kind: str) -> None:
        try:
            volumes = read_checkpoint(self._root, container_id)  # validates the ID first
        except IsolatorError as error:
            raise IsolatorError(
                f"Failed to recover docker volumes for {kind} "
                f"{format_container_id(container_id)}: {error}"
            ) from error
        if volumes is not None:
            # Mesos's rule after a restart: whatever was checkpointed may be mounted.
            self._containers.add(container_id, volumes, maybe_mounted=True)

    # -- prepare -----------------------------------------------------------------------

    def prepare(
        self, container_id: ContainerID, config: ContainerConfig
    ) -> Future[ContainerLaunchInfo] | None:
        validate_container_id(container_id)
        key = container_key(container_id)
        previous = self._containers.get(key)
        if previous is not None and previous.phase is not Phase.STRANDED:
            raise busy_error(container_id, previous.phase)
        namesake = self._containers.with_value(container_id.value)
        if namesake is not None and namesake is not previous:
            raise same_value_error(container_id, namesake)
        mounts = requested_mounts(container_id, config, self._flags)
        if not mounts:
            return None
        volumes = dict.fromkeys(m.volume for m in mounts)
        if previous is not None:
            # Its last cleanup failed: this life takes over the duty to unmount those.
            volumes.update(dict.fromkeys(previous.volumes))
        # Before any mount: after a crash, whatever was mounted can still be unmounted.
        checkpoint_container(self._root, container_id, list(volumes))
        failpoints.hit("after-checkpoint-write")
        # Known before the mounts finish, so a failed prepare still gets its volumes
        # unmounted (those whose mount was not refused) at cleanup.
        self._containers.add(container_id, volumes, maybe_mounted=False)
        self._report()
        futures = [
            self._volumes.mount(
                m.volume,
                _driver_call(self._client.mount, m.volume, m.options),
                _driver_call(self._client.path, m.volume) if self._can_find else None,
            )
            for m in mounts
        ]
        user = config.user if config.HasField("user") else None
        finish = defer(self.actor_ref, self._finish_prepare, container_id, mounts, user)
        return await_(futures).then(finish)

    def _finish_prepare(
        self,
        container_id: ContainerID,
        mounts: list[VolumeMount],
        user: str | None,
        futures: list[Future[str]],
    ) -> ContainerLaunchInfo:
        failures = [_failure_text(f) for f in futures if not f.is_ready()]
        if failures:
            raise IsolatorError("\n".join(failures))
        sources = [f.get(timeout=0).strip(" \t\n\r") for f in futures]
        launch_info = build_launch_info(mounts, sources, flags=self._flags, user=user)
        logger.info(
            "Prepared %d docker volume(s) for container %s", len(mounts), _Shown(container_id)
        )
        return launch_info

    # -- cleanup -----------------------------------------------------------------------

    def cleanup(self, container_id: ContainerID) -> Future[None]:
        validate_container_id(container_id)
        key = container_key(container_id)
        container = self._containers.get(key)
        if container is None:
            logger.debug(
                "Ignoring cleanup request for unknown container %s",
                _Shown(container_id),
            )
            return Future.ready(None)
        if container.phase is Phase.CLEANING:
            assert container.cleanup is not None
            return container.cleanup  # one cleanup per life; a second call joins it
        child = self._containers.a_prepared_child(key)
        if child is not None:
            raise IsolatorError(
                f"Failed to clean up container {format_container_id(container_id)}: "
                f"it has child container {format_container_id(child.container_id)} "
                "which is not cleaned up yet"
            )
        # Released before the unmounts finish, so a failed unmount leaves no stale
        # reference behind (MESOS-10126).
        unmounts = []
        for volume, holders in self._containers.start_cleanup(key):
            if holders:
                logger.debug(
                    "Cannot unmount volume with driver '%s' and name '%s' for container %s "
                    "since %d other container(s) use it",
                    volume.driver,
                    volume.name,
                    _Shown(container_id),
                    holders,
                )
                continue
            logger.info(
                "Unmounting the volume with driver '%s' and name '%s' for container %s",
                volume.driver,
                volume.name,
                _Shown(container_id),
            )
            call = _driver_call(self._client.unmount, volume)
            unmounts.append(self._volumes.unmount(volume, call))
        self._report()
        finish = defer(self.actor_ref, self._finish_cleanup, container_id)
        container.cleanup = await_(unmounts).then(finish)
        return container.cleanup

    def _finish_cleanup(self, container_id: ContainerID, futures: list[Future[None]]) -> None:
        key = container_key(container_id)
        failures = [_failure_text(f) for f in futures if not f.is_ready()]
        try:
            if failures:
                # The checkpoint stays, so the next recovery retries the unmounts.
                raise IsolatorError("\n".join(failures))
            failpoints.hit("before-checkpoint-removal")
            directory = remove_checkpoint(self._root, container_id)
        except IsolatorError:
            self._containers.strand(key)
            raise
        self._containers.remove(key)
        self._report()
        logger.info("Removed the checkpoint directory at '%s'", directory)

    # -- forget --------------------------------------------------------------------------

    def forget(self, container_id: ContainerID) -> None:
        """Drop a container's record and checkpoint without unmounting anything."""
        validate_container_id(container_id)
        key = container_key(container_id)
        container = self._containers.get(key)
        if container is not None and container.phase is Phase.CLEANING:
            raise busy_error(container_id, Phase.CLEANING)
        if container is None and not os.path.lexists(container_dir(self._root, container_id)):
            raise IsolatorError(
                f"Cannot forget container {format_container_id(container_id)}: "
                "the isolator knows no such container and it has no checkpoint"
            )
        directory = remove_checkpoint(self._root, container_id, missing_ok=True)
        volumes = self._containers.forget(key).volumes if container is not None else ()
        self._report()
        logger.warning(
            "Forgot container %s without unmounting its volumes %s; removed '%s'",
            format_container_id(container_id),
            [f"{v.driver}/{v.name}" for v in volumes],
            directory,
        )

    # -- introspection and lifecycle -------------------------------------------------------

    def orphan_cleanups(self) -> Future[list[Future[None]]]:
        """The cleanups ``recover`` started for unknown orphans, once none is pending."""
        return await_(list(self._orphan_cleanups))

    def usage(self) -> Usage:
        """Who holds what, now."""
        return self._containers.usage()

    def sequence_count(self) -> int:
        """How many volume sequences are alive; for tests and metrics."""
        return self._volumes.sequence_count()

    def on_stop(self) -> None:
        self._volumes.stop()


class _Shown:
    """A container ID printed only if the log line is written (lazy %-formatting)."""

    __slots__ = ("_container_id",)

    def __init__(self, container_id: ContainerID) -> None:
        self._container_id = container_id

    def __str__(self) -> str:
        return format_container_id(self._container_id)


def _run(fn: Callable[[], None]) -> None:
    fn()


def _log_orphan_failure(entry: str, error: BaseException) -> None:
    logger.warning("Failed to clean up unknown orphan container %s: %s", entry, error)


def _driver_call(
    method: Callable[..., Future[Any]], volume: VolumeKey, *args: Any
) -> Callable[[], Future[Any]]:
    """``method(driver, name, *args)`` for ``volume``, to run when its sequence gets to it."""
    return lambda: method(volume.driver, volume.name, *args)
