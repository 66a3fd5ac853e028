"""The CSI messages match Mesos 1.11's and the CSI spec's field numbers."""

from __future__ import annotations

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor

from isolator.messages import csi_volume
from isolator.protos import (
    CSIPluginContainerInfo,
    CSIPluginEndpoint,
    CSIPluginInfo,
    CSIVolume,
    CSIVolumes,
    Secret,
    Volume,
    VolumeState,
    csi_pb2_grpc,
)
from isolator.protos import csi_pb2 as csi

CSI = Volume.Source.CSIVolume
CAPABILITY = CSI.VolumeCapability

FIELDS: list[tuple[Descriptor, str, int]] = [
    (Volume.Source.DESCRIPTOR, "csi_volume", 6),
    (CSI.DESCRIPTOR, "plugin_name", 1),
    (CSI.DESCRIPTOR, "static_provisioning", 2),
    (CSI.StaticProvisioning.DESCRIPTOR, "volume_id", 1),
    (CSI.StaticProvisioning.DESCRIPTOR, "volume_capability", 2),
    (CSI.StaticProvisioning.DESCRIPTOR, "node_stage_secrets", 3),
    (CSI.StaticProvisioning.DESCRIPTOR, "node_publish_secrets", 4),
    (CSI.StaticProvisioning.DESCRIPTOR, "volume_context", 5),
    (CAPABILITY.DESCRIPTOR, "block", 1),
    (CAPABILITY.DESCRIPTOR, "mount", 2),
    (CAPABILITY.DESCRIPTOR, "access_mode", 3),
    (CAPABILITY.MountVolume.DESCRIPTOR, "fs_type", 1),
    (CAPABILITY.MountVolume.DESCRIPTOR, "mount_flags", 2),
    (CAPABILITY.AccessMode.DESCRIPTOR, "mode", 1),
    (Secret.DESCRIPTOR, "type", 1),
    (Secret.DESCRIPTOR, "reference", 2),
    (Secret.DESCRIPTOR, "value", 3),
    (CSIPluginContainerInfo.DESCRIPTOR, "services", 1),
    (CSIPluginEndpoint.DESCRIPTOR, "csi_service", 1),
    (CSIPluginEndpoint.DESCRIPTOR, "endpoint", 2),
    (CSIPluginInfo.DESCRIPTOR, "type", 1),
    (CSIPluginInfo.DESCRIPTOR, "name", 2),
    (CSIPluginInfo.DESCRIPTOR, "containers", 3),
    (CSIPluginInfo.DESCRIPTOR, "endpoints", 4),
    (CSIPluginInfo.DESCRIPTOR, "target_path_root", 5),
    (CSIPluginInfo.DESCRIPTOR, "target_path_exists", 6),
    (VolumeState.DESCRIPTOR, "state", 1),
    (VolumeState.DESCRIPTOR, "volume_capability", 2),
    (VolumeState.DESCRIPTOR, "volume_context", 3),
    (VolumeState.DESCRIPTOR, "boot_id", 5),
    (VolumeState.DESCRIPTOR, "node_publish_required", 7),
    (VolumeState.DESCRIPTOR, "pre_provisioned", 8),
    (VolumeState.DESCRIPTOR, "readonly", 9),
    (VolumeState.DESCRIPTOR, "node_stage_secrets", 10),
    (VolumeState.DESCRIPTOR, "node_publish_secrets", 11),
    (CSIVolume.DESCRIPTOR, "plugin_name", 1),
    (CSIVolume.DESCRIPTOR, "id", 2),
    (CSIVolumes.DESCRIPTOR, "volumes", 1),
    # The spec's csi.v1 (csi.proto)
    (csi.NodeStageVolumeRequest.DESCRIPTOR, "volume_id", 1),
    (csi.NodeStageVolumeRequest.DESCRIPTOR, "publish_context", 2),
    (csi.NodeStageVolumeRequest.DESCRIPTOR, "staging_target_path", 3),
    (csi.NodeStageVolumeRequest.DESCRIPTOR, "volume_capability", 4),
    (csi.NodeStageVolumeRequest.DESCRIPTOR, "secrets", 5),
    (csi.NodeStageVolumeRequest.DESCRIPTOR, "volume_context", 6),
    (csi.NodeUnstageVolumeRequest.DESCRIPTOR, "volume_id", 1),
    (csi.NodeUnstageVolumeRequest.DESCRIPTOR, "staging_target_path", 2),
    (csi.NodePublishVolumeRequest.DESCRIPTOR, "volume_id", 1),
    (csi.NodePublishVolumeRequest.DESCRIPTOR, "publish_context", 2),
    (csi.NodePublishVolumeRequest.DESCRIPTOR, "staging_target_path", 3),
    (csi.NodePublishVolumeRequest.DESCRIPTOR, "target_path", 4),
    (csi.NodePublishVolumeRequest.DESCRIPTOR, "volume_capability", 5),
    (csi.NodePublishVolumeRequest.DESCRIPTOR, "readonly", 6),
    (csi.NodePublishVolumeRequest.DESCRIPTOR, "secrets", 7),
    (csi.NodePublishVolumeRequest.DESCRIPTOR, "volume_context", 8),
    (csi.NodeUnpublishVolumeRequest.DESCRIPTOR, "volume_id", 1),
    (csi.NodeUnpublishVolumeRequest.DESCRIPTOR, "target_path", 2),
    (csi.NodeGetCapabilitiesResponse.DESCRIPTOR, "capabilities", 1),
    (csi.NodeServiceCapability.DESCRIPTOR, "rpc", 1),
    (csi.NodeGetInfoResponse.DESCRIPTOR, "node_id", 1),
    (csi.NodeGetInfoResponse.DESCRIPTOR, "max_volumes_per_node", 2),
    (csi.NodeGetInfoResponse.DESCRIPTOR, "accessible_topology", 3),
    (csi.GetPluginInfoResponse.DESCRIPTOR, "name", 1),
    (csi.GetPluginInfoResponse.DESCRIPTOR, "vendor_version", 2),
    (csi.GetPluginInfoResponse.DESCRIPTOR, "manifest", 3),
    (csi.ProbeResponse.DESCRIPTOR, "ready", 1),
    (csi.VolumeCapability.DESCRIPTOR, "block", 1),
    (csi.VolumeCapability.DESCRIPTOR, "mount", 2),
    (csi.VolumeCapability.DESCRIPTOR, "access_mode", 3),
    (csi.VolumeCapability.MountVolume.DESCRIPTOR, "volume_mount_group", 3),
]


