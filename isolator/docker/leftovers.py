"""What a drained node must no longer hold: checkpoints, plugin mount holders, host mounts.

After its last task's cleanup, an embedder checks these three (the main job does, and so does
each node's agent on Ray): a checkpoint left means a cleanup that failed or never ran, a
plugin holder a volume still mounted for nobody, a new host mount a bind that escaped a
task's private mount namespace.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from isolator.drivers.plugin_client import DockerPluginClient

__all__ = ["host_mounts", "leftovers", "mount_holders", "plugin_holders"]


def host_mounts() -> set[str]:
    """The mount points of this process's mount namespace (``/proc/self/mountinfo``)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        return {line.split()[4] for line in mountinfo}


def mount_holders(volumes: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Volume name -> its mount count, from a plugin's List answer: ``Status.count`` where
    the plugin reports one (the reference plugin does: Mounts less Unmounts), else how many
    callers (mount IDs) hold it. 0 for every volume means the plugin released them all."""
    holders = {}
    for volume in volumes:
        status = volume.get("Status") or {}
        count = status.get("count")
        holders[volume["Name"]] = count if isinstance(count, int) else len(status.get("mounts", {}))
    return holders


def plugin_holders(client: DockerPluginClient, driver: str, timeout: float) -> dict[str, int]:
    """``mount_holders`` of every volume ``driver`` serves, asked through ``client`` (blocks)."""
    return mount_holders(client.loop.submit(client.api.list(driver)).get(timeout))


def leftovers(
    checkpoint_dir: str | os.PathLike[str],
    holders: Mapping[str, int],
    mounts_before: set[str] | None = None,
) -> list[str]:
    """What is left behind, worded for a report: empty when the node is clean.

    ``holders`` as ``mount_holders`` gives them; ``mounts_before``, if given, is
    ``host_mounts()`` from before the work.
    """
    problems = []
    try:
        checkpoints = sorted(os.path.join(checkpoint_dir, e) for e in os.listdir(checkpoint_dir))
    except FileNotFoundError:
        checkpoints = []
    if checkpoints:
        problems.append(f"checkpoints left: {checkpoints}")
    if any(holders.values()):
        counts = {name: count for name, count in holders.items() if count}
        problems.append(f"volumes still mounted (plugin counts above 0): {counts}")
    if mounts_before is not None and host_mounts() != mounts_before:
        problems.append(f"host mounts changed: {sorted(host_mounts() ^ mounts_before)}")
    return problems
