"""Where the CSI isolator keeps things under ``csi_root_dir`` (Mesos's ``src/csi/paths.cpp``
and ``volume/csi/paths.cpp``, gathered under one root)::

    <root>/containers/<ContainerID.value>/volumes           which volumes a container uses
    <root>/plugins/<type>/<name>/volumes/<enc id>/volume.state   one volume's state
    <root>/plugins/<type>/<name>/mounts/<enc id>/staging     NodeStageVolume's path
    <root>/plugins/<type>/<name>/mounts/<enc id>/target      NodePublishVolume's path

(``mounts`` is ``<target_path_root>`` when the plugin's config sets it). ``<enc id>`` is the
volume ID percent-encoded as Mesos's ``http::encode`` does, so an ID can hold any byte but
a path component cannot leave its directory; a plugin type or name is used as it is and so
must be one plain path component. Every name is checked here, before it becomes a path.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass

from isolator.common.container_ids import join
from isolator.common.errors import IsolatorError
from isolator.common.names import printable

__all__ = [
    "MAX_COMPONENT_BYTES",
    "PluginPaths",
    "check_component",
    "containers_dir",
    "encode_volume_id",
]

MAX_COMPONENT_BYTES = 255
"""NAME_MAX: the longest name a directory entry may have."""

_SAFE = "-._~"  # http::encode leaves alphanumerics and these


def encode_volume_id(volume_id: str) -> str:
    """The volume ID as a path component (percent-encoded); ``IsolatorError`` for an ID no
    directory can be named after."""
    if not volume_id:
        raise IsolatorError("Invalid CSI volume ID '': it must not be empty")
    encoded = urllib.parse.quote(volume_id, safe=_SAFE)
    if encoded in (".", ".."):
        raise IsolatorError(
            f"Invalid CSI volume ID '{volume_id}': it would name a directory outside "
            "its plugin's volumes directory"
        )
    if len(encoded) > MAX_COMPONENT_BYTES:
        raise IsolatorError(
            f"Invalid CSI volume ID '{printable(volume_id[:64])}...': percent-encoded it has "
            f"{len(encoded)} bytes, more than the {MAX_COMPONENT_BYTES} a directory name may have"
        )
    return encoded


def check_component(value: str, what: str) -> None:
    """Refuse ``value`` (a plugin's type or name) unless it is one plain path component."""
    problem = None
    if not value:
        problem = "must not be empty"
    elif value in (".", ".."):
        problem = "would name a directory outside the CSI root directory"
    elif "/" in value or "\0" in value:
        problem = "must not contain '/' or NUL: it would reach outside the CSI root directory"
    elif len(value.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES:
        problem = f"is longer than {MAX_COMPONENT_BYTES} bytes"
    if problem is not None:
        raise IsolatorError(f"Invalid {what} '{printable(value[:64])}': {problem}")


def containers_dir(root: str) -> str:
    return join(root, "containers")


@dataclass(frozen=True)
class PluginPaths:
    """The paths of one plugin (``type``, ``name``) under ``root``."""

    root: str
    type: str
    name: str
    target_path_root: str | None = None

    def __post_init__(self) -> None:
        check_component(self.type, "CSI plugin type")
        check_component(self.name, "CSI plugin name")

    @property
    def plugin_dir(self) -> str:
        return os.path.join(self.root, "plugins", self.type, self.name)

    @property
    def volumes_dir(self) -> str:
        return os.path.join(self.plugin_dir, "volumes")

    @property
    def mounts_dir(self) -> str:
        if self.target_path_root is not None:
            return self.target_path_root
        return os.path.join(self.plugin_dir, "mounts")

    def volume_dir(self, volume_id: str) -> str:
        return os.path.join(self.volumes_dir, encode_volume_id(volume_id))

    def state_path(self, volume_id: str) -> str:
        return os.path.join(self.volume_dir(volume_id), "volume.state")

    def mount_dir(self, volume_id: str) -> str:
        return os.path.join(self.mounts_dir, encode_volume_id(volume_id))

    def staging_path(self, volume_id: str) -> str:
        return os.path.join(self.mount_dir(volume_id), "staging")

    def target_path(self, volume_id: str) -> str:
        return os.path.join(self.mount_dir(volume_id), "target")
