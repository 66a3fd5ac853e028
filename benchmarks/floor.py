"""The design's floor: the isolator's figures with nothing of the isolator left in them.

``Skeleton`` is an actor that does the bare loop's work (``benchmarks.workload``: the same
checkpoint write, driver calls and removal) with exactly the isolator's actor pattern and
nothing else. A prepare is an ask to the one actor; the checkpoint is written after its turn
(``run_after_turn``, as the isolator's on a tmpfs) and its outcome comes back as a message;
the driver's Mount runs on a ``Sequence`` of its own, started for the call and stopped
after it, and its outcome comes back as a message; then the answer. A cleanup is the same
backwards. That is one round trip's 8 messages, 8 turns and 2 short-lived sequences
(``benchmarks.hops``), without validation, container table, reference counts, logging,
launch info or protobuf copies.

Each row times the skeleton on the workload of the isolator's figure of the same name,
against the same bare loop, with the same target. A row the skeleton misses shows that no
isolator built on this design (an isolator actor, a ``Sequence`` per volume call, pykka's
messages, on CPython) can meet that target; the isolator's own row, set beside it, shows
what its logic adds.

- latency: one round trip at a time (``latency``), median skeleton / median bare;
- throughput_small, throughput_large: 1,000 and 10,000 prepares in flight, then their
  cleanups (``p2_overhead`` on tmpfs), bare seconds / skeleton seconds; linearity their
  quotient;
- fanout_fast: ``p1_fanout`` at 20 ms, skeleton seconds / max(critical path, bare);
- orphans: ``p3_recovery``'s 10,000 unknown orphans, listed and read after the actor's turn,
  each one's Unmount on a sequence and its removal, skeleton seconds / bare seconds.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from actors import Actor, Future, Sequence, await_, call, collect, defer, run_after_turn
from benchmarks.doubles import TimerDriver, ZeroLatencyDriver
from benchmarks.harness import WAIT, Check, Options, scratch_dir, timed
from benchmarks.workload import (
    Container,
    bare_all_at_once,
    bare_cleanup,
    bare_one_by_one,
    bare_orphans_cleanup,
    bare_prepare,
    containers,
    write_checkpoints,
)
from isolator.common.fs import remove_owned_directory, write_atomically
from isolator.docker.state import VolumeKey, encode_volumes
from isolator.docker.steps import after

__all__ = ["Skeleton", "checks", "measure"]


def checks(options: Options) -> list[Check]:
    small, large = options.size(1_000), options.size(10_000, smallest=100)
    return [
        Check("latency", "Floor: skeleton round trip vs bare loop, tmpfs (latency's)", 2.5,
              detail="{bare_us:.0f} us bare, {skeleton_us:.0f} us skeleton"),
        Check("throughput_small", f"Floor: skeleton throughput vs bare, tmpfs, {small:,} (P2's)",
              0.6, higher_is_better=True),
        Check("throughput_large", f"Floor: same, {large:,} (P2's)", 0.6, higher_is_better=True),
        Check("linearity", "Floor: skeleton linearity (P2's)", 0.9, higher_is_better=True),
        Check("fanout_fast", "Floor: skeleton, P1's workload at 20 ms", 2.0,
              detail="{fanout_fast_s:.2f} s skeleton"),
        Check("orphans", f"Floor: skeleton, P3's {large:,} unknown orphans", 3.0,
              detail="{orphans_bare_s:.3f} s bare, {orphans_s:.3f} s skeleton"),
    ]  # fmt: skip


def _read_all(root: str) -> list[tuple[str, list[VolumeKey]]]:
    """The bare loop's reading: list, then ``json.load`` each checkpoint."""
    found = []
    for entry in os.listdir(root):
        with open(f"{root}/{entry}/volumes", "rb") as file:
            volumes = json.load(file)["volumes"]
        found.append((entry, [VolumeKey(v["driver"], v["name"]) for v in volumes]))
    return found


class Skeleton(Actor):
    """The isolator's message pattern around the bare loop's work, and nothing else."""

    def __init__(self, root: str, driver: ZeroLatencyDriver | TimerDriver) -> None:
        super().__init__()
        self._root, self._driver = root, driver
        self._orphans: list[Future[None]] = []

    def prepare(self, name: str, volume: VolumeKey) -> Future[None]:
        path = f"{self._root}/{name}/volumes"
        written = run_after_turn(write_atomically, path, encode_volumes([volume]))
        return after(written, defer(self.actor_ref, self._mount, volume))

    def _mount(self, volume: VolumeKey, _: Future[None]) -> Future[None]:
        sequence = Sequence()
        mounted = sequence.add(lambda: self._driver.mount(volume.driver, volume.name, {}))
        return after(mounted, defer(self.actor_ref, self._done, sequence))

    def cleanup(self, name: str, volume: VolumeKey) -> Future[None]:
        sequence = Sequence()
        unmounted = sequence.add(lambda: self._driver.unmount(volume.driver, volume.name))
        return after(unmounted, defer(self.actor_ref, self._remove, sequence, name))

    def _remove(self, sequence: Sequence, name: str, _: Future[None]) -> Future[None]:
        sequence.stop()
        directory = f"{self._root}/{name}"
        removed = run_after_turn(remove_owned_directory, directory, files=("volumes",))
        return after(removed, defer(self.actor_ref, self._done, None))

    def _done(self, sequence: Sequence | None, _: Future[None]) -> None:
        if sequence is not None:
            sequence.stop()

    def recover(self) -> Future[None]:
        """Read every checkpoint after this turn; then start every one's cleanup at once."""
        read = run_after_turn(_read_all, self._root)
        return after(read, defer(self.actor_ref, self._clean_up_all))

    def _clean_up_all(self, read: Future[list[tuple[str, list[VolumeKey]]]]) -> None:
        self._orphans = [self.cleanup(name, volumes[0]) for name, volumes in read.get(0)]

    def orphan_cleanups(self) -> Future[list[Future[None]]]:
        return await_(list(self._orphans))


