"""The reference CSI plugin against the spec's node rules, with real bind mounts in the
plugin's own mount namespace (the host's mount table is never touched)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator

import grpc
import pytest

from isolator.protos import csi_pb2 as csi
from tests.support.csi_plugin import PluginProcess, running_csi_plugin, short_tmp

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root"),
]

MOUNT = csi.VolumeCapability(
    mount=csi.VolumeCapability.MountVolume(),
    access_mode=csi.VolumeCapability.AccessMode(
        mode=csi.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
    ),
)


@pytest.fixture
def plugin() -> Iterator[PluginProcess]:
    with short_tmp("csi-plugin-") as workdir, running_csi_plugin(workdir) as running:
        (running.root / "vol").mkdir()
        (running.root / "vol" / "data").write_text("hello")
        yield running


def _paths(plugin: PluginProcess) -> tuple[str, str]:
    staging = plugin.root.parent / "staging"
    staging.mkdir(exist_ok=True)
    return str(staging), str(plugin.root.parent / "target")


def _stage(
    plugin: PluginProcess, staging: str, volume_id: str = "vol", cap: csi.VolumeCapability = MOUNT
) -> None:
    request = csi.NodeStageVolumeRequest(
        volume_id=volume_id, staging_target_path=staging, volume_capability=cap
    )
    plugin.node().NodeStageVolume(request, timeout=10)


def _publish(
    plugin: PluginProcess,
    staging: str,
    target: str,
    *,
    readonly: bool = False,
    volume_id: str = "vol",
) -> None:
    request = csi.NodePublishVolumeRequest(
        volume_id=volume_id,
        staging_target_path=staging,
        target_path=target,
        volume_capability=MOUNT,
        readonly=readonly,
    )
    plugin.node().NodePublishVolume(request, timeout=10)


def _code(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    error = caught.value
    assert isinstance(error, grpc.Call)
    return error.code(), error.details() or ""


def _in_namespace(plugin: PluginProcess, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*plugin.nsenter(), *command], capture_output=True, text=True, timeout=10, check=False
    )


def test_identity_and_capabilities(plugin: PluginProcess) -> None:
    info = plugin.identity().GetPluginInfo(csi.GetPluginInfoRequest(), timeout=10)
    assert info.name == "isolator.csi.directory"
    assert plugin.identity().Probe(csi.ProbeRequest(), timeout=10).ready.value is True
    caps = plugin.node().NodeGetCapabilities(csi.NodeGetCapabilitiesRequest(), timeout=10)
    assert [c.rpc.type for c in caps.capabilities] == [
        csi.NodeServiceCapability.RPC.STAGE_UNSTAGE_VOLUME
    ]
    assert plugin.node().NodeGetInfo(csi.NodeGetInfoRequest(), timeout=10).node_id


def test_stage_and_publish_are_real_bind_mounts_and_idempotent(plugin: PluginProcess) -> None:
    staging, target = _paths(plugin)
    for _ in range(2):  # a repeat succeeds and mounts nothing more
        _stage(plugin, staging)
        _publish(plugin, staging, target)
    assert plugin.mounts_under(plugin.root.parent) == [staging, target]
    assert _in_namespace(plugin, "cat", f"{target}/data").stdout == "hello"
    assert _in_namespace(plugin, "sh", "-c", f"echo new > {target}/written").returncode == 0
    assert (plugin.root / "vol" / "written").read_text() == "new\n"  # the volume's directory
    for _ in range(2):
        plugin.node().NodeUnpublishVolume(
            csi.NodeUnpublishVolumeRequest(volume_id="vol", target_path=target), timeout=10
        )
    assert not os.path.exists(target)  # the plugin removes the target it made
    for _ in range(2):
        plugin.node().NodeUnstageVolume(
            csi.NodeUnstageVolumeRequest(volume_id="vol", staging_target_path=staging), timeout=10
        )
    assert plugin.mounts_under(plugin.root.parent) == []
    assert json.loads(plugin.state.read_text()) == {"volumes": {}}


def test_readonly_publish_refuses_writes(plugin: PluginProcess) -> None:
    staging, target = _paths(plugin)
    _stage(plugin, staging)
    _publish(plugin, staging, target, readonly=True)
    done = _in_namespace(plugin, "sh", "-c", f"echo x > {target}/nope")
    assert done.returncode != 0
    assert "Read-only file system" in done.stderr
    assert not (plugin.root / "vol" / "nope").exists()
    code, _ = _code(lambda: _publish(plugin, staging, target, readonly=False))
    assert code == grpc.StatusCode.ALREADY_EXISTS  # an incompatible repeat


def test_unknown_volume_is_not_found_for_every_call(plugin: PluginProcess) -> None:
    staging, target = _paths(plugin)
    node = plugin.node()
    calls = [
        lambda: _stage(plugin, staging, "ghost"),
        lambda: _publish(plugin, staging, target, volume_id="ghost"),
        lambda: node.NodeUnpublishVolume(
            csi.NodeUnpublishVolumeRequest(volume_id="ghost", target_path=target), timeout=10
        ),
        lambda: node.NodeUnstageVolume(
            csi.NodeUnstageVolumeRequest(volume_id="ghost", staging_target_path=staging), timeout=10
        ),
    ]
    for call in calls:
        assert _code(call) == (grpc.StatusCode.NOT_FOUND, "Volume 'ghost' does not exist")


def test_bad_requests_are_invalid_arguments(plugin: PluginProcess) -> None:
    staging, _ = _paths(plugin)
    block = csi.VolumeCapability(
        block=csi.VolumeCapability.BlockVolume(), access_mode=MOUNT.access_mode
    )
    assert _code(lambda: _stage(plugin, staging, ""))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: _stage(plugin, staging, "../etc"))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: _stage(plugin, "relative"))[0] == grpc.StatusCode.INVALID_ARGUMENT
    code, details = _code(lambda: _stage(plugin, staging, cap=block))
    assert (code, "block volumes" in details) == (grpc.StatusCode.INVALID_ARGUMENT, True)
    no_capability = csi.NodeStageVolumeRequest(volume_id="vol", staging_target_path=staging)
    code, details = _code(lambda: plugin.node().NodeStageVolume(no_capability, timeout=10))
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "volume_capability is required")
    assert plugin.mounts_under(plugin.root.parent) == []


def test_publish_before_stage_is_a_failed_precondition(plugin: PluginProcess) -> None:
    staging, target = _paths(plugin)
    code, details = _code(lambda: _publish(plugin, staging, target))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "is not staged" in details
    _stage(plugin, staging)
    other = str(plugin.root.parent / "other-staging")
    os.mkdir(other)
    assert _code(lambda: _stage(plugin, other))[0] == grpc.StatusCode.ALREADY_EXISTS


def test_an_oversized_request_is_refused(plugin: PluginProcess) -> None:
    staging, _ = _paths(plugin)
    request = csi.NodeStageVolumeRequest(
        volume_id="vol", staging_target_path=staging, volume_capability=MOUNT
    )
    request.volume_context["big"] = "x" * (128 * 1024)
    code, _ = _code(lambda: plugin.node().NodeStageVolume(request, timeout=10))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert plugin.mounts_under(plugin.root.parent) == []


def test_state_survives_a_restart() -> None:
    with short_tmp("csi-restart-") as workdir:
        with running_csi_plugin(workdir) as first:
            (first.root / "vol").mkdir()
            staging, target = _paths(first)
            _stage(first, staging)
            _publish(first, staging, target)
        # The namespace (and its mounts) died with the process; the record did not.
        with running_csi_plugin(workdir) as second:
            assert "vol" in json.loads(second.state.read_text())["volumes"]
            assert second.mounts_under(workdir) == []
            code, details = _code(lambda: _publish(second, staging, target))
            assert code == grpc.StatusCode.FAILED_PRECONDITION  # staged, but not mounted
            assert "stage it again" in details
            _stage(second, staging)  # a repeat redoes the lost mount
            _publish(second, staging, target)
            assert second.mounts_under(workdir) == [staging, target]
            second.node().NodeUnpublishVolume(
                csi.NodeUnpublishVolumeRequest(volume_id="vol", target_path=target), timeout=10
            )
            second.node().NodeUnstageVolume(
                csi.NodeUnstageVolumeRequest(volume_id="vol", staging_target_path=staging),
                timeout=10,
            )
            assert second.mounts_under(workdir) == []
