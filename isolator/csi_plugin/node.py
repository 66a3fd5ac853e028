"""The reference plugin's Identity and Node services: directory-backed volumes.

Volume ``V`` is the directory ``ROOT/V``, made by the operator (this plugin provisions
nothing: an unknown ID is ``NOT_FOUND``). ``NodeStageVolume`` bind mounts it at the
staging path, ``NodePublishVolume`` bind mounts the staging path at the target (read-only
if asked); the ``Unstage``/``Unpublish`` calls undo that. Every call is idempotent as the
spec requires: a repeat that matches what was done succeeds without doing it again, one
that does not is ``ALREADY_EXISTS``. Calls run one at a time (one lock): the state they
share is small and each call is short.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import NoReturn

import grpc

from isolator.protos import csi_pb2 as csi
from isolator.protos import csi_pb2_grpc
from isolator.version import version

from . import mounts
from .state import PluginState, Published, Staged

__all__ = ["MAX_ID_BYTES", "DirectoryNode"]

_log = logging.getLogger("isolator.csi_plugin")

MAX_ID_BYTES = 128
"""The spec's recommended bound on a volume ID, enforced."""
MAX_PATH_BYTES = 4096

_Context = grpc.ServicerContext


def _abort(context: _Context, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


def _capability_text(capability: csi.VolumeCapability) -> str:
    return capability.SerializeToString(deterministic=True).hex()


class DirectoryNode(csi_pb2_grpc.IdentityServicer, csi_pb2_grpc.NodeServicer):
    """Both services over one root directory and one state file."""

    def __init__(self, root: str, *, name: str, node_id: str, state_path: str) -> None:
        self._root = os.path.realpath(root)
        self._name = name
        self._node_id = node_id
        self._state = PluginState(state_path)
        self._lock = threading.Lock()

    # -- Identity --------------------------------------------------------------------------

    def GetPluginInfo(
        self, request: csi.GetPluginInfoRequest, context: _Context
    ) -> csi.GetPluginInfoResponse:
        return csi.GetPluginInfoResponse(name=self._name, vendor_version=version())

    def GetPluginCapabilities(
        self, request: csi.GetPluginCapabilitiesRequest, context: _Context
    ) -> csi.GetPluginCapabilitiesResponse:
        return csi.GetPluginCapabilitiesResponse()  # a node-only plugin

    def Probe(self, request: csi.ProbeRequest, context: _Context) -> csi.ProbeResponse:
        response = csi.ProbeResponse()
        response.ready.value = True
        return response

    # -- Node ------------------------------------------------------------------------------

    def NodeGetCapabilities(
        self, request: csi.NodeGetCapabilitiesRequest, context: _Context
    ) -> csi.NodeGetCapabilitiesResponse:
        rpc = csi.NodeServiceCapability.RPC(type=csi.NodeServiceCapability.RPC.STAGE_UNSTAGE_VOLUME)
        return csi.NodeGetCapabilitiesResponse(capabilities=[csi.NodeServiceCapability(rpc=rpc)])

    def NodeGetInfo(
        self, request: csi.NodeGetInfoRequest, context: _Context
    ) -> csi.NodeGetInfoResponse:
        return csi.NodeGetInfoResponse(node_id=self._node_id)

    def NodeStageVolume(
        self, request: csi.NodeStageVolumeRequest, context: _Context
    ) -> csi.NodeStageVolumeResponse:
        source = self._volume_dir(request.volume_id, context)
        staging = self._path(request.staging_target_path, "staging_target_path", context)
        capability = self._capability(request, context)
        with self._lock:
            volume = self._state.volume(request.volume_id)
            text = _capability_text(capability)
            staged = volume.staged
            if staged is not None and (staged.path, staged.capability) != (staging, text):
                _abort(
                    context,
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"Volume '{request.volume_id}' is already staged at "
                    f"'{staged.path}' with another path or capability",
                )
            if not os.path.isdir(staging):
                _abort(
                    context,
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Staging path '{staging}' is not a directory",
                )
            # Recorded before the mount: a crash leaves a record that Unstage can act on.
            volume.staged = Staged(staging, text)
            self._state.save()
            if not mounts.is_mount_point(staging):
                self._mount(source, staging, read_only=False, context=context)
            _log.info("Staged volume '%s' at '%s'", request.volume_id, staging)
        return csi.NodeStageVolumeResponse()

    def NodeUnstageVolume(
        self, request: csi.NodeUnstageVolumeRequest, context: _Context
    ) -> csi.NodeUnstageVolumeResponse:
        self._volume_dir(request.volume_id, context)
        staging = self._path(request.staging_target_path, "staging_target_path", context)
        with self._lock:
            volume = self._state.volume(request.volume_id)
            if volume.published:
                _abort(
                    context,
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Volume '{request.volume_id}' is still published at "
                    f"{sorted(volume.published)}",
                )
            if volume.staged is not None and volume.staged.path == staging:
                self._unmount(staging, context)
                volume.staged = None
                self._state.save()
                _log.info("Unstaged volume '%s' from '%s'", request.volume_id, staging)
        return csi.NodeUnstageVolumeResponse()

    def NodePublishVolume(
        self, request: csi.NodePublishVolumeRequest, context: _Context
    ) -> csi.NodePublishVolumeResponse:
        self._volume_dir(request.volume_id, context)
        target = self._path(request.target_path, "target_path", context)
        if not request.staging_target_path:
            _abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                "staging_target_path is required: the plugin has STAGE_UNSTAGE_VOLUME",
            )
        staging = self._path(request.staging_target_path, "staging_target_path", context)
        capability = self._capability(request, context)
        text = _capability_text(capability)
        with self._lock:
            volume = self._state.volume(request.volume_id)
            if volume.staged is None or volume.staged.path != staging:
                _abort(
                    context,
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Volume '{request.volume_id}' is not staged at '{staging}'",
                )
            if not mounts.is_mount_point(staging):
                _abort(
                    context,
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Volume '{request.volume_id}' is staged at '{staging}' but it is not "
                    "mounted there (the node rebooted?): stage it again",
                )
            known = volume.published.get(target)
            if known is not None and (known.readonly, known.capability) != (request.readonly, text):
                _abort(
                    context,
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"Volume '{request.volume_id}' is already published at '{target}' "
                    "with another capability or readonly flag",
                )
            if not os.path.isdir(os.path.dirname(target)):
                _abort(
                    context,
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"The parent directory of target path '{target}' does not exist",
                )
            volume.published[target] = Published(request.readonly, text)
            self._state.save()
            os.makedirs(target, exist_ok=True)  # the spec: the plugin makes the target
            if not mounts.is_mount_point(target):
                self._mount(staging, target, read_only=request.readonly, context=context)
            _log.info("Published volume '%s' at '%s'", request.volume_id, target)
        return csi.NodePublishVolumeResponse()

    def NodeUnpublishVolume(
        self, request: csi.NodeUnpublishVolumeRequest, context: _Context
    ) -> csi.NodeUnpublishVolumeResponse:
        self._volume_dir(request.volume_id, context)
        target = self._path(request.target_path, "target_path", context)
        with self._lock:
            volume = self._state.volume(request.volume_id)
            if target in volume.published:
                self._unmount(target, context)
                del volume.published[target]
                self._state.save()
                _log.info("Unpublished volume '%s' from '%s'", request.volume_id, target)
            # The spec: the plugin removes the target path it made; a repeat finds it gone.
            if os.path.isdir(target) and not mounts.is_mount_point(target):
                try:
                    os.rmdir(target)
                except OSError as error:
                    _abort(
                        context,
                        grpc.StatusCode.INTERNAL,
                        f"Failed to remove target path '{target}': {error.strerror}",
                    )
        return csi.NodeUnpublishVolumeResponse()

    # -- checks ----------------------------------------------------------------------------

    def _volume_dir(self, volume_id: str, context: _Context) -> str:
        """``ROOT/<volume_id>``, or the call fails: a bad ID, or ``NOT_FOUND``."""
        if not volume_id:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "volume_id is required")
        problem = None
        if len(volume_id.encode("utf-8", "surrogateescape")) > MAX_ID_BYTES:
            problem = f"is longer than {MAX_ID_BYTES} bytes"
        elif "/" in volume_id or "\0" in volume_id or volume_id.startswith("."):
            problem = "must not contain '/' or NUL nor start with '.'"
        if problem is not None:
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"volume_id '{volume_id[:MAX_ID_BYTES]!s}' {problem}",
            )
        path = os.path.join(self._root, volume_id)
        if not os.path.isdir(path) or os.path.islink(path):
            _abort(context, grpc.StatusCode.NOT_FOUND, f"Volume '{volume_id}' does not exist")
        return path

    @staticmethod
    def _path(path: str, name: str, context: _Context) -> str:
        if not path:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"{name} is required")
        if not path.startswith("/") or "\0" in path or len(path) > MAX_PATH_BYTES:
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{name} must be an absolute path of at most {MAX_PATH_BYTES} bytes",
            )
        return os.path.normpath(path)

    @staticmethod
    def _capability(
        request: csi.NodeStageVolumeRequest | csi.NodePublishVolumeRequest, context: _Context
    ) -> csi.VolumeCapability:
        if not request.HasField("volume_capability"):
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "volume_capability is required")
        capability = request.volume_capability
        if capability.WhichOneof("access_type") != "mount":
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "Only mount volumes are supported (directories), not block volumes",
            )
        if capability.mount.fs_type not in ("", "none", "bind"):
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"fs_type '{capability.mount.fs_type}' is not supported: volumes are "
                "directories (leave it empty)",
            )
        mode = capability.access_mode.mode
        if mode == csi.VolumeCapability.AccessMode.UNKNOWN:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "access_mode is required")
        return capability

    @staticmethod
    def _mount(source: str, target: str, *, read_only: bool, context: _Context) -> None:
        try:
            mounts.bind(source, target, read_only=read_only)
        except OSError as error:
            _abort(context, grpc.StatusCode.INTERNAL, f"Failed to {error.strerror}")

    @staticmethod
    def _unmount(target: str, context: _Context) -> None:
        try:
            mounts.unmount(target)
        except OSError as error:
            _abort(context, grpc.StatusCode.INTERNAL, f"Failed to {error.strerror}")
