"""The ``docker/volume`` isolator: Mesos's ``DockerVolumeIsolatorProcess`` as an actor.

Every call is a message to one actor, so the isolator's state (which container uses which
volume) is only ever touched by one thread. Driver calls go through one ``Sequence`` per
volume, which keeps mounts and unmounts of a volume in order while different volumes
proceed side by side; the actor itself never waits on a driver.
"""

from __future__ import annotations

import functools
import logging
import os
import pwd
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import pykka

from actors import Actor, Future, Sequence, await_, defer
from isolator.drivers import create_client
from isolator.drivers.base import DriverClient
from isolator.errors import CheckpointError, IsolatorError
from isolator.flags import Flags
from isolator.paths import (
    container_dir,
    format_container_id,
    join,
    validate_container_id,
    volumes_path,
)
from isolator.protos import (
    CommandInfo,
    ContainerConfig,
    ContainerID,
    ContainerInfo,
    ContainerLaunchInfo,
    ContainerState,
    Volume,
)
from isolator.state import VolumeKey, read_volumes, write_volumes

__all__ = [
    "CLONE_NEWNS",
    "MS_BIND",
    "MS_RDONLY",
    "MS_REC",
    "DockerVolumeIsolator",
    "DockerVolumeIsolatorActor",
]

logger = logging.getLogger("isolator")

CLONE_NEWNS = 0x00020000
MS_RDONLY = 1
MS_BIND = 4096
MS_REC = 16384

# A container's identity: its value and its ancestors' (Mesos compares parents too).
_ContainerKey = tuple[str, ...]


def _key(container_id: ContainerID) -> _ContainerKey:
    values: list[str] = []
    current = container_id
    while True:
        values.append(current.value)
        if not current.HasField("parent"):
            return tuple(reversed(values))
        current = current.parent


def _strerror(error: OSError) -> str:
    return error.strerror or str(error)


def _failure_text(future: Future[Any]) -> str:
    return str(future.failure()) if future.is_failed() else "discarded"


@dataclass
class _Info:
    """What the isolator remembers of a container: the volumes it uses, in order."""

    container_id: ContainerID
    volumes: dict[VolumeKey, None] = field(default_factory=dict)


@dataclass
class _VolumeSequence:
    """A volume's sequence and how many of its driver calls are not finished yet."""

    sequence: Sequence
    outstanding: int = 0


@dataclass(frozen=True)
class _Mount:
    volume: VolumeKey
    options: dict[str, str]
    target: str
    read_only: bool


