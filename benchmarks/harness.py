"""What every figure shares: sizes, places on tmpfs and on disk, process counters, and the
summary of repeats (median [min, max]) that the table and the JSON report."""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "WAIT",
    "Check",
    "Options",
    "Summary",
    "allocated_blocks",
    "filesystem_type",
    "rss_kib",
    "scratch_dir",
    "settle",
    "summarize",
    "threads",
    "timed",
]

WAIT = 600.0
"""Seconds a figure waits on the isolator before it gives up (never reached in a normal run)."""


@dataclass(frozen=True)
class Options:
    """What one run measures: sizes scaled from the full run, and where files go."""

    scale: float = 1.0
    """1.0 is the full run (the sizes of issue 8's targets); ``--quick`` is 0.05."""
    tmpfs_dir: str = "/dev/shm"
    disk_dir: str = "/var/tmp"

    def size(self, full: int, *, smallest: int = 10) -> int:
        return max(smallest, round(full * self.scale))


@dataclass(frozen=True)
class Check:
    """One row of the table: a measured key of each repeat, against its target."""

    key: str
    label: str
    target: float
    higher_is_better: bool = False
    unit: str = "x"
    detail: str = ""
    """A ``str.format`` pattern over the medians of the repeat's keys, e.g. ``{bare_s}``."""

    def met(self, value: float) -> bool:
        return value >= self.target if self.higher_is_better else value <= self.target

    def target_text(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        return f"{sign} {self.target:g}{self.unit}"


@dataclass(frozen=True)
class Summary:
    median: float
    low: float
    high: float
    samples: list[float] = field(default_factory=list)

    def text(self, unit: str) -> str:
        return f"{_number(self.median)}{unit} [{_number(self.low)}, {_number(self.high)}]"


def _number(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def summarize(samples: list[float]) -> Summary:
    return Summary(statistics.median(samples), min(samples), max(samples), list(samples))


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn()`` takes, after a full garbage collection (so none is owed)."""
    gc.collect()
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def settle() -> None:
    """Collect garbage twice (cycles freed by the first pass free more in the second)."""
    gc.collect()
    gc.collect()


def threads() -> int:
    return threading.active_count()


def rss_kib() -> int:
    """The process's resident set, from ``/proc/self/status``."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def allocated_blocks() -> int:
    """Python objects' memory blocks in use: back to the same count means nothing leaked,
    whatever the allocator keeps resident."""
    return sys.getallocatedblocks()


def filesystem_type(path: str) -> str:
    """The type of the filesystem ``path`` is on (the longest mount point above it)."""
    real = os.path.realpath(path)
    best, kind = "", "unknown"
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            point = fields[1].replace("\\040", " ")
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fields[2]
    return kind


@contextmanager
def scratch_dir(parent: str, *, expect_tmpfs: bool) -> Iterator[str]:
    """A fresh directory under ``parent``, removed afterwards; checks the filesystem kind."""
    kind = filesystem_type(parent)
    if (kind == "tmpfs") != expect_tmpfs:
        wanted = "a tmpfs" if expect_tmpfs else "a disk (not a tmpfs)"
        flag = "--tmpfs-dir" if expect_tmpfs else "--disk-dir"
        raise SystemExit(f"{parent} is on {kind}, not {wanted}: pass {flag} DIR")
    directory = tempfile.mkdtemp(prefix="isolator-bench-", dir=parent)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
