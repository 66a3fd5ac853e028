"""The ``docker/volume`` isolator: Mesos's ``DockerVolumeIsolatorProcess`` as an actor.

Every call is a message to one actor, so the isolator's state (which container uses which
volume) is only ever touched by one thread. Driver calls go through one sequence per
volume (``volume_sequences``), which keeps mounts and unmounts of a volume in order while
different volumes proceed side by side; the actor itself never waits on a driver.

``prepare``: validate -> targets (``launch_info.mount_target``) -> checkpoint (``state``)
-> mounts on the volumes' sequences -> ``launch_info.build_launch_info``. ``cleanup`` runs
the same path backwards; ``recover`` reads the checkpoints and cleans up unknown orphans.

Checkpoint I/O (write, removal, recovery's reads) runs outside the actor's turns
(``io_lanes``): on a disk on the blocking executor, a few calls at a time, so the fsyncs of
different containers overlap each other and the actor's Python work; on a tmpfs after the
turn, on the thread that ran it. Its outcome comes back to the actor as a message. The order
stays Mesos's: the mounts are queued only once the checkpoint is durable, and it is
removed only after the unmounts. While one container's checkpoint I/O is in flight,
operations on the same checkpoint directory wait (``gates``); during recovery, all do.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, cast

from actors import Actor, Future, await_, defer, run_blocking
from isolator.common import failpoints
from isolator.common.container_ids import format_container_id, validate_container_id
from isolator.common.errors import IsolatorError
from isolator.common.filesystems import memory_backed
from isolator.common.observe import Gauges, Observer, notify_gauges, observes_gauges
from isolator.config.flags import Flags
from isolator.docker.checkpoint_io import (
    Prepared,
    Recovered,
    forget_checkpoint,
    prepare_checkpoint,
    read_all_checkpoints,
)
from isolator.docker.containers import (
    ContainerKey,
    ContainerTable,
    Phase,
    Usage,
    busy_error,
    container_key,
    same_value_error,
)
from isolator.docker.gates import EVERYTHING, Gates
from isolator.docker.io_lanes import IOLanes
from isolator.docker.state import VolumeKey, remove_checkpoint
from isolator.docker.steps import Shown, after, driver_call, failure_text, log_orphan_failure, run
from isolator.docker.volume_sequences import VolumeSequences, strip_mount_point
from isolator.drivers.base import DriverClient
from isolator.launch.launch_info import VolumeMount, build_launch_info, needs_chown
from isolator.protos import (
    ContainerConfig,
    ContainerID,
    ContainerLaunchInfo,
    ContainerState,
)

__all__ = ["DockerVolumeIsolatorActor"]

logger = logging.getLogger("isolator")


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
        self._gates = Gates()  # operations waiting for checkpoint I/O in flight
        # That I/O, off this actor's turns: after them on memory, on a few threads elsewhere.
        self._io = IOLanes(brief=memory_backed(root_dir))
        self._orphan_cleanups: list[Future[None]] = []
        self._recovered = False

    def on_start(self) -> None:
        self._run_here = defer(self.actor_ref, run)

    def _serialize(self, fn: Callable[[], Any]) -> Future[Any]:
        return self._run_here(fn)

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

    def recover(
        self, states: list[ContainerState], orphans: list[ContainerID]
    ) -> Future[None] | None:
        if self._gates.closed(EVERYTHING):  # a second recover while the first reads
            return self._gates.wait(EVERYTHING, lambda: self.recover(states, orphans))
        if self._recovered:
            # A second recovery would clean up the same unknown orphans again.
            raise IsolatorError(
                "The docker/volume isolator has already recovered; recover() runs once, "
                "when the isolator starts"
            )
        given = [(s.container_id, "container") for s in states]
        given += [(orphan, "orphan container") for orphan in orphans]
        known = [container.container_id.value for container in self._containers]
        # Every operation waits until the checkpoints are read and the orphans' cleanups
        # started, as if recovery had read them inside this handler.
        self._gates.close(EVERYTHING)
        read = self._io.submit(read_all_checkpoints, self._root, given, known)
        return after(read, defer(self.actor_ref, self._recovered_from))

    def _recovered_from(self, read: Future[Recovered | None]) -> None:
        try:
            self._record_recovery(read)
        finally:
            self._gates.open(EVERYTHING)

    def _record_recovery(self, read: Future[Recovered | None]) -> None:
        if not read.is_ready():
            raise read.failure() or IsolatorError("recovery was discarded")
        recovered = read.get(timeout=0)
        self._recovered = True
        if recovered is None:
            logger.debug("Skipping recovery: '%s' does not exist", self._root)
            return
        found, unknown = recovered
        # All unknown orphans are recorded before any is cleaned up, so that orphans
        # sharing a volume count each other and only the last one unmounts it. (Mesos
        # interleaves the two and unmounts such a volume once per orphan.)
        for container_id, volumes in found:
            # Mesos's rule after a restart: whatever was checkpointed may be mounted.
            self._containers.add(container_id, volumes, maybe_mounted=True)
        self._report()
        failpoints.hit("during-recovery")
        for orphan in unknown:
            logger.info("Cleanup volumes for unknown orphaned container %s", orphan.value)
            # Fire and forget, as Mesos: the unmounts are queued before recover returns.
            try:
                cleanup = self._cleanup(orphan)
            except IsolatorError as error:
                log_orphan_failure(orphan.value, error)
                continue
            cleanup.on_failed(functools.partial(log_orphan_failure, orphan.value))
            self._orphan_cleanups.append(cleanup)

    # -- prepare -----------------------------------------------------------------------

    def prepare(
        self, container_id: ContainerID, config: ContainerConfig
    ) -> Future[ContainerLaunchInfo | None]:
        validate_container_id(container_id)
        value = container_id.value
        if self._gates.closed(value):
            return self._gates.wait(value, lambda: self.prepare(container_id, config))
        key = container_key(container_id)
        previous = self._containers.get(key)
        if previous is not None and previous.phase is not Phase.STRANDED:
            raise busy_error(container_id, previous.phase)
        namesake = self._containers.with_value(value)
        if namesake is not None and namesake is not previous:
            raise same_value_error(container_id, namesake)
        inherited = previous.volumes if previous is not None else ()
        user = config.user if config.HasField("user") else None
        # The targets' checks and the checkpoint, off this thread; operations on the same
        # checkpoint wait for them (``gates``).
        self._gates.close(value)
        written = self._io.submit(
            prepare_checkpoint, self._root, container_id, config, self._flags, inherited
        )
        return after(written, defer(self.actor_ref, self._checkpointed, container_id, user))

    def _checkpointed(
        self, container_id: ContainerID, user: str | None, written: Future[Prepared | None]
    ) -> Future[ContainerLaunchInfo | None]:
        try:
            if not written.is_ready():
                raise written.failure() or IsolatorError("the checkpoint write was discarded")
            prepared = written.get(timeout=0)
            if prepared is None:  # no Docker volume: nothing checkpointed, nothing to mount
                return Future.ready(None)
            mounts, volumes = prepared
            return self._mount(container_id, mounts, volumes, user)
        finally:
            self._gates.open(container_id.value)

    def _mount(
        self,
        container_id: ContainerID,
        mounts: list[VolumeMount],
        volumes: list[VolumeKey],
        user: str | None,
    ) -> Future[ContainerLaunchInfo | None]:
        failpoints.hit("after-checkpoint-write")
        # Known before the mounts finish, so a failed prepare still gets its volumes
        # unmounted (those whose mount was not refused) at cleanup.
        self._containers.add(container_id, volumes, maybe_mounted=False)
        self._report()
        requests = [
            (
                m.volume,
                driver_call(self._client.mount, m.volume, m.options),
                driver_call(self._client.path, m.volume) if self._can_find else None,
            )
            for m in mounts
        ]
        finish = functools.partial(self._finish_prepare, container_id, mounts, user)
        return self._volumes.mount_all(requests, finish)  # ``finish`` runs on this actor

    def _finish_prepare(
        self,
        container_id: ContainerID,
        mounts: list[VolumeMount],
        user: str | None,
        futures: list[Future[str]],
    ) -> ContainerLaunchInfo | Future[ContainerLaunchInfo | None]:
        failures = [failure_text(f) for f in futures if not f.is_ready()]
        if failures:
            raise IsolatorError("\n".join(failures))
        sources = [strip_mount_point(f.get(timeout=0)) for f in futures]
        build = functools.partial(build_launch_info, mounts, sources, flags=self._flags, user=user)
        done = functools.partial(_prepared, container_id, len(mounts))
        if needs_chown(user, self._flags):
            # The user's lookup (NSS) and the chown of a volume's root may block: not here.
            return cast("Future[ContainerLaunchInfo | None]", run_blocking(build).then(done))
        return done(build())

    # -- cleanup -----------------------------------------------------------------------

    def cleanup(self, container_id: ContainerID) -> Future[None]:
        validate_container_id(container_id)
        if self._gates.closed(container_id.value):
            return self._gates.wait(container_id.value, lambda: self.cleanup(container_id))
        return self._cleanup(container_id)

    def _cleanup(self, container_id: ContainerID) -> Future[None]:
        key = container_key(container_id)
        container = self._containers.get(key)
        if container is None:
            logger.debug(
                "Ignoring cleanup request for unknown container %s",
                Shown(container_id),
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
        unmounts: list[tuple[VolumeKey, Callable[[], Future[None]]]] = []
        for volume, holders in self._containers.start_cleanup(key):
            if holders:
                logger.debug(
                    "Cannot unmount volume with driver '%s' and name '%s' for container %s "
                    "since %d other container(s) use it",
                    volume.driver,
                    volume.name,
                    Shown(container_id),
                    holders,
                )
                continue
            logger.info(
                "Unmounting the volume with driver '%s' and name '%s' for container %s",
                volume.driver,
                volume.name,
                Shown(container_id),
            )
            unmounts.append((volume, driver_call(self._client.unmount, volume)))
        self._report()
        finish = functools.partial(self._finish_cleanup, container_id)
        container.cleanup = self._volumes.unmount_all(unmounts, finish)  # on this actor
        return container.cleanup

    def _finish_cleanup(
        self, container_id: ContainerID, futures: list[Future[None]]
    ) -> Future[None]:
        key = container_key(container_id)
        failures = [failure_text(f) for f in futures if not f.is_ready()]
        try:
            if failures:
                # The checkpoint stays, so the next recovery retries the unmounts.
                raise IsolatorError("\n".join(failures))
            failpoints.hit("before-checkpoint-removal")
        except IsolatorError:
            self._containers.strand(key)
            raise
        # Only after the unmounts; the container stays CLEANING (its ID busy) meanwhile.
        removal = self._io.submit(remove_checkpoint, self._root, container_id)
        return after(removal, defer(self.actor_ref, self._removed, key))

    def _removed(self, key: ContainerKey, removal: Future[str]) -> None:
        if not removal.is_ready():
            self._containers.strand(key)
            raise removal.failure() or IsolatorError("the checkpoint removal was discarded")
        self._containers.remove(key)
        self._report()
        logger.info("Removed the checkpoint directory at '%s'", removal.get(timeout=0))

    # -- forget --------------------------------------------------------------------------

    def forget(self, container_id: ContainerID) -> Future[None]:
        """Drop a container's record and checkpoint without unmounting anything."""
        validate_container_id(container_id)
        value = container_id.value
        if self._gates.closed(value):
            return self._gates.wait(value, lambda: self.forget(container_id))
        key = container_key(container_id)
        container = self._containers.get(key)
        if container is not None and container.phase is Phase.CLEANING:
            raise busy_error(container_id, Phase.CLEANING)
        self._gates.close(value)
        removal = self._io.submit(
            forget_checkpoint, self._root, container_id, known=container is not None
        )
        return after(removal, defer(self.actor_ref, self._forgotten, container_id))

    def _forgotten(self, container_id: ContainerID, removal: Future[str]) -> None:
        try:
            if not removal.is_ready():
                raise removal.failure() or IsolatorError("the checkpoint removal was discarded")
            key = container_key(container_id)
            known = self._containers.get(key) is not None
            volumes = self._containers.forget(key).volumes if known else ()
            self._report()
            logger.warning(
                "Forgot container %s without unmounting its volumes %s; removed '%s'",
                format_container_id(container_id),
                [f"{v.driver}/{v.name}" for v in volumes],
                removal.get(timeout=0),
            )
        finally:
            self._gates.open(container_id.value)

    # -- introspection and lifecycle -------------------------------------------------------

    def orphan_cleanups(self) -> Future[list[Future[None]]]:
        """The cleanups ``recover`` started for unknown orphans, once none is pending."""
        if self._gates.closed(EVERYTHING):
            return self._gates.wait(EVERYTHING, self.orphan_cleanups)
        return await_(list(self._orphan_cleanups))

    def usage(self) -> Usage | Future[Usage]:
        """Who holds what, now (after a recovery under way)."""
        if self._gates.closed(EVERYTHING):
            return self._gates.wait(EVERYTHING, self.usage)
        return self._containers.usage()

    def sequence_count(self) -> int:
        """How many volume sequences are alive; for tests and metrics."""
        return self._volumes.sequence_count()

    def on_stop(self) -> None:
        self._volumes.stop()


def _prepared(
    container_id: ContainerID, count: int, launch_info: ContainerLaunchInfo
) -> ContainerLaunchInfo:
    logger.info("Prepared %d docker volume(s) for container %s", count, Shown(container_id))
    return launch_info
