"""How the isolator overlaps slow drivers, as a ratio against a baseline from the same run.

A driver that takes ``--latency`` seconds per call serves ``--containers`` containers,
each with its own volume. The baseline prepares and cleans them up one after another
(what a single lock around the driver would give); the measured run issues them all at
once. The ratio baseline/concurrent shows how far the per-volume sequences let slow
calls overlap; a second ratio shows the cost of sharing one volume (those calls must
stay in order, so they cannot overlap).

Run: ``.venv/bin/python -m benchmarks.isolator_concurrency`` (not a test: it only reports;
``python -m benchmarks --only p1`` is the figure with targets).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Mapping

from actors import Future, Promise, collect
from actors._timer import call_later
from isolator import DockerVolumeIsolator, DriverClient, Flags
from isolator.messages import container_config, container_id, docker_volume


class SlowDriver(DriverClient):
    """Answers every call after ``latency`` seconds, holding no thread while it waits."""

    def __init__(self, latency: float, mount_root: str) -> None:
        self._latency = latency
        self._root = mount_root

    def _later(self, value: object) -> Future[object]:
        promise: Promise[object] = Promise()
        call_later(self._latency, lambda: promise.set(value))
        return promise.future

    def mount(self, driver: str, name: str, options: Mapping[str, str]) -> Future[str]:
        return self._later(f"{self._root}/{name}")  # type: ignore[return-value]

    def unmount(self, driver: str, name: str) -> Future[None]:
        return self._later(None)  # type: ignore[return-value]


def run(
    isolator: DockerVolumeIsolator, workdir: str, count: int, *, shared: bool, concurrent: bool
) -> float:
    started = time.perf_counter()
    configs = [
        (
            container_id(f"c{i}"),
            container_config(
                workdir, [docker_volume("slow", "shared" if shared else f"v{i}", "d")]
            ),
        )
        for i in range(count)
    ]
    if concurrent:
        collect([isolator.prepare(cid, cfg) for cid, cfg in configs]).get(120)
        collect([isolator.cleanup(cid) for cid, _ in configs]).get(120)
    else:
        for cid, cfg in configs:
            isolator.prepare(cid, cfg).get(120)
            isolator.cleanup(cid).get(120)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per driver call")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        flags = Flags(docker_volume_checkpoint_dir=f"{workdir}/checkpoints")
        isolator = DockerVolumeIsolator.create(flags, SlowDriver(args.latency, workdir))
        try:
            baseline = run(isolator, workdir, args.containers, shared=False, concurrent=False)
            distinct = run(isolator, workdir, args.containers, shared=False, concurrent=True)
            shared = run(isolator, workdir, args.containers, shared=True, concurrent=True)
        finally:
            isolator.stop()
    print(f"{args.containers} containers, {args.latency * 1000:.0f} ms per driver call")
    print(f"  baseline, one at a time:        {baseline:7.3f} s")
    print(
        f"  all at once, distinct volumes:  {distinct:7.3f} s  "
        f"(x{baseline / distinct:.1f} faster than baseline)"
    )
    print(
        f"  all at once, one shared volume: {shared:7.3f} s  "
        f"(x{baseline / shared:.1f}: mounts of one volume stay in order, as in Mesos; "
        "only the last cleanup unmounts)"
    )


if __name__ == "__main__":
    main()
