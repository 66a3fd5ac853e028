"""One volume's state machine (Mesos's ``v1::VolumeManagerProcess`` publish and unpublish
paths, for pre-provisioned volumes), as blocking steps.

The steps run only on the volume's own sequence, through ``actors.run_blocking``: one at a
time per volume, never on an actor. Each transition is checkpointed *before* its call, so
after a crash the state names the call that may be half done, and repeating that call
(CSI node calls are idempotent) finishes it; ``NODE_UNSTAGE`` also undoes a half-done
stage and ``NODE_UNPUBLISH`` a half-done publish, as the spec allows. A call that fails
with a final code ("not done", e.g. ``NOT_FOUND``) moves the state back, so nothing is
left recorded as in flight for a call that never happened.

    NODE_READY -> NODE_STAGE -> VOL_READY -> NODE_PUBLISH -> PUBLISHED
    PUBLISHED -> NODE_UNPUBLISH -> VOL_READY -> NODE_UNSTAGE -> NODE_READY (state removed)
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import grpc

from isolator.common import failpoints
from isolator.common.errors import IsolatorError
from isolator.csi.client import CsiCallError, NodeClient
from isolator.csi.paths import PluginPaths
from isolator.csi.state import read_record, redacted, write_record
from isolator.protos import Secret, Volume, VolumeState
from isolator.protos import csi_pb2 as csi

__all__ = ["NOT_DONE", "Machine", "PublishRequest", "SecretResolver", "load_state"]

_log = logging.getLogger("isolator")

S = VolumeState
SecretResolver = Callable[[Secret], bytes | str]
"""Given a ``REFERENCE`` secret, its value (the embedder's secret store)."""

NOT_DONE = frozenset(
    {
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
"""Codes by which a plugin says it did nothing: the in-flight state is rolled back."""

_AFTER_REBOOT = frozenset(
    {S.VOL_READY, S.PUBLISHED, S.NODE_UNSTAGE, S.NODE_PUBLISH, S.NODE_UNPUBLISH}
)


@dataclass(frozen=True)
class PublishRequest:
    """What a container asked of a volume; the secrets live in memory only."""

    capability: Volume.Source.CSIVolume.VolumeCapability
    readonly: bool
    volume_context: Mapping[str, str]
    stage_secrets: Mapping[str, Secret] = field(default_factory=dict)
    publish_secrets: Mapping[str, Secret] = field(default_factory=dict)

    @classmethod
    def from_state(cls, state: VolumeState) -> PublishRequest:
        """The request a checkpoint records (secrets without values: see ``redacted``)."""
        return cls(
            state.volume_capability,
            state.readonly,
            dict(state.volume_context),
            dict(state.node_stage_secrets),
            dict(state.node_publish_secrets),
        )

    def matches(self, state: VolumeState) -> bool:
        """Whether a volume published as ``state`` serves this request too: the same
        capability and context; a read-only request may share a read-write publish (its
        own bind mount is read-only), never the other way round."""
        return (
            state.volume_capability == self.capability
            and (self.readonly or not state.readonly)
            and dict(state.volume_context) == dict(self.volume_context)
        )


def load_state(path: str, boot_id: str) -> VolumeState | None:
    """A checkpointed state, reset to ``NODE_READY`` if the node rebooted since it was
    staged (the mounts are gone with the boot; not checkpointed, as Mesos)."""
    state = VolumeState()
    if not read_record(path, state):
        return None
    if state.state not in S.State.values() or state.state == S.UNKNOWN:
        raise IsolatorError(f"CSI volume state '{path}' is in UNKNOWN state")
    if state.state in _AFTER_REBOOT and state.boot_id != boot_id:
        _log.info("The node rebooted since '%s' was staged: it is NODE_READY again", path)
        state.state = S.NODE_READY
        state.ClearField("boot_id")
    return state


class Machine:
    """The steps of one volume; ``state`` is only touched from its sequence."""

    def __init__(
        self,
        volume_id: str,
        paths: PluginPaths,
        client: NodeClient | str,
        *,
        target_path_exists: bool,
        boot_id: str,
        resolver: SecretResolver | None,
        state: VolumeState | None = None,
    ) -> None:
        self.volume_id = volume_id
        self.paths = paths
        self._client = client  # or why there is none (the plugin's config is gone or bad)
        self.state = state
        self._target_path_exists = target_path_exists
        self._boot_id = boot_id
        self._resolver = resolver
        self._state_path = paths.state_path(volume_id)
        self._staging = paths.staging_path(volume_id)
        self.target = paths.target_path(volume_id)

    @property
    def client(self) -> NodeClient:
        if isinstance(self._client, str):
            raise IsolatorError(self._client)
        return self._client

    # -- publish -----------------------------------------------------------------------------

    def publish(self, request: PublishRequest) -> str:
        """Bring the volume to ``PUBLISHED``; its target path."""
        state = self.state
        if state is None or state.state == S.NODE_READY:
            state = self.state = self._new_state(request)
            self._write()
        elif not request.matches(state):
            raise IsolatorError(
                f"CSI volume '{self.volume_id}' of plugin '{self.paths.type}' is already in use "
                "with another volume_capability or volume_context, or read-only while this "
                "container asks for it read-write"
            )
        self._publish(request)
        return self.target

    def _publish(self, request: PublishRequest) -> None:
        state = self._current()
        if state.state == S.PUBLISHED:
            return
        if state.state not in (S.VOL_READY, S.NODE_PUBLISH, S.NODE_UNPUBLISH):
            self._stage(request)
            self._publish(request)
            return
        if state.state == S.NODE_UNPUBLISH:
            self._unpublish()  # finish the interrupted unpublish first
            self._publish(request)
            return
        os.makedirs(
            self.target if self._target_path_exists else os.path.dirname(self.target), exist_ok=True
        )
        message = csi.NodePublishVolumeRequest(
            volume_id=self.volume_id,
            target_path=self.target,
            volume_capability=_capability(state),
            readonly=state.readonly,
            volume_context=dict(state.volume_context),
            secrets=self._resolve(request.publish_secrets),  # before the state says "in flight"
        )
        if self.client.capabilities().stage_unstage_volume:
            message.staging_target_path = self._staging
        if state.state == S.VOL_READY:
            self._move(S.NODE_PUBLISH)
        failpoints.hit("csi-before-publish")
        self._call(lambda: self.client.publish(message), back=S.VOL_READY)
        failpoints.hit("csi-after-publish")
        if not os.path.exists(self.target):
            raise IsolatorError(f"Target path '{self.target}' not created")
        state.node_publish_required = True
        self._move(S.PUBLISHED, hit=False)

    def _stage(self, request: PublishRequest) -> None:
        state = self._current()
        if state.state == S.VOL_READY:
            return
        if state.state not in (S.NODE_READY, S.NODE_STAGE, S.NODE_UNSTAGE):
            raise IsolatorError(
                f"Cannot stage CSI volume '{self.volume_id}' in {_name(state)} state"
            )
        if not self.client.capabilities().stage_unstage_volume:
            state.boot_id = self._boot_id
            self._move(S.VOL_READY, hit=False)
            return
        if state.state == S.NODE_UNSTAGE:
            self._unstage()  # finish the interrupted unstage first
            state = self._current()
        os.makedirs(self._staging, exist_ok=True)
        message = csi.NodeStageVolumeRequest(
            volume_id=self.volume_id,
            staging_target_path=self._staging,
            volume_capability=_capability(state),
            volume_context=dict(state.volume_context),
            secrets=self._resolve(request.stage_secrets),  # before the state says "in flight"
        )
        if state.state == S.NODE_READY:
            self._move(S.NODE_STAGE)
        failpoints.hit("csi-before-stage")
        self._call(lambda: self.client.stage(message), back=S.NODE_READY)
        failpoints.hit("csi-after-stage")
        state.boot_id = self._boot_id
        self._move(S.VOL_READY, hit=False)

    # -- unpublish ---------------------------------------------------------------------------

    def unpublish(self) -> None:
        """Bring the volume back to ``NODE_READY`` and forget it (its state is removed)."""
        state = self.state
        if state is None:
            return
        if state.state not in (S.NODE_READY, S.VOL_READY, S.NODE_STAGE, S.NODE_UNSTAGE):
            self._unpublish()
        if self._current().state != S.NODE_READY:
            self._unstage()
        self._remove()

    def _unpublish(self) -> None:
        state = self._current()
        if state.state == S.VOL_READY:
            return
        if state.state in (S.PUBLISHED, S.NODE_PUBLISH):
            self._move(S.NODE_UNPUBLISH)
        message = csi.NodeUnpublishVolumeRequest(volume_id=self.volume_id, target_path=self.target)
        failpoints.hit("csi-before-unpublish")
        self._call(lambda: self.client.unpublish(message), back=None)
        failpoints.hit("csi-after-unpublish")
        if not self._target_path_exists and os.path.exists(self.target):
            raise IsolatorError(f"Target path '{self.target}' not removed")
        self._move(S.VOL_READY, hit=False)

    def _unstage(self) -> None:
        state = self._current()
        if state.state == S.NODE_READY:
            return
        if not self.client.capabilities().stage_unstage_volume:
            state.ClearField("boot_id")
            self._move(S.NODE_READY, hit=False)
            return
        if state.state in (S.VOL_READY, S.NODE_STAGE):
            self._move(S.NODE_UNSTAGE)
        message = csi.NodeUnstageVolumeRequest(
            volume_id=self.volume_id, staging_target_path=self._staging
        )
        failpoints.hit("csi-before-unstage")
        self._call(lambda: self.client.unstage(message), back=None)
        failpoints.hit("csi-after-unstage")
        state.ClearField("boot_id")
        self._move(S.NODE_READY, hit=False)

    # -- helpers -----------------------------------------------------------------------------

    def _current(self) -> VolumeState:
        assert self.state is not None
        return self.state

    def _new_state(self, request: PublishRequest) -> VolumeState:
        return VolumeState(
            state=S.NODE_READY,
            volume_capability=request.capability,
            volume_context=dict(request.volume_context),
            readonly=request.readonly,
            pre_provisioned=True,
            node_stage_secrets=redacted(request.stage_secrets.items()),
            node_publish_secrets=redacted(request.publish_secrets.items()),
        )

    def _move(self, to: VolumeState.State.ValueType, *, hit: bool = True) -> None:
        """Checkpoint the new state (durably) before what it announces is done."""
        self._current().state = to
        self._write()
        if hit:
            failpoints.hit("csi-after-state-write")

    def _write(self) -> None:
        write_record(self._state_path, self._current())

    def _call(self, call: Callable[[], None], *, back: VolumeState.State.ValueType | None) -> None:
        try:
            call()
        except CsiCallError as error:
            if back is not None and error.code in NOT_DONE:
                self._move(back, hit=False)  # the plugin did nothing: not in flight any more
            raise

    def _resolve(self, secrets: Mapping[str, Secret]) -> dict[str, str]:
        resolved = {}
        for key, secret in secrets.items():
            if secret.type == Secret.VALUE and secret.HasField("value"):
                resolved[key] = secret.value.data.decode("utf-8", "surrogateescape")
            elif secret.type == Secret.REFERENCE and secret.HasField("reference"):
                if self._resolver is None:
                    raise IsolatorError(
                        f"CSI volume '{self.volume_id}' included secrets but the isolator was "
                        "not given a secret resolver (CsiVolumeIsolator.create(secret_resolver=))"
                    )
                value = self._resolver(secret)
                resolved[key] = value.decode() if isinstance(value, bytes) else value
            elif secret.type == Secret.VALUE:
                raise IsolatorError(
                    f"CSI volume '{self.volume_id}' needs the VALUE secret '{key}' again, which "
                    "is never checkpointed: prepare a container with the volume again"
                )
            else:
                raise IsolatorError(f"CSI volume '{self.volume_id}': secret '{key}' has no type")
        return resolved

    def _remove(self) -> None:
        """Forget the volume: its state file and directory, the empty mount directories."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._state_path)
        self.state = None
        for directory in (
            self.paths.volume_dir(self.volume_id),
            self._staging,
            self.target,
            self.paths.mount_dir(self.volume_id),
        ):
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                pass
            except OSError as error:  # not empty, still a mount: not ours to delete
                _log.warning("Left '%s' in place: %s", directory, error.strerror)


def _capability(state: VolumeState) -> csi.VolumeCapability:
    """Mesos's proto2 capability as the spec's (the same fields and numbers)."""
    return csi.VolumeCapability.FromString(state.volume_capability.SerializeToString())


def _name(state: VolumeState) -> str:
    return S.State.Name(state.state)
