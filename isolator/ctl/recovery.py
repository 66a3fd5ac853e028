"""``recover --dry-run``: what a recovery would do, found by running one on a copy.

The isolator itself recovers, from a copy of the checkpoints in a scratch directory and
with a driver that only records the calls it gets: so the answer follows the isolator's
own rules (a volume is unmounted only when no known container holds it; unknown orphans
sharing a volume unmount it once) and cannot drift from them. No plugin is called and the
checkpoint directory is only read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, Final

from isolator.common.container_ids import validate_container_id
from isolator.common.errors import IsolatorError
from isolator.config.flags import Flags
from isolator.ctl.checkpoints import Checkpoint, with_checkpoints
from isolator.ctl.dry_run import DryRunDriverClient
from isolator.ctl.tables import (
    EXIT_FAILED,
    EXIT_OK,
    Outcome,
    UsageError,
    table,
    volume_json,
    volume_text,
)
from isolator.docker.containers import Usage
from isolator.docker.handle import DockerVolumeIsolator
from isolator.docker.paths import volumes_path
from isolator.docker.state import VolumeKey, checkpoint_container
from isolator.protos import ContainerID, ContainerState

__all__ = ["RECOVERY_TIMEOUT", "dry_run"]

RECOVERY_TIMEOUT: Final = 60.0
"""Seconds the recovery on the copy may take (it calls no plugin: it takes milliseconds)."""


def dry_run(flags: Flags, known: Sequence[str]) -> Outcome:
    """What ``recover(states=known, orphans=[])`` would do with the checkpoints of ``flags``.

    ``known`` are the container ID values the agent knows (each its checkpoint directory's
    name); every other checkpoint is an unknown orphan, cleaned up at recovery.
    """
    known = list(dict.fromkeys(known))
    for value in known:
        try:
            validate_container_id(ContainerID(value=value))
        except IsolatorError as error:
            raise UsageError(f"--known {value!r}: {error}") from None

    def missing(root: str) -> Outcome:
        text = f"No checkpoint directory at '{root}': recovery has nothing to do."
        return Outcome(EXIT_OK, _document(root, known, [], [], None), text)

    def recover(root: str, checkpoints: list[Checkpoint]) -> Outcome:
        unreadable = [c for c in checkpoints if c.state == "unreadable"]
        if unreadable:
            return _would_fail(root, known, unreadable[0])
        with tempfile.TemporaryDirectory(prefix="isolator-ctl-") as scratch:
            copy = os.path.join(scratch, "checkpoints")
            _copy(checkpoints, copy)
            on_copy = replace(flags, docker_volume_checkpoint_dir=copy)
            unmounts, usage = _recover(on_copy, known)
        return _report(root, known, checkpoints, unmounts, usage)

    return with_checkpoints(flags, recover, missing)


def _would_fail(root: str, known: Sequence[str], bad: Checkpoint) -> Outcome:
    kind = "container" if bad.container in known else "orphan container"
    message = (
        "Recovery would fail: Failed to recover docker volumes for "
        f"{kind} {bad.container}: {bad.error}"
    )
    data = {**_document(root, known, [], [], None), "error": message}
    return Outcome(EXIT_FAILED, data, message)


def _copy(checkpoints: Sequence[Checkpoint], copy: str) -> None:
    """The checkpoints as recovery reads them: volumes, an empty file, or no file."""
    for checkpoint in checkpoints:
        container_id = ContainerID(value=checkpoint.container)
        if checkpoint.volumes:
            checkpoint_container(copy, container_id, list(checkpoint.volumes))
            continue
        path = volumes_path(copy, container_id)
        os.makedirs(os.path.dirname(path))
        if checkpoint.state == "empty":
            with open(path, "wb"):
                pass


@contextlib.contextmanager
def _quiet_isolator() -> Iterator[None]:
    """The isolator's own log lines name the scratch copy, not the operator's directory:
    only its errors are let through while it recovers there."""
    logger = logging.getLogger("isolator")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _recover(flags: Flags, known: Sequence[str]) -> tuple[list[VolumeKey], Usage]:
    """Recover with a dry-run driver; the unmounts it was asked, and who holds what after."""
    client = DryRunDriverClient()
    states = [
        ContainerState(container_id=ContainerID(value=value), pid=0, directory="/")
        for value in known
    ]
    with _quiet_isolator():
        isolator = DockerVolumeIsolator.create(flags, client)
        try:
            isolator.recover(states, []).get(timeout=RECOVERY_TIMEOUT)
            isolator.orphan_cleanups().get(timeout=RECOVERY_TIMEOUT)
            usage = isolator.usage().get(timeout=RECOVERY_TIMEOUT)
        finally:
            isolator.stop()
    unmounts = [VolumeKey(driver, name) for driver, name in client.unmounts]
    return sorted(unmounts), usage


def _document(
    root: str,
    known: Sequence[str],
    orphans: Sequence[str],
    unmounts: Sequence[VolumeKey],
    usage: Usage | None,
) -> dict[str, Any]:
    holders = sorted(usage.holders.items()) if usage is not None else []
    return {
        "checkpoint_dir": root,
        "known": [
            {"container": value, "checkpointed": usage is not None and value in usage.containers}
            for value in known
        ],
        "orphans": list(orphans),
        "unmounts": [volume_json(volume) for volume in unmounts],
        "kept": [{**volume_json(v), "containers": list(names)} for v, names in holders],
    }


def _report(
    root: str,
    known: Sequence[str],
    checkpoints: Sequence[Checkpoint],
    unmounts: Sequence[VolumeKey],
    usage: Usage,
) -> Outcome:
    orphans = [c.container for c in checkpoints if c.container not in known]
    data = _document(root, known, orphans, unmounts, usage)
    by_value = {c.container: c for c in checkpoints}
    roles = [(value, "known") for value in known if value in by_value]
    roles += [(value, "unknown orphan") for value in orphans]
    rows = [
        [value, role, ", ".join(volume_text(v) for v in by_value[value].volumes) or "-"]
        for value, role in roles
    ]
    text = table(["CHECKPOINT", "ROLE", "VOLUMES"], rows)
    missing = [value for value in known if value not in by_value]
    if missing:
        text += f"known, without a checkpoint: {', '.join(missing)}\n"
    text += f"\nUnmounts recovery would send ({len(unmounts)}):\n"
    text += table(["DRIVER", "VOLUME"], [[v.driver, v.name] for v in unmounts])
    kept = data["kept"]
    if kept:
        text += "\nKept mounted (a known container holds them):\n"
        text += table(
            ["DRIVER", "VOLUME", "CONTAINERS"],
            [[k["driver"], k["name"], ", ".join(k["containers"])] for k in kept],
        )
    return Outcome(EXIT_OK, data, text)