def _round(ref: Any, container: Container) -> None:
    cid, _, volume = container
    call(ref, "prepare", cid.value, volume).get(WAIT)
    call(ref, "cleanup", cid.value, volume).get(WAIT)


def _all_at_once(ref: Any, batch: list[Container]) -> None:
    collect([call(ref, "prepare", cid.value, volume) for cid, _, volume in batch]).get(WAIT)
    collect([call(ref, "cleanup", cid.value, volume) for cid, _, volume in batch]).get(WAIT)


def _chain(ref: Any, work: list[Container]) -> Future[Any]:
    if not work:
        return Future.ready(None)
    (cid, _, volume), rest = work[0], work[1:]
    return (
        call(ref, "prepare", cid.value, volume)
        .then(lambda _: call(ref, "cleanup", cid.value, volume))
        .then(lambda _: _chain(ref, rest))
    )


def _latency(root: str, rounds: int) -> dict[str, float]:
    driver = ZeroLatencyDriver(f"{root}/mount-point")
    skeleton = Skeleton.start(f"{root}/skeleton", driver)
    bare_samples, skeleton_samples = [], []
    try:
        for index, container in enumerate(containers(rounds + 20, volumes=1)):
            started = time.perf_counter()
            bare_prepare(f"{root}/bare", driver, container)
            bare_cleanup(f"{root}/bare", driver, container)
            middle = time.perf_counter()
            _round(skeleton, container)
            if index >= 20:
                bare_samples.append(middle - started)
                skeleton_samples.append(time.perf_counter() - middle)
    finally:
        skeleton.stop()
    bare, skeleton_s = statistics.median(bare_samples), statistics.median(skeleton_samples)
    return {"latency": skeleton_s / bare, "bare_us": bare * 1e6, "skeleton_us": skeleton_s * 1e6}


def _throughput(root: str, count: int) -> float:
    driver = ZeroLatencyDriver(f"{root}/mount-point")
    skeleton = Skeleton.start(f"{root}/skeleton", driver)
    try:
        warm_up, batch = containers(50, prefix="w"), containers(count)
        bare_all_at_once(f"{root}/bare", driver, warm_up)
        _all_at_once(skeleton, warm_up)
        bare = timed(lambda: bare_all_at_once(f"{root}/bare", driver, batch))
        return bare / timed(lambda: _all_at_once(skeleton, batch))
    finally:
        skeleton.stop()


def _fanout(root: str, count: int, volumes: int) -> dict[str, float]:
    batch = containers(count, volumes=volumes)
    zero = ZeroLatencyDriver(f"{root}/mount-point")
    bare = timed(lambda: bare_one_by_one(f"{root}/bare", zero, batch))
    driver = TimerDriver(0.02, f"{root}/mount-point")
    skeleton = Skeleton.start(f"{root}/skeleton", driver)
    try:
        chains = [batch[v::volumes] for v in range(volumes)]
        seconds = timed(lambda: collect([_chain(skeleton, c) for c in chains]).get(WAIT))
    finally:
        skeleton.stop()
    driver.check(volumes, count // volumes)
    critical = (count // volumes) * 0.02 * 2
    return {"fanout_fast": seconds / max(critical, bare), "fanout_fast_s": seconds}


def _orphans(root: str, count: int) -> dict[str, float]:
    driver = ZeroLatencyDriver(f"{root}/mount-point")
    batch = containers(count)
    for name in ("bare", "skeleton"):
        os.makedirs(f"{root}/{name}")
        write_checkpoints(f"{root}/{name}", batch)
    bare = timed(lambda: bare_orphans_cleanup(f"{root}/bare", driver))
    skeleton = Skeleton.start(f"{root}/skeleton", driver)
    try:
        started = time.perf_counter()
        call(skeleton, "recover").get(WAIT)
        call(skeleton, "orphan_cleanups").get(WAIT)
        seconds = time.perf_counter() - started
    finally:
        skeleton.stop()
    if os.listdir(f"{root}/skeleton") or driver.count("unmount") != 2 * count:
        raise AssertionError("the skeleton's orphan cleanups did not all finish")
    return {"orphans": seconds / bare, "orphans_bare_s": bare, "orphans_s": seconds}


def measure(options: Options) -> dict[str, float]:
    small, large = options.size(1_000), options.size(10_000, smallest=100)
    volumes = options.size(200, smallest=4)
    result: dict[str, float] = {}
    steps: list[Callable[[str], dict[str, float]]] = [
        # The orphans first, as P3 runs them in a fresh interpreter (after a recovery).
        lambda root: _orphans(root, large),
        lambda root: _fanout(root, volumes * 5, volumes),
        lambda root: _latency(root, options.size(300, smallest=30)),
        lambda root: {"throughput_small": _throughput(root, small)},
        lambda root: {"throughput_large": _throughput(root, large)},
    ]
    for step in steps:
        with scratch_dir(options.tmpfs_dir, expect_tmpfs=True) as root:
            result.update(step(root))
    result["linearity"] = result["throughput_large"] / result["throughput_small"]
    return result
