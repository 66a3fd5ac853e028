"""The clients of the outside world: how the isolator reaches volume drivers."""

from isolator.drivers.base import DriverClient
from isolator.drivers.dvdcli import DvdcliClient
from isolator.drivers.plugin_client import DockerPluginClient

__all__ = ["DockerPluginClient", "DriverClient", "DvdcliClient"]