class DockerVolumeIsolatorActor(Actor):
    """The actor; reach it through ``DockerVolumeIsolator``, which copies arguments safely."""

    def __init__(self, flags: Flags, root_dir: str, client: DriverClient) -> None:
        super().__init__()
        self._flags = flags
        self._root = root_dir
        self._client = client
        self._infos: dict[_ContainerKey, _Info] = {}
        self._sequences: dict[VolumeKey, _VolumeSequence] = {}
        self._orphan_cleanups: list[Future[None]] = []

    # -- recover -----------------------------------------------------------------------

    def recover(
        self, states: list[ContainerState], orphans: list[ContainerID]
    ) -> Future[None] | None:
        if not os.path.exists(self._root):
            logger.debug("Skipping recovery: '%s' does not exist", self._root)
            return None
        for state in states:
            self._recover_or_raise(state.container_id, "container")
        for orphan in orphans:
            self._recover_or_raise(orphan, "orphan container")
        try:
            entries = sorted(os.listdir(self._root))
        except OSError as error:
            raise IsolatorError(
                f"Unable to list docker volume checkpoint directory '{self._root}': "
                f"{_strerror(error)}"
            ) from error
        known = {info.container_id.value for info in self._infos.values()}
        unknown = [ContainerID(value=entry) for entry in entries if entry not in known]
        # All unknown orphans are recovered before any is cleaned up, so that orphans
        # sharing a volume count each other and only the last one unmounts it. (Mesos
        # interleaves the two and unmounts such a volume once per orphan.)
        for orphan in unknown:
            self._recover_or_raise(orphan, "orphan container")
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
        return None

    def _recover_or_raise(self, container_id: ContainerID, kind: str) -> None:
        try:
            validate_container_id(container_id)
            self._recover_container(container_id)
        except IsolatorError as error:
            raise IsolatorError(
                f"Failed to recover docker volumes for {kind} "
                f"{format_container_id(container_id)}: {error}"
            ) from error

    def _recover_container(self, container_id: ContainerID) -> None:
        if not os.path.exists(container_dir(self._root, container_id)):
            return  # Cleaned up already, or the agent died before prepare made the dir.
        path = volumes_path(self._root, container_id)
        volumes = read_volumes(path)
        if not volumes:
            # A missing or empty file means no volume was mounted (MESOS-9507).
            logger.warning(
                "The docker volumes checkpointed at '%s' for container %s %s",
                path,
                format_container_id(container_id),
                "does not exist" if volumes is None else "is empty",
            )
        info = _Info(_copy(container_id), dict.fromkeys(volumes or []))
        self._infos[_key(container_id)] = info

    # -- prepare -----------------------------------------------------------------------

    def prepare(
        self, container_id: ContainerID, config: ContainerConfig
    ) -> Future[ContainerLaunchInfo] | None:
        validate_container_id(container_id)
        container_info = _container_info(config)
        if container_info is None:
            return None
        if container_info.type != ContainerInfo.MESOS:
            raise IsolatorError("Can only prepare docker volume driver for a MESOS container")

        mounts: list[_Mount] = []
        seen: set[VolumeKey] = set()
        for volume in container_info.volumes:
            if not volume.HasField("source"):
                continue
            if volume.source.type != Volume.Source.DOCKER_VOLUME:
                logger.debug(
                    "Ignored volume type '%s' for container %s",
                    Volume.Source.Type.Name(volume.source.type),
                    format_container_id(container_id),
                )
                continue
            docker_volume = volume.source.docker_volume
            if not docker_volume.HasField("driver"):
                raise IsolatorError(
                    f"The volume driver is not specified for volume '{docker_volume.name}' "
                    f"with container {format_container_id(container_id)}"
                )
            key = VolumeKey(docker_volume.driver, docker_volume.name)
            if key in seen:
                raise IsolatorError(
                    f"Found duplicate docker volume with driver '{key.driver}' "
                    f"and name '{key.name}'"
                )
            options = {p.key: p.value for p in docker_volume.driver_options.parameter}
            target = self._make_target(volume.container_path, config)
            mounts.append(_Mount(key, options, target, volume.mode == Volume.RO))
            seen.add(key)

        if not mounts:
            return None

        directory = container_dir(self._root, container_id)
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
        except OSError as error:
            raise IsolatorError(
                f"Failed to create the container directory at '{directory}': "
                f"{_strerror(error)}"
            ) from error
        path = volumes_path(self._root, container_id)
        try:
            # Before any mount: after a crash, whatever was mounted can still be unmounted.
            write_volumes(path, [m.volume for m in mounts])
        except CheckpointError as error:
            raise IsolatorError(
                f"Failed to checkpoint docker volumes at '{path}': {error}"
            ) from error

        # Known before the mounts finish, so a failed prepare still gets all unmounted.
        self._infos[_key(container_id)] = _Info(
            _copy(container_id), dict.fromkeys(m.volume for m in mounts)
        )
        futures = [
            self._enqueue(m.volume, _bind(self._client.mount, m.volume, m.options))
            for m in mounts
        ]
        user = config.user if config.HasField("user") else None
        finish = defer(self.actor_ref, self._finish_prepare, container_id, mounts, user)
        return await_(futures).then(finish)

    def _make_target(self, container_path: str, config: ContainerConfig) -> str:
        rootfs = config.rootfs if config.HasField("rootfs") else None
        if container_path.startswith("/"):
            if rootfs is None:
                if not os.path.lexists(container_path):
                    raise IsolatorError(
                        f"Absolute container path '{container_path}' does not exist"
                    )
                return container_path
            target = join(rootfs, container_path)
            _make_mount_dir(target)
            return target
        # Relative paths live in the sandbox. With a rootfs the host sandbox is bind
        # mounted into it later, so the directory is made in the host sandbox.
        mount_point = join(config.directory, container_path)
        _make_mount_dir(mount_point)
        if rootfs is None:
            return mount_point
        return join(rootfs, self._flags.sandbox_directory, container_path)

    def _finish_prepare(
        self,
        container_id: ContainerID,
        mounts: list[_Mount],
        user: str | None,
        futures: list[Future[str]],
    ) -> ContainerLaunchInfo:
        failures = [_failure_text(f) for f in futures if not f.is_ready()]
        if failures:
            raise IsolatorError("\n".join(failures))
        sources = [f.get(timeout=0).strip(" \t\n\r") for f in futures]

        launch_info = ContainerLaunchInfo()
        launch_info.clone_namespaces.append(CLONE_NEWNS)
        for mount, source in zip(mounts, sources, strict=True):
            if self._flags.docker_volume_chown and user is not None and user != "root":
                _chown(user, source)
            if self._flags.docker_volume_launch_style == "pre_exec_commands":
                _add_mount_commands(launch_info, source, mount)
            else:
                launch_info.mounts.add(
                    source=source,
                    target=mount.target,
                    flags=MS_BIND | MS_REC | (MS_RDONLY if mount.read_only else 0),
                )
        logger.info(
            "Prepared %d docker volume(s) for container %s",
            len(mounts),
            format_container_id(container_id),
        )
        return launch_info

    # -- cleanup -----------------------------------------------------------------------

    def cleanup(self, container_id: ContainerID) -> Future[None]:
        validate_container_id(container_id)
        key = _key(container_id)
        info = self._infos.get(key)
        if info is None:
            logger.debug(
                "Ignoring cleanup request for unknown container %s",
                format_container_id(container_id),
            )
            return Future.ready(None)
        for child_key, child in self._infos.items():
            if child_key[:-1] == key:
                raise IsolatorError(
                    f"Failed to clean up container {format_container_id(container_id)}: "
                    f"it has child container {format_container_id(child.container_id)} "
                    "which is not cleaned up yet"
                )

        references: dict[VolumeKey, int] = {}
        for other in self._infos.values():
            for volume in other.volumes:
                references[volume] = references.get(volume, 0) + 1

        # Forgotten before the unmounts finish, so a failed unmount leaves no stale
        # reference behind (MESOS-10126).
        del self._infos[key]
        futures: list[Future[None]] = []
        for volume in info.volumes:
            if references[volume] > 1:
                logger.debug(
                    "Cannot unmount volume with driver '%s' and name '%s' for container %s "
                    "since its reference count is %d",
                    volume.driver,
                    volume.name,
                    format_container_id(container_id),
                    references[volume],
                )
                continue
            logger.info(
                "Unmounting the volume with driver '%s' and name '%s' for container %s",
                volume.driver,
                volume.name,
                format_container_id(container_id),
            )
            futures.append(self._enqueue(volume, _bind(self._client.unmount, volume)))
        finish = defer(self.actor_ref, self._finish_cleanup, container_id)
        return await_(futures).then(finish)

    def _finish_cleanup(self, container_id: ContainerID, futures: list[Future[None]]) -> None:
        failures = [_failure_text(f) for f in futures if not f.is_ready()]
        if failures:
            # The checkpoint stays, so the next recovery retries the unmounts.
            raise IsolatorError("\n".join(failures))
        directory = container_dir(self._root, container_id)
        try:
            shutil.rmtree(directory)
        except OSError as error:
            raise IsolatorError(
                f"Failed to remove the checkpoint directory at '{directory}': "
                f"{_strerror(error)}"
            ) from error
        logger.info("Removed the checkpoint directory at '%s'", directory)

    # -- per-volume sequences ------------------------------------------------------------

    def _enqueue(self, volume: VolumeKey, call: Callable[[], Future[Any]]) -> Future[Any]:
        entry = self._sequences.get(volume)
        if entry is None:
            entry = self._sequences[volume] = _VolumeSequence(Sequence())
        entry.outstanding += 1
        # The driver is called on the volume's own sequence thread: even a driver that
        # blocks only holds up that one volume.
        future = entry.sequence.add(call)
        done = defer(self.actor_ref, self._call_finished, volume, entry)
        future.on_any(lambda _: done())
        return future

    def _call_finished(self, volume: VolumeKey, entry: _VolumeSequence) -> None:
        entry.outstanding -= 1
        if entry.outstanding or self._sequences.get(volume) is not entry:
            return
        if any(volume in info.volumes for info in self._infos.values()):
            return
        # Idle and unused: Mesos keeps every sequence forever; we free its thread.
        del self._sequences[volume]
        entry.sequence.stop()

    def orphan_cleanups(self) -> Future[list[Future[None]]]:
        """The cleanups ``recover`` started for unknown orphans, once none is pending."""
        return await_(list(self._orphan_cleanups))

    def sequence_count(self) -> int:
        """How many volume sequences (threads) are alive; for tests and metrics."""
        return len(self._sequences)

    def on_stop(self) -> None:
        for entry in self._sequences.values():
            entry.sequence.stop()
        self._sequences.clear()


