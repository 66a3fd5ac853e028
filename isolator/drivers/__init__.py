"""The clients of the outside world: how the isolator reaches volume drivers.

One concern per module, from the wire up:

- ``discovery``: where a plugin listens, found as dockerd finds it (pure functions);
- ``blocking``: the few threads that file-system work (discovery, mount-point checks) runs on;
- ``deadline``: the one deadline a whole mount or unmount must meet;
- ``transport``: one HTTP client per plugin (``unix_http`` on a unix socket, httpx on TCP),
  one exchange, Docker's retry ``Backoff``;
- ``answers``: plugin answers decoded as Docker decodes them;
- ``protocol``: ``VolumePluginAPI``, one coroutine per plugin endpoint;
- ``mount_id``: the caller ``ID`` sent with Mount and Unmount;
- ``plugin_client``: ``DockerPluginClient``, the ``DriverClient`` over the protocol;
- ``process``, ``dvdcli``: ``DvdcliClient``, Mesos's client running dvdcli (its timeouts
  printed by ``isolator.config.duration``);
- ``base``: the ``DriverClient`` interface; ``factory``: ``create_client(flags)``.
"""

from isolator.drivers.base import DriverClient
from isolator.drivers.dvdcli import DvdcliClient
from isolator.drivers.factory import create_client
from isolator.drivers.plugin_client import DockerPluginClient
from isolator.drivers.protocol import VolumePluginAPI
from isolator.drivers.transport import Backoff

__all__ = [
    "Backoff",
    "DockerPluginClient",
    "DriverClient",
    "DvdcliClient",
    "VolumePluginAPI",
    "create_client",
]
