"""P3 recovery: reading many checkpoints after a restart, and cleaning up unknown orphans.

Set-up (not timed): N = 10,000 checkpoint directories on tmpfs, each naming one volume of
its own, as a crashed agent left them. Then, in one repeat:

- known: the bare loop lists the directory and ``json.load``s every checkpoint
  (``workload.bare_recover``); the isolator ``recover``s with the N containers given as
  known (``ContainerState``s), which reads and validates every checkpoint and records who
  holds which volume. Figure: isolator seconds / bare seconds; target <= 1.5.
- orphans: N fresh checkpoints that nobody claims. The bare loop lists, parses, calls the
  driver's unmount (``ZeroLatencyDriver``) and removes each checkpoint
  (``remove_owned_directory``: unlink, rmdir, fsync). The isolator ``recover``s with
  nothing known, so all N are unknown orphans, and the time runs until
  ``orphan_cleanups()`` says every cleanup is done (checked: N unmounts, no checkpoint
  left, no sequence alive). Figure: isolator seconds / bare seconds; target <= 3.
- threads: the most threads alive while the isolator recovers (sampled every 10 ms) minus
  those alive before it started; target <= 16, as P4.
"""

from __future__ import annotations

import os
import time
from typing import Any

from actors import Future
from benchmarks.doubles import ZeroLatencyDriver
from benchmarks.harness import WAIT, Check, Options, scratch_dir, threads, timed
from benchmarks.workload import (
    bare_orphans_cleanup,
    bare_recover,
    containers,
    isolator_on,
    write_checkpoints,
)
from isolator import DockerVolumeIsolator, Flags
from isolator.protos import ContainerState

__all__ = ["checks", "measure"]


def checks(options: Options) -> list[Check]:
    count = options.size(10_000, smallest=100)
    return [
        Check(
            "known",
            f"P3 recover {count:,} known checkpoints vs bare listdir+json.load",
            1.5,
            detail="{known_bare_s:.3f} s bare, {known_isolator_s:.3f} s isolator",
        ),
        Check(
            "orphans",
            f"P3 recover {count:,} unknown orphans, cleanups done, vs bare loop "
            "with unmount and removal",
            3.0,
            detail="{orphans_bare_s:.3f} s bare, {orphans_isolator_s:.3f} s isolator",
        ),
        Check(
            "threads",
            "P3 threads during recovery, over those before",
            16,
            unit="",
            detail="{threads_before:.0f} before",
        ),
    ]


def _waiting(future: Future[Any], peak: list[int]) -> None:
    """Wait for ``future``, noting the most threads alive meanwhile."""
    while not future.wait(0.01):
        peak[0] = max(peak[0], threads())
    peak[0] = max(peak[0], threads())


def measure(options: Options) -> dict[str, float]:
    count = options.size(10_000, smallest=100)
    batch = containers(count)
    states = [ContainerState(container_id=cid, pid=1, directory="/s") for cid, _, _ in batch]
    result: dict[str, float] = {"threads_before": threads()}
    peak = [0]
    with scratch_dir(options.tmpfs_dir, expect_tmpfs=True) as root:
        driver = ZeroLatencyDriver(f"{root}/mount-point")
        known, orphans, bare_orphans = (f"{root}/{n}" for n in ("known", "orphans", "bare"))
        for directory in (known, orphans, bare_orphans):
            os.makedirs(directory)
        write_checkpoints(known, batch)
        result["known_bare_s"] = timed(lambda: bare_recover(known))
        with isolator_on(f"{root}/empty", driver):  # starts the runtime's threads
            pass
        known_isolator = DockerVolumeIsolator.create(
            Flags(docker_volume_checkpoint_dir=known), driver
        )
        try:
            started = time.perf_counter()
            _waiting(known_isolator.recover(states, []), peak)
            result["known_isolator_s"] = time.perf_counter() - started
        finally:
            known_isolator.stop(timeout=WAIT)

        write_checkpoints(bare_orphans, batch)
        result["orphans_bare_s"] = timed(lambda: bare_orphans_cleanup(bare_orphans, driver))
        write_checkpoints(orphans, batch)
        unmounts_before = driver.count("unmount")
        orphan_isolator = DockerVolumeIsolator.create(
            Flags(docker_volume_checkpoint_dir=orphans), driver
        )
        try:
            started = time.perf_counter()
            _waiting(orphan_isolator.recover([], []), peak)
            _waiting(orphan_isolator.orphan_cleanups(), peak)
            result["orphans_isolator_s"] = time.perf_counter() - started
            left = orphan_isolator.sequence_count().get(WAIT)
        finally:
            orphan_isolator.stop(timeout=WAIT)
        if driver.count("unmount") - unmounts_before != count or os.listdir(orphans) or left:
            raise AssertionError("the orphans' cleanups did not all finish")
    result["known"] = result["known_isolator_s"] / result["known_bare_s"]
    result["orphans"] = result["orphans_isolator_s"] / result["orphans_bare_s"]
    result["threads"] = peak[0] - result["threads_before"]
    return result