def _log_orphan_failure(entry: str, error: BaseException) -> None:
    logger.warning("Failed to clean up unknown orphan container %s: %s", entry, error)


def _bind(method: Callable[..., Future[Any]], volume: VolumeKey, *args: Any) -> Callable[
    [], Future[Any]
]:
    return lambda: method(volume.driver, volume.name, *args)


def _copy(container_id: ContainerID) -> ContainerID:
    copy = ContainerID()
    copy.CopyFrom(container_id)
    return copy


def _container_info(config: ContainerConfig) -> ContainerInfo | None:
    if config.HasField("container_info"):
        return config.container_info
    # The original isolator read the executor's container (before Mesos 1.5).
    if config.HasField("executor_info") and config.executor_info.HasField("container"):
        return config.executor_info.container
    return None


def _make_mount_dir(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise IsolatorError(
            f"Failed to create the target of the mount at '{path}': {_strerror(error)}"
        ) from error


def _chown(user: str, source: str) -> None:
    logger.info("Changing the ownership of docker volume '%s' to user '%s'", source, user)
    try:
        entry = pwd.getpwnam(user)
    except KeyError as error:
        raise IsolatorError(
            f"Failed to set '{user}' as the docker volume '{source}' owner: "
            f"No such user '{user}'"
        ) from error
    try:
        os.lchown(source, entry.pw_uid, entry.pw_gid)
    except OSError as error:
        raise IsolatorError(
            f"Failed to set '{user}' as the docker volume '{source}' owner: "
            f"{_strerror(error)}"
        ) from error


def _add_mount_commands(launch_info: ContainerLaunchInfo, source: str, mount: _Mount) -> None:
    """The original isolator's launch form: ``mount`` commands run before the task."""
    launch_info.pre_exec_commands.append(
        CommandInfo(
            shell=False,
            value="mount",
            arguments=["mount", "-n", "--rbind", source, mount.target],
        )
    )
    if mount.read_only:
        launch_info.pre_exec_commands.append(
            CommandInfo(
                shell=False,
                value="mount",
                arguments=["mount", "-n", "-o", "remount,bind,ro", mount.target],
            )
        )


class DockerVolumeIsolator:
    """The public handle: each call is a message to the isolator actor and returns a Future.

    Arguments are copied before they are sent, so callers may reuse their messages.
    """

    def __init__(
        self,
        actor_ref: pykka.ActorRef[DockerVolumeIsolatorActor],
        *,
        owned_client: DriverClient | None,
    ) -> None:
        self._ref = actor_ref
        self._proxy = actor_ref.proxy()
        self._owned_client = owned_client

    @classmethod
    def create(cls, flags: Flags, client: DriverClient | None = None) -> DockerVolumeIsolator:
        """Start an isolator; with no ``client``, check the host and build one from ``flags``.

        Passing a client skips the host checks (Mesos's ``_create``): that is how tests
        and embedders inject a driver.
        """
        owned: DriverClient | None = None
        if client is None:
            client = owned = create_client(flags)
        try:
            os.makedirs(flags.docker_volume_checkpoint_dir, mode=0o755, exist_ok=True)
        except OSError as error:
            raise IsolatorError(
                "Failed to create docker volume information root directory at "
                f"'{flags.docker_volume_checkpoint_dir}': {_strerror(error)}"
            ) from error
        root = os.path.realpath(flags.docker_volume_checkpoint_dir)
        ref = DockerVolumeIsolatorActor.start(flags, root, client)
        return cls(ref, owned_client=owned)

    def recover(
        self, states: Iterable[ContainerState], orphans: Iterable[ContainerID]
    ) -> Future[None]:
        return _ask(self._proxy.recover([_clone(s) for s in states], [_copy(o) for o in orphans]))

    def prepare(
        self, container_id: ContainerID, container_config: ContainerConfig
    ) -> Future[ContainerLaunchInfo | None]:
        return _ask(self._proxy.prepare(_copy(container_id), _clone(container_config)))

    def cleanup(self, container_id: ContainerID) -> Future[None]:
        return _ask(self._proxy.cleanup(_copy(container_id)))

    def orphan_cleanups(self) -> Future[list[Future[None]]]:
        """Completes once every unknown-orphan cleanup started by ``recover`` has ended.

        Mesos fires those cleanups and forgets them; this lets an embedder wait for them
        and see how each ended.
        """
        return _ask(self._proxy.orphan_cleanups())

    def sequence_count(self) -> Future[int]:
        """How many per-volume sequences are alive (idle, unused ones are stopped)."""
        return _ask(self._proxy.sequence_count())

    def stop(self, *, timeout: float | None = 10.0) -> None:
        """Stop the actor and its sequences; checkpoints stay (as after an agent crash)."""
        self._ref.stop(timeout=timeout)
        if self._owned_client is not None:
            self._owned_client.close()


def _ask(future: Any) -> Future[Any]:
    # pykka types proxy calls loosely; ``actors.Actor`` makes them ``actors.Future``s.
    return cast("Future[Any]", future)


def _clone(message: Any) -> Any:
    copy = type(message)()
    copy.CopyFrom(message)
    return copy
