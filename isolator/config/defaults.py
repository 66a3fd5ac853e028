"""Default values, one source each: the flags, the driver clients and the console scripts
all read them from here, so a default can never differ between two entry points."""

from __future__ import annotations

from typing import Final

__all__ = [
    "CHECKPOINT_DIR",
    "CSI_RETRY_BUDGET",
    "CSI_ROOT_DIR",
    "CSI_RPC_TIMEOUT",
    "MOUNT_TIMEOUT",
    "PLUGIN_RETRY_BUDGET",
    "PLUGIN_SOCKET_DIR",
    "PLUGIN_SPEC_DIRS",
    "SANDBOX_DIRECTORY",
    "UNMOUNT_TIMEOUT",
]

MOUNT_TIMEOUT: Final = 120.0
"""Seconds a mount may take (Mesos: ``Seconds(120)`` in driver.cpp; Docker gives Mount 2 min)."""

UNMOUNT_TIMEOUT: Final = 600.0
"""Seconds an unmount may take (Mesos: ``Minutes(10)``; a detach can take ~20 min, MESOS-7439)."""

PLUGIN_RETRY_BUDGET: Final = 10.0
"""Seconds the isolator keeps retrying a plugin that is not found or not accepting
connections (waits of 1, 2, 4 s: it gives up ~7 s after the first attempt).

Smaller than Docker's 30 s budget (``transport.RETRY_BUDGET``, ~15 s of retries), which a
``DockerPluginClient`` keeps by default: dockerd retries while a user waits on one
command, but the isolator pays the budget for every prepare and every cleanup while a
plugin is missing (a typo in a driver name, a plugin down for good), and each failed
cleanup strands a checkpoint until the next try. A few seconds still cover a plugin
that is restarting."""

PLUGIN_SOCKET_DIR: Final = "/run/docker/plugins"
"""Where dockerd looks for legacy plugins' ``NAME.sock``."""

PLUGIN_SPEC_DIRS: Final = ("/etc/docker/plugins", "/usr/lib/docker/plugins")
"""Where dockerd looks for ``.spec``/``.json`` plugin files, in search order."""

CHECKPOINT_DIR: Final = "/var/run/mesos/isolators/docker/volume"
"""Mesos's ``--docker_volume_checkpoint_dir`` default."""

SANDBOX_DIRECTORY: Final = "/mnt/mesos/sandbox"
"""Mesos's ``--sandbox_directory`` default: the sandbox inside a container with a rootfs."""

CSI_ROOT_DIR: Final = "/var/lib/mesos/csi"
"""Where the CSI isolator keeps volume states and mounts (Mesos: ``<work_dir>/csi``)."""

CSI_RPC_TIMEOUT: Final = 60.0
"""Seconds one CSI call may take before it counts as ``DEADLINE_EXCEEDED`` and is retried."""

CSI_RETRY_BUDGET: Final = 300.0
"""Seconds one CSI operation (a call and its retries) may take in all before it fails."""
