"""Building the driver client that ``Flags`` ask for, after Mesos's host checks."""

from __future__ import annotations

import logging
import os
import shutil

from isolator.common.errors import IsolatorError
from isolator.config.flags import Flags
from isolator.drivers.base import DriverClient
from isolator.drivers.dvdcli import DvdcliClient
from isolator.drivers.plugin_client import DockerPluginClient
from isolator.drivers.transport import Backoff

__all__ = ["create_client"]

logger = logging.getLogger(__name__)


def _mount_namespaces_supported() -> bool:
    return os.path.exists("/proc/self/ns/mnt")


def create_client(flags: Flags) -> DriverClient:
    """The client ``flags.docker_volume_driver_client`` names, as Mesos's ``create``.

    Raises ``IsolatorError`` (Mesos's words) when not root, without mount namespaces, or
    when the dvdcli client is asked for and ``flags.dvdcli_path`` is not found on PATH.
    The plugin client retries within ``flags.docker_plugin_retry_budget`` and sends
    ``flags.docker_plugin_mount_id`` (when set) with Mount and Unmount; dvdcli has its own.
    """
    if os.geteuid() != 0:
        raise IsolatorError("The 'docker/volume' isolator requires root permissions")
    if not _mount_namespaces_supported():
        raise IsolatorError("The 'docker/volume' isolator requires mount namespace support")
    if flags.docker_volume_driver_client == "dvdcli":
        dvdcli = shutil.which(flags.dvdcli_path)
        if dvdcli is None:
            raise IsolatorError("The 'docker/volume' isolator cannot get dvdcli command")
        logger.debug("Found 'dvdcli' at '%s'", dvdcli)
        return DvdcliClient(
            dvdcli,
            mount_timeout=flags.docker_volume_mount_timeout,
            unmount_timeout=flags.docker_volume_unmount_timeout,
        )
    return DockerPluginClient(
        socket_dir=flags.docker_plugin_socket_dir,
        spec_dirs=flags.docker_plugin_spec_dirs,
        explicit_create=flags.docker_volume_explicit_create,
        mount_timeout=flags.docker_volume_mount_timeout,
        unmount_timeout=flags.docker_volume_unmount_timeout,
        backoff=Backoff(budget=flags.docker_plugin_retry_budget),
        mount_id=flags.docker_plugin_mount_id,
    )
