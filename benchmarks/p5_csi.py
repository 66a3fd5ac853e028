"""P5 CSI: what the CSI isolator adds to the CSI calls it must make.

One repeat: N volumes of the reference CSI plugin (``isolator-csi-plugin``, real bind
mounts in a private mount namespace of its own, so it needs root), each used by its own
container, with the isolator's state on tmpfs:

- bare: a loop making the same gRPC calls one after another on one channel (one
  ``NodeGetCapabilities``, then per volume ``NodeStageVolume`` and ``NodePublishVolume``,
  then ``NodeUnpublishVolume`` and ``NodeUnstageVolume``), making the same directories;
- isolator: ``CsiVolumeIsolator`` ``prepare`` of all N in flight, then ``cleanup`` of all N
  (checkpoints and volume states written durably before each call).

The figure is ``isolator seconds / bare seconds`` (target <= 1.3: issue 19). A warm-up of
5 volumes through both comes first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc

from actors import collect
from benchmarks.harness import Check, Options, scratch_dir, timed
from isolator import CsiVolumeIsolator, Flags
from isolator.messages import container_config, container_id, csi_volume
from isolator.protos import csi_pb2 as csi
from isolator.protos import csi_pb2_grpc

__all__ = ["checks", "measure"]

PLUGIN = "bench.csi"
WAIT = 120.0
CAPABILITY = csi.VolumeCapability(
    mount=csi.VolumeCapability.MountVolume(),
    access_mode=csi.VolumeCapability.AccessMode(
        mode=csi.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
    ),
)


def checks(options: Options) -> list[Check]:
    count = options.size(200)
    return [
        Check(
            "csi",
            f"P5 CSI prepare+cleanup vs bare gRPC loop, {count} volumes",
            1.3,
            detail="{csi_bare_s:.3f} s bare, {csi_isolator_s:.3f} s isolator",
        ),
    ]


def _bare(node: csi_pb2_grpc.NodeStub, root: Path, volumes: list[str]) -> None:
    node.NodeGetCapabilities(csi.NodeGetCapabilitiesRequest(), timeout=WAIT)
    for volume in volumes:
        mount = root / volume
        (mount / "staging").mkdir(parents=True)
        node.NodeStageVolume(
            csi.NodeStageVolumeRequest(
                volume_id=volume,
                staging_target_path=str(mount / "staging"),
                volume_capability=CAPABILITY,
            ),
            timeout=WAIT,
        )
        node.NodePublishVolume(
            csi.NodePublishVolumeRequest(
                volume_id=volume,
                staging_target_path=str(mount / "staging"),
                target_path=str(mount / "target"),
                volume_capability=CAPABILITY,
            ),
            timeout=WAIT,
        )
    for volume in volumes:
        mount = root / volume
        node.NodeUnpublishVolume(
            csi.NodeUnpublishVolumeRequest(volume_id=volume, target_path=str(mount / "target")),
            timeout=WAIT,
        )
        node.NodeUnstageVolume(
            csi.NodeUnstageVolumeRequest(
                volume_id=volume, staging_target_path=str(mount / "staging")
            ),
            timeout=WAIT,
        )
        (mount / "staging").rmdir()
        mount.rmdir()


def _isolator(isolator: CsiVolumeIsolator, sandbox: Path, volumes: list[str]) -> None:
    configs = {
        v: container_config(str(sandbox), [csi_volume(PLUGIN, v, f"data/{v}")]) for v in volumes
    }
    collect([isolator.prepare(container_id(v), configs[v]) for v in volumes]).get(WAIT)
    collect([isolator.cleanup(container_id(v)) for v in volumes]).get(WAIT)


def measure(options: Options) -> dict[str, float]:
    if os.geteuid() != 0:
        raise SystemExit("P5 needs root: the reference CSI plugin bind mounts")
    count = options.size(200)
    with (
        scratch_dir(options.tmpfs_dir, expect_tmpfs=True) as scratch,
        tempfile.TemporaryDirectory(dir="/tmp", prefix="bench-csi-") as short,
    ):
        root, sock = Path(scratch), Path(short) / "csi.sock"
        volumes = [f"v{i}" for i in range(count + 5)]
        for volume in volumes:
            (root / "volumes" / volume).mkdir(parents=True)
        plugin = subprocess.Popen(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                sys.executable,
                "-m",
                "isolator.csi_plugin",
                "--endpoint",
                f"unix://{sock}",
                "--root",
                str(root / "volumes"),
                "--log-level",
                "INFO",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            assert plugin.stderr is not None
            for line in plugin.stderr:
                if b"serving on" in line:
                    break
            plugin.stderr.close()
            (root / "plugins.d").mkdir()
            (root / "plugins.d" / "bench.json").write_text(
                json.dumps(
                    {
                        "type": PLUGIN,
                        "endpoints": [
                            {"csi_service": "NODE_SERVICE", "endpoint": f"unix://{sock}"}
                        ],
                    }
                )
            )
            flags = Flags(
                csi_plugin_config_dir=str(root / "plugins.d"), csi_root_dir=str(root / "csi")
            )
            (root / "sandbox").mkdir()
            channel = grpc.insecure_channel(f"unix://{sock}")
            node = csi_pb2_grpc.NodeStub(channel)
            isolator = CsiVolumeIsolator.create(flags)
            try:
                isolator.recover([], []).get(WAIT)
                warm, batch = volumes[:5], volumes[5:]
                _bare(node, root / "bare", warm)
                _isolator(isolator, root / "sandbox", warm)
                bare = timed(lambda: _bare(node, root / "bare", batch))
                iso = timed(lambda: _isolator(isolator, root / "sandbox", batch))
            finally:
                isolator.stop()
                channel.close()
        finally:
            plugin.terminate()
            plugin.wait(WAIT)
    return {"csi_bare_s": bare, "csi_isolator_s": iso, "csi": iso / bare}
