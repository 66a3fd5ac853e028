"""P1 fan-out: slow driver calls on many volumes overlap; calls on one volume stay in order.

Workload: C = 1,000 containers on V = 200 volumes (K = C / V = 5 per volume), each
container with one volume, checkpointed on tmpfs, on a ``TimerDriver`` that answers every
call after a latency L (200 ms, then 20 ms) from the timer thread, holding no thread. Each
volume runs a chain: its K containers one after another, each ``prepare`` then ``cleanup``
(the next container of the volume is prepared once the previous one is cleaned up); the V
chains run side by side. So every volume sees exactly K mounts and K unmounts, alternating,
each waiting for the one before: the driver double checks that, and that no two calls on
one volume were ever in flight together.

- critical path = K x L x 2: the calls of one volume, strictly in order (mount, unmount,
  K times); no schedule can finish sooner.
- bare = the bare loop's seconds for the same C containers' work with a zero-latency driver
  (checkpoint write, mount, unmount, removal): what the work costs without waiting.
- the figure: isolator seconds / max(critical path, bare). Targets (issue 8): <= 1.2 at
  200 ms, <= 2 at 20 ms.
"""

from __future__ import annotations

from typing import Any

from actors import Future, collect
from benchmarks.doubles import TimerDriver, ZeroLatencyDriver
from benchmarks.harness import WAIT, Check, Options, scratch_dir, timed
from benchmarks.workload import Container, bare_one_by_one, containers, isolator_on
from isolator import DockerVolumeIsolator

__all__ = ["checks", "measure"]

LATENCIES = {"slow": 0.2, "fast": 0.02}


def _sizes(options: Options) -> tuple[int, int]:
    volumes = options.size(200, smallest=4)
    return volumes * 5, volumes


def checks(options: Options) -> list[Check]:
    count, volumes = _sizes(options)
    rows = []
    for key, target in (("slow", 1.2), ("fast", 2.0)):
        ms = LATENCIES[key] * 1000
        rows.append(
            Check(
                key,
                f"P1 {count:,} containers on {volumes} volumes, driver {ms:.0f} ms: "
                "total vs max(critical path, bare loop)",
                target,
                detail=f"{{{key}_s:.2f}} s; critical path {{{key}_critical_s:.2f}} s, "
                f"bare {{{key}_bare_s:.2f}} s",
            )
        )
    return rows


def _chain(isolator: DockerVolumeIsolator, work: list[Container]) -> Future[Any]:
    """Prepare then clean up each container of ``work``, one after another."""
    if not work:
        return Future.ready(None)
    (cid, config, _), rest = work[0], work[1:]
    return (
        isolator.prepare(cid, config)
        .then(lambda _: isolator.cleanup(cid))
        .then(lambda _: _chain(isolator, rest))
    )


def _one(root: str, latency: float, count: int, volumes: int) -> dict[str, float]:
    batch = containers(count, volumes=volumes)
    chains = [batch[v::volumes] for v in range(volumes)]
    zero = ZeroLatencyDriver(f"{root}/mount-point")

    bare_seconds = timed(lambda: bare_one_by_one(f"{root}/bare", zero, batch))
    driver = TimerDriver(latency, f"{root}/mount-point")
    with isolator_on(f"{root}/checkpoints", driver) as isolator:
        seconds = timed(lambda: collect([_chain(isolator, c) for c in chains]).get(WAIT))
    driver.check(volumes, count // volumes)
    critical = (count // volumes) * latency * 2
    return {
        "bare_s": bare_seconds,
        "critical_s": critical,
        "s": seconds,
        "": seconds / max(critical, bare_seconds),
    }


def measure(options: Options) -> dict[str, float]:
    count, volumes = _sizes(options)
    result: dict[str, float] = {}
    for key, latency in LATENCIES.items():
        with scratch_dir(options.tmpfs_dir, expect_tmpfs=True) as root:
            one = _one(root, latency, count, volumes)
        result.update({"_".join(filter(None, (key, name))): v for name, v in one.items()})
    return result
