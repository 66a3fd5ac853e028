"""``plugins``: the plugins in the socket and spec directories, each activated once.

Names come in Docker's discovery order (``discovery.scan_plugins``); each is resolved as
the isolator resolves it (``find_plugin``: the first match wins), sent ``Plugin.Activate``
and, if it is a volume driver, ``VolumeDriver.Capabilities``: all plugins at once, each
within ``timeout`` seconds and without retries (a plugin that is down is reported, not
waited for).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from isolator.common.errors import DriverError
from isolator.config.flags import Flags
from isolator.ctl.tables import EXIT_FAILED, EXIT_OK, Outcome, table
from isolator.docker.state import VolumeKey
from isolator.drivers.discovery import PluginAddress, find_plugin, scan_plugins
from isolator.drivers.protocol import VolumePluginAPI
from isolator.drivers.transport import Backoff, PluginConnection

__all__ = [
    "DEFAULT_TIMEOUT",
    "PluginProbe",
    "directories_text",
    "mount_points",
    "plugins",
    "probe_plugins",
]

DEFAULT_TIMEOUT = 5.0
"""Seconds each plugin has to answer: a healthy one answers in milliseconds."""


@dataclass(frozen=True)
class PluginProbe:
    """What one plugin said: where it is, whether it activated, what it implements."""

    name: str
    address: str = ""
    source: str = ""
    activated: bool = False
    implements: tuple[str, ...] = ()
    capabilities: dict[str, Any] | None = None
    error: str | None = None

    @property
    def volume_driver(self) -> bool:
        return "VolumeDriver" in self.implements

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "source": self.source,
            "activated": self.activated,
            "implements": list(self.implements),
            "capabilities": self.capabilities,
            "error": self.error,
        }


async def _probe(api: VolumePluginAPI, name: str, timeout: float) -> PluginProbe:
    try:
        address = await api.blocking.run(
            ("find", name),
            lambda: find_plugin(name, socket_dir=api.socket_dir, spec_dirs=api.spec_dirs),
        )
    except DriverError as error:
        return PluginProbe(name, error=str(error))
    found = PluginProbe(name, address=address.url, source=address.source)
    try:
        async with asyncio.timeout(timeout):
            return await _activate(api, address, found)
    except TimeoutError:
        return _failed(found, f"did not answer within {timeout:g} s")
    except DriverError as error:
        return _failed(found, str(error))


def _failed(found: PluginProbe, error: str) -> PluginProbe:
    return PluginProbe(found.name, found.address, found.source, error=error)


async def _activate(
    api: VolumePluginAPI, address: PluginAddress, found: PluginProbe
) -> PluginProbe:
    connection = await api.blocking.run(  # off the loop: an https plugin's TLS files
        ("connect", address), lambda: PluginConnection(address, max_body=api.max_body)
    )
    try:
        implements = tuple(str(item) for item in await api.handshake(connection))
    finally:
        await connection.aclose()
    capabilities = None
    if "VolumeDriver" in implements:
        capabilities = await api.capabilities(address.name)
    return PluginProbe(found.name, found.address, found.source, True, implements, capabilities)


async def _probe_all(flags: Flags, timeout: float) -> list[PluginProbe]:
    api = VolumePluginAPI(
        socket_dir=flags.docker_plugin_socket_dir,
        spec_dirs=flags.docker_plugin_spec_dirs,
        query_timeout=timeout,
        backoff=Backoff(budget=0),
    )
    try:
        names = await api.blocking.run(
            ("scan",),
            lambda: scan_plugins(socket_dir=api.socket_dir, spec_dirs=api.spec_dirs),
        )
        return list(await asyncio.gather(*(_probe(api, name, timeout) for name in names)))
    finally:
        await api.aclose()


def probe_plugins(flags: Flags, timeout: float = DEFAULT_TIMEOUT) -> list[PluginProbe]:
    """Every plugin in ``flags``' directories, in Docker's order, activated (blocks)."""
    return asyncio.run(_probe_all(flags, timeout))


def _capabilities_text(probe: PluginProbe) -> str:
    if probe.capabilities is None:
        return ""
    return ", ".join(f"{key}={value}" for key, value in sorted(probe.capabilities.items()))


def plugins(flags: Flags, timeout: float = DEFAULT_TIMEOUT) -> Outcome:
    """The ``plugins`` command: a ``docker plugin ls``-like table, errors below it."""
    probes = probe_plugins(flags, timeout)
    rows = [
        [
            probe.name,
            probe.address or "-",
            "yes" if probe.activated else "no",
            ", ".join(probe.implements) or "-",
            _capabilities_text(probe) or "-",
        ]
        for probe in probes
    ]
    text = table(["NAME", "ADDRESS", "ACTIVATED", "IMPLEMENTS", "CAPABILITIES"], rows)
    text += "".join(f"{probe.name}: {probe.error}\n" for probe in probes if probe.error)
    if not probes:
        text += f"No plugins in {directories_text(flags)}\n"
    data = {
        "socket_dir": flags.docker_plugin_socket_dir,
        "spec_dirs": list(flags.docker_plugin_spec_dirs),
        "plugins": [probe.to_json() for probe in probes],
    }
    failed = any(not probe.activated for probe in probes)
    return Outcome(EXIT_FAILED if failed else EXIT_OK, data, text)


def directories_text(flags: Flags) -> str:
    """The directories plugins are looked for in, for messages."""
    return ", ".join([flags.docker_plugin_socket_dir, *flags.docker_plugin_spec_dirs])


MountPoint = str | DriverError
"""What a plugin's ``VolumeDriver.Path`` answered: the mount point (``""``: not mounted), or
why it could not be asked."""


async def _path(api: VolumePluginAPI, volume: VolumeKey, timeout: float) -> MountPoint:
    try:
        async with asyncio.timeout(timeout):
            return await api.path(volume.driver, volume.name)
    except TimeoutError:
        return DriverError(f"did not answer within {timeout:g} s")
    except DriverError as error:
        return error


async def _paths(
    flags: Flags, volumes: list[VolumeKey], timeout: float
) -> dict[VolumeKey, MountPoint]:
    api = VolumePluginAPI(
        socket_dir=flags.docker_plugin_socket_dir,
        spec_dirs=flags.docker_plugin_spec_dirs,
        query_timeout=timeout,
        backoff=Backoff(budget=0),
    )
    try:
        answers = await asyncio.gather(*(_path(api, volume, timeout) for volume in volumes))
        return dict(zip(volumes, answers, strict=True))
    finally:
        await api.aclose()


def mount_points(
    flags: Flags, volumes: list[VolumeKey], timeout: float = DEFAULT_TIMEOUT
) -> dict[VolumeKey, MountPoint]:
    """Where each volume is mounted, as its plugin says (``VolumeDriver.Path``, the question
    the isolator asks after a restart); all at once, each within ``timeout`` (blocks)."""
    return asyncio.run(_paths(flags, volumes, timeout))