@pytest.mark.parametrize(
    ("descriptor", "name", "number"), FIELDS, ids=[f"{d.full_name}.{n}" for d, n, _ in FIELDS]
)
def test_field_numbers(descriptor: Descriptor, name: str, number: int) -> None:
    assert descriptor.fields_by_name[name].number == number


def test_enums_and_packages() -> None:
    assert dict(VolumeState.State.items()) == {
        "UNKNOWN": 0, "CREATED": 1, "NODE_READY": 2, "VOL_READY": 8, "PUBLISHED": 3,
        "CONTROLLER_PUBLISH": 4, "CONTROLLER_UNPUBLISH": 5, "NODE_STAGE": 9,
        "NODE_UNSTAGE": 10, "NODE_PUBLISH": 6, "NODE_UNPUBLISH": 7,
    }  # fmt: skip
    assert dict(CSIPluginContainerInfo.Service.items()) == {
        "UNKNOWN": 0, "CONTROLLER_SERVICE": 1, "NODE_SERVICE": 2,
    }  # fmt: skip
    assert csi.NodeServiceCapability.RPC.STAGE_UNSTAGE_VOLUME == 1
    assert VolumeState.DESCRIPTOR.full_name == "mesos.csi.state.VolumeState"
    assert CSIVolumes.DESCRIPTOR.full_name == "mesos.internal.slave.CSIVolumes"
    assert csi.NodePublishVolumeRequest.DESCRIPTOR.full_name == "csi.v1.NodePublishVolumeRequest"
    assert CSIPluginInfo().name == "default"
    names = {m.name for m in csi.DESCRIPTOR.services_by_name["Node"].methods}
    assert names == {
        "NodeStageVolume", "NodeUnstageVolume", "NodePublishVolume",
        "NodeUnpublishVolume", "NodeGetCapabilities", "NodeGetInfo",
    }  # fmt: skip
    assert hasattr(csi_pb2_grpc, "NodeStub")
    assert hasattr(csi_pb2_grpc, "IdentityStub")


def test_plugin_info_parses_from_mesos_json() -> None:
    document = {
        "type": "org.example.nfs",
        "endpoints": [{"csi_service": "NODE_SERVICE", "endpoint": "unix:///run/nfs/csi.sock"}],
    }
    info = json_format.ParseDict(document, CSIPluginInfo())
    assert info.type == "org.example.nfs"
    assert info.name == "default"
    assert info.endpoints[0].csi_service == CSIPluginContainerInfo.NODE_SERVICE
    assert info.endpoints[0].endpoint == "unix:///run/nfs/csi.sock"


def test_csi_volume_helper_builds_mesos_message() -> None:
    volume = csi_volume(
        "org.example.nfs",
        "vol-1",
        "data",
        mode="RO",
        access_mode="MULTI_NODE_READER_ONLY",
        fs_type="ext4",
        mount_flags=("noatime",),
        readonly=True,
        volume_context={"k": "v"},
    )
    assert volume.container_path == "data"
    assert volume.mode == Volume.RO
    assert volume.source.type == Volume.Source.CSI_VOLUME
    source = volume.source.csi_volume
    assert source.plugin_name == "org.example.nfs"
    provisioning = source.static_provisioning
    assert provisioning.volume_id == "vol-1"
    capability = provisioning.volume_capability
    assert capability.WhichOneof("access_type") == "mount"
    assert capability.mount.fs_type == "ext4"
    assert list(capability.mount.mount_flags) == ["noatime"]
    assert capability.access_mode.mode == CAPABILITY.AccessMode.MULTI_NODE_READER_ONLY
    assert provisioning.readonly is True
    assert dict(provisioning.volume_context) == {"k": "v"}
    assert volume.IsInitialized()


def test_csi_volume_helper_defaults() -> None:
    volume = csi_volume("p", "v", "/mnt")
    provisioning = volume.source.csi_volume.static_provisioning
    assert volume.mode == Volume.RW
    writer = CAPABILITY.AccessMode.SINGLE_NODE_WRITER
    assert provisioning.volume_capability.access_mode.mode == writer
    assert provisioning.volume_capability.HasField("mount")
    assert not provisioning.volume_capability.mount.HasField("fs_type")
    assert not provisioning.HasField("readonly")
    with pytest.raises(ValueError, match="EVERYWHERE"):
        csi_volume("p", "v", "/mnt", access_mode="EVERYWHERE")
