"""The ``volume/csi`` isolator: Mesos 1.11's ``VolumeCSIIsolatorProcess`` (with the part of
its CSI server and v1 volume manager that node volumes need) as an actor.

As ``docker.actor``: one actor owns the containers table (``docker.containers``, reused)
and the volumes' holder counts; each volume's state machine (``machine``) runs on its own
sequence (``volumes``) through the blocking executor, never on the actor. ``prepare``:
validate -> targets -> container checkpoint -> publish each volume -> the launch info of
``launch.launch_info`` (the same rules as Docker volumes). ``cleanup`` releases the
container's holds and unpublishes each volume it was the last holder of.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from collections.abc import Callable
from typing import Any

from actors import Actor, Future, await_, defer
from isolator.common import failpoints
from isolator.common.container_ids import format_container_id, validate_container_id
from isolator.common.errors import IsolatorError, strerror
from isolator.config.flags import Flags
from isolator.csi.client import NodeClient, Report
from isolator.csi.container_volumes import CsiMount, requested_csi_mounts
from isolator.csi.machine import Machine, SecretResolver, load_state
from isolator.csi.paths import PluginPaths, containers_dir
from isolator.csi.plugins import PluginConfigs
from isolator.csi.state import read_container, remove_container, write_container
from isolator.csi.volumes import CsiVolumes, VolumeKey
from isolator.docker.containers import ContainerTable, Phase, Usage, busy_error, container_key
from isolator.launch.launch_info import build_launch_info
from isolator.protos import ContainerConfig, ContainerID, ContainerLaunchInfo, ContainerState

__all__ = ["CsiVolumeIsolatorActor"]

_log = logging.getLogger("isolator")


def _failure_text(future: Future[Any]) -> str:
    return str(future.failure()) if future.is_failed() else "discarded"


class CsiVolumeIsolatorActor(Actor):
    """The actor; reach it through ``CsiVolumeIsolator``, which copies arguments safely."""

    def __init__(
        self,
        flags: Flags,
        root: str,
        plugins: PluginConfigs,
        *,
        boot_id: str,
        resolver: SecretResolver | None = None,
        report: Report | None = None,
    ) -> None:
        super().__init__()
        self._flags = flags
        self._root = root
        self._plugins = plugins
        self._boot_id = boot_id
        self._resolver = resolver
        self._report = report
        self._clients: dict[str, NodeClient] = {}
        self._volumes = CsiVolumes(machine=self._machine, serialize=self._serialize)
        self._containers = ContainerTable(self._volumes)
        self._background: list[Future[None]] = []
        self._recovered = False

    def on_start(self) -> None:
        self._run_here = defer(self.actor_ref, _run)

    def _serialize(self, fn: Callable[[], None]) -> None:
        self._run_here(fn)

    def _machine(self, key: VolumeKey) -> Machine:
        plugin_type, volume_id = key
        try:
            plugin = self._plugins.get(plugin_type)
        except IsolatorError as error:
            paths = PluginPaths(self._root, plugin_type, "default")
            return Machine(
                volume_id,
                paths,
                str(error),
                target_path_exists=False,
                boot_id=self._boot_id,
                resolver=self._resolver,
            )
        info = plugin.info
        root = info.target_path_root if info.HasField("target_path_root") else None
        paths = PluginPaths(self._root, info.type, info.name, root)
        client = self._clients.get(info.type)
        if client is None:
            client = self._clients[info.type] = NodeClient(
                plugin.socket,
                plugin=info.type,
                rpc_timeout=self._flags.csi_rpc_timeout,
                retry_budget=self._flags.csi_retry_budget,
                report=self._report,
            )
        return Machine(
            volume_id,
            paths,
            client,
            target_path_exists=info.target_path_exists,
            boot_id=self._boot_id,
            resolver=self._resolver,
        )

    # -- recover ---------------------------------------------------------------------------

    def recover(self, states: list[ContainerState], orphans: list[ContainerID]) -> None:
        if self._recovered:
            raise IsolatorError(
                "The volume/csi isolator has already recovered; recover() runs once"
            )
        self._recovered = True
        known: set[VolumeKey] = set()
        for given_state in states:
            known.update(self._recover_container(given_state.container_id, "container"))
        for orphan in orphans:
            self._recover_container(orphan, "orphan container")
        directory = containers_dir(self._root)
        entries = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
        given = {c.container_id.value for c in self._containers}
        unknown = [ContainerID(value=e) for e in entries if e not in given]
        for orphan in unknown:
            self._recover_container(orphan, "orphan container")
        self._recover_volumes()
        failpoints.hit("csi-during-recovery")
        for key, state, holders in self._volumes.known():
            if state is None:
                continue
            if holders == 0:  # nobody uses it: release it (finish or reverse what was in flight)
                self._in_background(
                    f"unpublish CSI volume '{key.name}'", self._volumes.unpublish(key)
                )
            elif key in known and state.node_publish_required and state.state != state.PUBLISHED:
                # Mesos's node_publish_required: a volume in use is brought back after a reboot.
                republish = self._volumes.publish(key, None).then(lambda _: None)
                self._in_background(f"republish CSI volume '{key.name}'", republish)
        for orphan in unknown:
            _log.info("Cleaning up CSI volumes for unknown orphaned container %s", orphan.value)
            self._in_background(f"clean up orphan {orphan.value}", self.cleanup(orphan))

    def _recover_container(self, container_id: ContainerID, kind: str) -> list[VolumeKey]:
        try:
            volumes = read_container(self._root, container_id)
        except IsolatorError as error:
            raise IsolatorError(
                f"Failed to recover CSI volumes for {kind} {format_container_id(container_id)}: "
                f"{error}"
            ) from error
        if volumes is None:
            return []
        keys = [VolumeKey(p, v) for p, v in volumes]
        self._containers.add(container_id, keys, maybe_mounted=True)
        return keys

    def _recover_volumes(self) -> None:
        plugins_dir = os.path.join(self._root, "plugins")
        for plugin_type in _listdir(plugins_dir):
            for name in _listdir(os.path.join(plugins_dir, plugin_type)):
                volumes_dir = os.path.join(plugins_dir, plugin_type, name, "volumes")
                for encoded in _listdir(volumes_dir):
                    key = VolumeKey(plugin_type, urllib.parse.unquote(encoded))
                    path = os.path.join(volumes_dir, encoded, "volume.state")
                    plugin = self._plugins.plugins.get(plugin_type)
                    if plugin is not None and plugin.info.name != name:
                        _log.warning(
                            "Skipping '%s': plugin '%s' is now named '%s'",
                            path,
                            plugin_type,
                            plugin.info.name,
                        )
                        continue
                    state = load_state(path, self._boot_id)
                    if state is not None:
                        self._volumes.adopt(key, state)

    def _in_background(self, what: str, future: Future[None]) -> None:
        future.on_failed(lambda error: _log.warning("Failed to %s: %s", what, error))
        self._background.append(future)

    # -- prepare ---------------------------------------------------------------------------

    def prepare(
        self, container_id: ContainerID, config: ContainerConfig
    ) -> Future[ContainerLaunchInfo] | None:
        validate_container_id(container_id)
        key = container_key(container_id)
        previous = self._containers.get(key)
        if previous is not None and previous.phase is not Phase.STRANDED:
            raise busy_error(container_id, previous.phase)
        mounts = requested_csi_mounts(container_id, config, self._flags, self._plugins)
        if not mounts:
            return None
        volumes = dict.fromkeys(m.mount.volume for m in mounts)
        if previous is not None:
            volumes.update(dict.fromkeys(previous.volumes))
        for volume in volumes:
            self._volumes.check(volume)
        # Before any call: after a crash, whatever was published can still be unpublished.
        write_container(self._root, container_id, list(volumes))
        failpoints.hit("csi-after-checkpoint-write")
        self._containers.add(container_id, volumes, maybe_mounted=False)
        futures = [self._volumes.publish(m.mount.volume, m.request) for m in mounts]
        user = config.user if config.HasField("user") else None
        finish = defer(self.actor_ref, self._finish_prepare, container_id, mounts, user)
        return await_(futures).then(finish)

    def _finish_prepare(
        self,
        container_id: ContainerID,
        mounts: list[CsiMount],
        user: str | None,
        futures: list[Future[str]],
    ) -> ContainerLaunchInfo:
        failures = [_failure_text(f) for f in futures if not f.is_ready()]
        if failures:
            raise IsolatorError("\n".join(failures))
        sources = [f.get(timeout=0) for f in futures]
        info = build_launch_info([m.mount for m in mounts], sources, flags=self._flags, user=user)
        _log.info(
            "Prepared %d CSI volume(s) for container %s",
            len(mounts),
            format_container_id(container_id),
        )
        return info

    # -- cleanup ---------------------------------------------------------------------------

    def cleanup(self, container_id: ContainerID) -> Future[None]:
        validate_container_id(container_id)
        key = container_key(container_id)
        container = self._containers.get(key)
        if container is None:
            _log.debug(
                "Ignoring cleanup request for unknown container %s",
                format_container_id(container_id),
            )
            return Future.ready(None)
        if container.phase is Phase.CLEANING:
            assert container.cleanup is not None
            return container.cleanup
        child = self._containers.a_prepared_child(key)
        if child is not None:
            raise IsolatorError(
                f"Failed to clean up container {format_container_id(container_id)}: it has "
                f"child container {format_container_id(child.container_id)} which is not "
                "cleaned up yet"
            )
        unpublishes = []
        for volume, holders in self._containers.start_cleanup(key):
            if holders:
                _log.debug(
                    "Cannot unpublish the volume with plugin '%s' and ID '%s' for "
                    "container %s since %d other container(s) use it",
                    volume.driver,
                    volume.name,
                    format_container_id(container_id),
                    holders,
                )
                continue
            _log.info(
                "Unpublishing the volume with plugin '%s' and ID '%s' for container %s",
                volume.driver,
                volume.name,
                format_container_id(container_id),
            )
            unpublishes.append(self._volumes.unpublish(volume))
        finish = defer(self.actor_ref, self._finish_cleanup, container_id)
        container.cleanup = await_(unpublishes).then(finish)
        return container.cleanup

    def _finish_cleanup(self, container_id: ContainerID, futures: list[Future[None]]) -> None:
        key = container_key(container_id)
        failures = [_failure_text(f) for f in futures if not f.is_ready()]
        try:
            if failures:
                raise IsolatorError("\n".join(failures))  # the checkpoint stays for a retry
            failpoints.hit("csi-before-checkpoint-removal")
            directory = remove_container(self._root, container_id)
        except IsolatorError:
            self._containers.strand(key)
            raise
        self._containers.remove(key)
        _log.info(
            "Removed the container directory at '%s' for container %s",
            directory,
            format_container_id(container_id),
        )

    # -- introspection and lifecycle -------------------------------------------------------

    def background(self) -> Future[list[Future[None]]]:
        """Completes once every unpublish, republish and orphan cleanup ``recover`` started
        has ended."""
        return await_(list(self._background))

    def usage(self) -> Usage:
        return self._containers.usage()

    def volume_states(self) -> dict[str, str]:
        """``plugin/volume ID`` -> its state, for each volume with a state on disk."""
        return {
            f"{key.driver}/{key.name}": state.State.Name(state.state)
            for key, state, _ in self._volumes.known()
            if state is not None
        }

    def sequence_count(self) -> int:
        return self._volumes.sequence_count()

    def on_stop(self) -> None:
        self._volumes.stop()
        for client in self._clients.values():
            client.close()


def _run(fn: Callable[[], None]) -> None:
    fn()


def _listdir(directory: str) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as error:
        raise IsolatorError(f"Unable to list '{directory}': {strerror(error)}") from error
