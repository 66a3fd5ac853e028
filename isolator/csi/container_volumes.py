"""Which CSI volumes a container asks for, checked as Mesos's ``volume/csi`` ``prepare``
checks them (and more: every bad input is refused with a message naming it) before any
directory is made, any checkpoint written or any plugin called."""

from __future__ import annotations

from dataclasses import dataclass

from isolator.common.container_ids import format_container_id
from isolator.common.errors import IsolatorError
from isolator.common.names import printable
from isolator.config.flags import Flags
from isolator.csi.machine import PublishRequest
from isolator.csi.paths import encode_volume_id
from isolator.csi.plugins import PluginConfigs
from isolator.docker.container_volumes import container_info
from isolator.docker.state import VolumeKey
from isolator.launch.launch_info import VolumeMount, check_container_path, mount_target
from isolator.protos import ContainerConfig, ContainerID, ContainerInfo, Volume

__all__ = ["CsiMount", "requested_csi_mounts"]

_ACCESS = Volume.Source.CSIVolume.VolumeCapability.AccessMode
READ_ONLY_MODES = frozenset({_ACCESS.SINGLE_NODE_READER_ONLY, _ACCESS.MULTI_NODE_READER_ONLY})


@dataclass(frozen=True)
class CsiMount:
    mount: VolumeMount  # what build_launch_info binds: volume = (plugin type, volume ID)
    request: PublishRequest


def requested_csi_mounts(
    container_id: ContainerID, config: ContainerConfig, flags: Flags, plugins: PluginConfigs
) -> list[CsiMount]:
    """The container's CSI volumes in order, each with its target made ready; raises
    ``IsolatorError`` (Mesos's texts where Mesos has one)."""
    info = container_info(config)
    if info is None:
        return []
    wanted = [
        v
        for v in info.volumes
        if v.HasField("source") and v.source.type == Volume.Source.CSI_VOLUME
    ]
    if not wanted:
        return []
    if info.type != ContainerInfo.MESOS:
        raise IsolatorError("Can only prepare CSI volumes for a MESOS container")
    container = format_container_id(container_id)
    checked: list[tuple[Volume, VolumeKey, PublishRequest]] = []
    seen: set[VolumeKey] = set()
    for volume in wanted:
        key, request = _checked(volume, container, plugins)
        if key in seen:
            raise IsolatorError(
                f"Found duplicate CSI volume with plugin '{printable(key.driver)}' and volume "
                f"ID '{printable(key.name)}'"
            )
        check_container_path(volume.container_path, container)
        seen.add(key)
        checked.append((volume, key, request))
    return [
        CsiMount(
            VolumeMount(
                key,
                {},
                mount_target(volume.container_path, config, flags),
                volume.mode == Volume.RO,
            ),
            request,
        )
        for volume, key, request in checked
    ]


def _checked(
    volume: Volume, container: str, plugins: PluginConfigs
) -> tuple[VolumeKey, PublishRequest]:
    path = printable(volume.container_path)
    where = f"CSI volume at container path '{path}' of container {container}"
    if not volume.source.HasField("csi_volume"):
        raise IsolatorError(f"The {where} has no 'csi_volume'")
    source = volume.source.csi_volume
    if not source.HasField("static_provisioning"):
        raise IsolatorError(
            f"The {where} has no 'static_provisioning' (only pre-provisioned volumes are "
            "supported, as in Mesos)"
        )
    provisioning = source.static_provisioning
    volume_id = provisioning.volume_id
    shown = printable(volume_id)
    plugins.get(source.plugin_name)  # an unknown or unusable plugin fails here, named
    encode_volume_id(volume_id)  # an ID that cannot be a directory name fails here
    capability = provisioning.volume_capability
    if capability.HasField("block"):
        raise IsolatorError(
            f"CSI volume '{shown}' of plugin '{printable(source.plugin_name)}' is a block "
            "volume: block volumes are not supported (use a mount capability)"
        )
    if not capability.HasField("mount"):
        raise IsolatorError(
            f"CSI volume '{shown}' has no access type: its volume_capability must set 'mount'"
        )
    mode = capability.access_mode.mode
    if not capability.HasField("access_mode") or mode == _ACCESS.UNKNOWN:
        raise IsolatorError(f"CSI volume '{shown}' has no access mode (access_mode.mode)")
    if (mode in READ_ONLY_MODES or provisioning.readonly) and volume.mode == Volume.RW:
        # Mesos's words.
        raise IsolatorError(f"Cannot use the read-only volume '{volume_id}' in read-write mode")
    request = PublishRequest(
        capability=capability,
        readonly=provisioning.readonly or volume.mode == Volume.RO,
        volume_context=dict(provisioning.volume_context),
        stage_secrets=dict(provisioning.node_stage_secrets),
        publish_secrets=dict(provisioning.node_publish_secrets),
    )
    return VolumeKey(source.plugin_name, volume_id), request
