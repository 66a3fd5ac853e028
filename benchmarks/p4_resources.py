"""P4 resources: what 10,000 live containers cost, and that all of it is given back.

One repeat, in a fresh interpreter, on tmpfs, ``ZeroLatencyDriver``: N = 10,000 containers,
each on a volume of its own (so N volume sequences are alive at once). The callers' messages
(IDs and configs) are built first; then, each time after two garbage collections:

- before: threads and RSS before the isolator is created;
- idle: the isolator created and recovered, nothing prepared (its runtime threads started);
- live: all N prepared (1,000 in flight at a time; the launch infos dropped);
- after: all N cleaned up;
- again: the same N prepared and cleaned up once more.

Rows:

- threads live - threads before; target <= 16 (issue 8);
- (RSS live - RSS before) / N, KiB per live container; target <= 16 (issue 8);
- threads after - threads before - the runtime's own idle threads (its workers, the idle
  threads of its blocking executor, where the isolator's checkpoint I/O ran on at most
  ``isolator.docker.io_lanes.LANES`` of them, and its one timer thread); target 0:
  nothing is left running (the runtime keeps its few threads, idle, as libprocess keeps
  its own);
- Python memory blocks still allocated after cleanup (``sys.getallocatedblocks``, after -
  idle) per container; target <= 0.05: no object is left behind per container;
- (RSS again - RSS after) / (RSS live - RSS idle): how much a second round grows RSS, as a
  share of what the first round took; target <= 0.1. CPython and malloc keep freed memory
  for reuse rather than give it back, so RSS after cleanup stays near its peak (reported,
  not a target); that the second round reuses it is what shows nothing leaked;
- volume sequences alive after; target 0.
"""

from __future__ import annotations

import threading

import actors
from actors import collect
from benchmarks.doubles import ZeroLatencyDriver
from benchmarks.harness import (
    WAIT,
    Check,
    Options,
    allocated_blocks,
    rss_kib,
    scratch_dir,
    settle,
    threads,
)
from benchmarks.workload import Container, containers, isolator_on
from isolator import DockerVolumeIsolator

__all__ = ["checks", "measure"]

WINDOW = 1_000
"""Prepares (or cleanups) in flight at once."""


def checks(options: Options) -> list[Check]:
    count = options.size(10_000, smallest=100)
    return [
        Check(
            "threads_live",
            f"P4 threads with {count:,} containers alive, over before",
            16,
            unit="",
            detail="{threads_before:.0f} before, {threads_live:.0f} live",
        ),
        Check(
            "rss_per_container_kib",
            "P4 RSS per live container, KiB",
            16,
            unit=" KiB",
            detail="{rss_before_kib:.0f} KiB before, {rss_live_kib:.0f} KiB live",
        ),
        Check(
            "threads_left",
            "P4 threads after cleanup, over before and the idle runtime",
            0,
            unit="",
            detail="{threads_after:.0f} after",
        ),
        Check(
            "blocks_left_per_container",
            "P4 Python memory blocks left after cleanup, per container",
            0.05,
            unit="",
            detail="{blocks_live_per_container:.0f} per live container",
        ),
        Check(
            "rss_regrowth",
            "P4 RSS growth of a second round, share of the first",
            0.1,
            unit="",
            detail="{rss_after_kib:.0f} KiB after cleanup, "
            "{rss_again_kib:.0f} KiB after a second round",
        ),
        Check("sequences_left", "P4 volume sequences alive after cleanup", 0, unit=""),
    ]


def _snapshot(result: dict[str, float], name: str) -> None:
    settle()
    result[f"threads_{name}"] = threads()
    result[f"rss_{name}_kib"] = rss_kib()
    result[f"blocks_{name}"] = allocated_blocks()


def _prepare_all(isolator: DockerVolumeIsolator, batch: list[Container]) -> None:
    for start in range(0, len(batch), WINDOW):
        window = batch[start : start + WINDOW]
        collect([isolator.prepare(c, config) for c, config, _ in window]).get(WAIT)


def _cleanup_all(isolator: DockerVolumeIsolator, batch: list[Container]) -> None:
    for start in range(0, len(batch), WINDOW):
        collect([isolator.cleanup(c) for c, _, _ in batch[start : start + WINDOW]]).get(WAIT)


def measure(options: Options) -> dict[str, float]:
    count = options.size(10_000, smallest=100)
    batch = containers(count)
    result: dict[str, float] = {}
    with scratch_dir(options.tmpfs_dir, expect_tmpfs=True) as root:
        driver = ZeroLatencyDriver(f"{root}/mount-point")
        _snapshot(result, "before")
        with isolator_on(f"{root}/checkpoints", driver) as isolator:
            _snapshot(result, "idle")
            _prepare_all(isolator, batch)
            _snapshot(result, "live")
            result["sequences_live"] = isolator.sequence_count().get(WAIT)
            _cleanup_all(isolator, batch)
            _snapshot(result, "after")
            runtime = actors.statistics()
            result["idle_runtime_threads"] = (
                runtime.workers.idle
                + runtime.blocking.idle
                + sum(thread.name == "actors-timer" for thread in threading.enumerate())
            )
            result["sequences_left"] = isolator.sequence_count().get(WAIT)
            _prepare_all(isolator, batch)
            _cleanup_all(isolator, batch)
            _snapshot(result, "again")
    growth = result["rss_live_kib"] - result["rss_idle_kib"]
    result["threads_live"] = result["threads_live"] - result["threads_before"]
    result["rss_per_container_kib"] = (result["rss_live_kib"] - result["rss_before_kib"]) / count
    result["threads_left"] = (
        result["threads_after"] - result["threads_before"] - result["idle_runtime_threads"]
    )
    result["rss_regrowth"] = (result["rss_again_kib"] - result["rss_after_kib"]) / growth
    result["blocks_left_per_container"] = (result["blocks_after"] - result["blocks_idle"]) / count
    result["blocks_live_per_container"] = (result["blocks_live"] - result["blocks_idle"]) / count
    return result
