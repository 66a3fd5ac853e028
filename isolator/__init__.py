"""Apache Mesos's ``docker/volume`` isolator, ported to Python on the ``actors`` layer.

The modules follow Mesos's isolator folder, one concern each: ``isolator`` (the actor),
``drivers`` (the clients of the outside world), ``paths`` (where state lives), ``state``
(the checkpoint format), ``flags``, ``protos`` (Mesos's messages), plus ``plugin`` (a
reference Docker volume plugin) and ``launcher`` (applies a launch info).

The names below load their modules on first use: ``isolator.launcher`` runs once per task
launch and must not pay for the actor runtime or the HTTP client it never uses, nor for
reading the package's metadata (``__version__``: the installed version, ``0+unknown``
in a source tree that is not installed).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from isolator.common.errors import CheckpointError, DriverError, IsolatorError
from isolator.config.flags import Flags

if TYPE_CHECKING:
    from isolator.csi.actor import CsiVolumeIsolatorActor
    from isolator.csi.handle import CsiVolumeIsolator
    from isolator.docker.actor import DockerVolumeIsolatorActor
    from isolator.docker.handle import DockerVolumeIsolator
    from isolator.drivers.base import DriverClient
    from isolator.drivers.dvdcli import DvdcliClient
    from isolator.drivers.plugin_client import DockerPluginClient
    from isolator.version import __version__

__all__ = [
    "CheckpointError",
    "CsiVolumeIsolator",
    "CsiVolumeIsolatorActor",
    "DockerPluginClient",
    "DockerVolumeIsolator",
    "DockerVolumeIsolatorActor",
    "DriverClient",
    "DriverError",
    "DvdcliClient",
    "Flags",
    "IsolatorError",
    "__version__",
]

_LAZY = {
    "CsiVolumeIsolator": "isolator.csi.handle",
    "CsiVolumeIsolatorActor": "isolator.csi.actor",
    "DockerPluginClient": "isolator.drivers.plugin_client",
    "DockerVolumeIsolator": "isolator.docker.handle",
    "DockerVolumeIsolatorActor": "isolator.docker.actor",
    "DriverClient": "isolator.drivers.base",
    "DvdcliClient": "isolator.drivers.dvdcli",
    "__version__": "isolator.version",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'isolator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # loaded once; later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
