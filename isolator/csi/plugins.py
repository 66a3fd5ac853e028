"""The CSI plugins this node knows: the JSON ``CSIPluginInfo`` files of
``csi_plugin_config_dir`` (Mesos's field names), read when the isolator starts.

A file that cannot be read or parsed, a second file with the same ``type``, a plugin
without a ``NODE_SERVICE`` endpoint or one Mesos would manage (``containers``) is kept as
a *problem* under its type (or file name): a volume naming it fails ``prepare`` with that
problem, and every other plugin still works.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from google.protobuf import json_format

from isolator.common.errors import IsolatorError
from isolator.common.names import printable
from isolator.csi.paths import check_component
from isolator.protos import CSIPluginContainerInfo, CSIPluginInfo

__all__ = ["MAX_CONFIG_BYTES", "Plugin", "PluginConfigs", "load_plugins", "socket_of"]

MAX_CONFIG_BYTES = 64 * 1024


@dataclass(frozen=True)
class Plugin:
    """A usable plugin: its info and the socket of its node service."""

    info: CSIPluginInfo
    socket: str
    source: str  # the config file, for messages


@dataclass(frozen=True)
class PluginConfigs:
    plugins: dict[str, Plugin]
    problems: dict[str, str]  # type (or file) -> why it cannot be used
    directory: str | None
    unreadable: str | None = None  # why the directory itself could not be read

    def get(self, plugin_name: str) -> Plugin:
        """The plugin whose ``type`` is ``plugin_name``; ``IsolatorError`` naming it otherwise."""
        plugin = self.plugins.get(plugin_name)
        if plugin is not None:
            return plugin
        shown = printable(plugin_name)
        if self.unreadable is not None:
            raise IsolatorError(f"CSI plugin '{shown}' cannot be used: {self.unreadable}")
        problem = self.problems.get(plugin_name)
        if problem is not None:
            raise IsolatorError(f"CSI plugin '{shown}' cannot be used: {problem}")
        if self.directory is None:
            raise IsolatorError(
                f"Unknown CSI plugin '{shown}': no csi_plugin_config_dir is set, so no CSI "
                "plugin is known"
            )
        extra = ""
        if self.problems:
            extra = (
                " (plugin configs that could not be used: "
                + "; ".join(self.problems[key] for key in sorted(self.problems))
                + ")"
            )
        raise IsolatorError(
            f"Unknown CSI plugin '{shown}': no CSIPluginInfo in '{self.directory}' has this "
            f"type{extra}"
        )


def socket_of(endpoint: str) -> str:
    """The socket path of ``unix:///PATH`` or a plain absolute path."""
    path = endpoint[len("unix://") :] if endpoint.startswith("unix://") else endpoint
    if not path.startswith("/") or "\0" in path:
        raise IsolatorError(
            f"Invalid CSI endpoint '{printable(endpoint)}': expected unix:///ABSOLUTE/PATH "
            "or an absolute path"
        )
    return path


def _parse(path: str) -> CSIPluginInfo:
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise IsolatorError(f"cannot read '{path}': {error.strerror}") from error
    if len(data) > MAX_CONFIG_BYTES:
        raise IsolatorError(f"'{path}' is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        document = json.loads(data)
        if not isinstance(document, dict):
            raise ValueError("expected a JSON object")
        info = json_format.ParseDict(document, CSIPluginInfo())
    except (ValueError, RecursionError, json_format.ParseError) as error:
        raise IsolatorError(f"'{path}' is not a valid CSIPluginInfo: {error}") from error
    if not info.IsInitialized():
        missing = ", ".join(info.FindInitializationErrors())  # type: ignore[attr-defined]
        raise IsolatorError(f"'{path}' is not a valid CSIPluginInfo: missing {missing}")
    return info


def _usable(info: CSIPluginInfo, path: str) -> Plugin:
    check_component(info.type, "CSI plugin type")
    check_component(info.name, "CSI plugin name")
    if info.containers:
        raise IsolatorError(
            f"'{path}' describes a managed plugin ('containers'); this isolator only talks to "
            "plugins started outside it ('endpoints')"
        )
    nodes = [e for e in info.endpoints if e.csi_service == CSIPluginContainerInfo.NODE_SERVICE]
    if not nodes:
        raise IsolatorError(f"'{path}' has no endpoint with csi_service NODE_SERVICE")
    if info.HasField("target_path_root") and not info.target_path_root.startswith("/"):
        raise IsolatorError(f"'{path}': target_path_root must be an absolute path")
    return Plugin(info, socket_of(nodes[0].endpoint), path)


def load_plugins(directory: str | None) -> PluginConfigs:
    """Every ``*.json`` file of ``directory`` (none when unset); never raises: what cannot
    be used fails the ``prepare`` of the volumes that name it."""
    if directory is None:
        return PluginConfigs({}, {}, None)
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))
    except OSError as error:
        why = f"Failed to list CSI plugin config directory '{directory}': {error.strerror}"
        return PluginConfigs({}, {}, directory, why)
    plugins: dict[str, Plugin] = {}
    problems: dict[str, str] = {}
    for name in names:
        path = os.path.join(directory, name)
        try:
            info = _parse(path)
        except IsolatorError as error:
            problems[name] = str(error)
            continue
        try:
            plugin = _usable(info, path)
        except IsolatorError as error:
            problems[info.type] = str(error)
            continue
        if info.type in plugins or info.type in problems:
            other = plugins.pop(info.type, None)
            where = other.source if other is not None else "another file"
            problems[info.type] = f"both '{where}' and '{path}' have this type"
            continue
        plugins[info.type] = plugin
    return PluginConfigs(plugins, problems, directory)
