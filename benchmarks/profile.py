"""Where one prepare+cleanup round trip's time goes, by area, from cProfile.

``python -m benchmarks.profile [ROUNDS]`` runs the latency figure's work (one container at
a time, from a plain thread, ``ZeroLatencyDriver``, tmpfs) first without the profiler,
for the real time per round trip, then under cProfile, and prints each area's share of the
profiled time and that share of the real time. Nearly everything runs on the calling
thread (it runs the turns and, on a tmpfs, the checkpoint I/O after them), so profiling it
alone sees nearly all of it; ``other threads`` is the CPU time the rest used meanwhile.

cProfile slows Python calls more than system calls, so the Python areas' shares are
somewhat overstated; the areas are by file:

- actors runtime: ``actors/``, pykka, locks and ``threading`` (messages, turns, futures,
  the volume's sequence, the waiting caller's signal guard);
- checkpoint I/O: system calls, the standard library's file-system code and
  ``isolator/common/fs.py`` (the durable write and the owned removal);
- JSON and protobuf: encoding the checkpoint, copying the caller's messages;
- isolator: the rest of ``isolator/`` (validation, the container table, the targets'
  checks, the launch info, the sequences' bookkeeping);
- everything else (the benchmark's own loop, logging's level checks).
"""

from __future__ import annotations

import cProfile
import gc
import os
import pstats
import sys
import threading
import time

from benchmarks.doubles import ZeroLatencyDriver
from benchmarks.harness import WAIT, scratch_dir
from benchmarks.workload import Container, containers, isolator_on

__all__ = ["areas"]

_AREAS = (
    ("actors runtime", ("/actors/", "/pykka/", "_thread.lock", "threading.py", "_signal")),
    (
        "checkpoint I/O",
        ("posixpath", "genericpath", "posix.", "tempfile", "/os.py", "isolator/common/fs.py"),
    ),
    ("JSON and protobuf", ("/json/", "protobuf", "_upb", "isolator/messages.py")),
    ("isolator", ("/isolator/",)),
)


def _area(where: str) -> str:
    for name, marks in _AREAS:
        if any(mark in where for mark in marks):
            return name
    return "everything else"


def _cpu_of_other_threads() -> float:
    own = threading.get_native_id()
    total = 0.0
    for tid in os.listdir("/proc/self/task"):
        if int(tid) == own:
            continue
        with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def areas(rounds: int = 2000) -> dict[str, float]:
    """Microseconds per round trip: ``real``, ``other threads``, and each area's share."""
    with scratch_dir("/dev/shm", expect_tmpfs=True) as root:
        driver = ZeroLatencyDriver(f"{root}/mount-point")
        batch = containers(2 * rounds + 50, volumes=1)
        with isolator_on(f"{root}/checkpoints", driver) as isolator:

            def run(work: list[Container]) -> float:
                started = time.perf_counter()
                for cid, config, _ in work:
                    isolator.prepare(cid, config).get(WAIT)
                    isolator.cleanup(cid).get(WAIT)
                return time.perf_counter() - started

            run(batch[:50])
            gc.collect()
            others = _cpu_of_other_threads()
            real = run(batch[50 : 50 + rounds])
            others = _cpu_of_other_threads() - others
            profile = cProfile.Profile()
            profile.runcall(run, batch[50 + rounds :])
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    shares: dict[str, float] = {}
    for (filename, _, function), (_, _, tottime, _, _) in stats.items():
        area = _area(f"{filename} {function}")
        shares[area] = shares.get(area, 0.0) + tottime
    total = sum(shares.values())
    result = {"real": real / rounds * 1e6, "other threads": others / rounds * 1e6}
    for area, seconds in sorted(shares.items(), key=lambda item: -item[1]):
        result[area] = seconds / total * real / rounds * 1e6
    return result


if __name__ == "__main__":
    figures = areas(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
    print(f"one round trip: {figures.pop('real'):.0f} us real, ", end="")
    print(f"{figures.pop('other threads'):.0f} us of CPU on other threads")
    for area, micros in figures.items():
        print(f"  {area:<20} {micros:6.0f} us")
