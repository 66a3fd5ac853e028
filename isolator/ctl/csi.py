"""``csi``: the CSI isolator's volumes and their states, read offline from ``csi_root_dir``
(each volume's ``volume.state`` and each container's checkpoint), as a recovery would
find them."""

from __future__ import annotations

import os
import urllib.parse

from isolator.common.errors import IsolatorError
from isolator.config.flags import Flags
from isolator.csi.paths import containers_dir
from isolator.csi.state import read_container, read_record
from isolator.ctl.tables import EXIT_FAILED, EXIT_OK, Outcome, table
from isolator.protos import ContainerID, VolumeState

__all__ = ["csi_volumes"]

_BOOT_ID = "/proc/sys/kernel/random/boot_id"


def _listdir(directory: str) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except FileNotFoundError:
        return []


def _boot_id() -> str:
    try:
        with open(_BOOT_ID, encoding="ascii") as stream:
            return stream.read().strip()
    except OSError:
        return ""


def csi_volumes(flags: Flags) -> Outcome:
    """Each CSI volume with a state, its state and the containers whose checkpoint names it."""
    root = flags.csi_root_dir
    problems: list[str] = []
    holders: dict[tuple[str, str], list[str]] = {}
    for entry in _listdir(containers_dir(root)):
        try:
            volumes = read_container(root, ContainerID(value=entry)) or []
        except IsolatorError as error:
            problems.append(f"container {entry}: {error}")
            continue
        for volume in volumes:
            holders.setdefault(volume, []).append(entry)
    boot = _boot_id()
    rows: list[list[str]] = []
    found: list[dict[str, object]] = []
    plugins = os.path.join(root, "plugins")
    for plugin_type in _listdir(plugins):
        for name in _listdir(os.path.join(plugins, plugin_type)):
            volumes_dir = os.path.join(plugins, plugin_type, name, "volumes")
            for encoded in _listdir(volumes_dir):
                volume_id = urllib.parse.unquote(encoded)
                state = VolumeState()
                path = os.path.join(volumes_dir, encoded, "volume.state")
                try:
                    if not read_record(path, state):
                        continue
                except IsolatorError as error:
                    problems.append(str(error))
                    continue
                shown = VolumeState.State.Name(state.state)
                if state.boot_id and state.boot_id != boot:
                    shown += " (before a reboot: NODE_READY)"
                users = holders.get((plugin_type, volume_id), [])
                rows.append([plugin_type, name, volume_id, shown, ", ".join(users) or "-"])
                found.append(
                    {
                        "plugin": plugin_type,
                        "name": name,
                        "volume_id": volume_id,
                        "state": VolumeState.State.Name(state.state),
                        "boot_id": state.boot_id,
                        "containers": users,
                    }
                )
    text = table(["PLUGIN", "NAME", "VOLUME", "STATE", "CONTAINERS"], rows)
    text += f"{len(rows)} CSI volume(s) with a state in '{root}'\n"
    text += "".join(f"problem: {p}\n" for p in problems)
    data = {"csi_root_dir": root, "volumes": found, "problems": problems}
    return Outcome(EXIT_FAILED if problems else EXIT_OK, data, text)
